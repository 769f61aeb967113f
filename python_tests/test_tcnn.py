"""`morphbias_fast.tcnn`: tiny-cuda-nn encoder code (a config dict in, outputs and gradients out) runs on the
CPU in float64 and matches the pure-PyTorch reference of docs/HASHGRID_SPEC.md; the defaults, parameter count
and initial range are tiny-cuda-nn's; what we do not implement is refused by name."""
import pytest
import torch
from torch.autograd import gradgradcheck

import morphbias_fast.tcnn as tcnn
from morphbias_fast import reference as ref

FLOAT64_RTOL = 1e-10  # the Foundation issue's contract for float64 outputs and gradients (test_hashgrid_parity)


def test_a_tiny_cuda_nn_snippet_matches_the_reference():
    config = {"otype": "HashGrid", "n_levels": 8, "n_features_per_level": 2, "log2_hashmap_size": 14,
              "base_resolution": 16, "per_level_scale": 1.5, "interpolation": "Smoothstep"}
    encoding = tcnn.Encoding(3, config, dtype=torch.float64)
    x = torch.rand(257, 3, dtype=torch.float64, requires_grad=True)
    y = encoding(x)
    assert y.shape == (257, encoding.n_output_dims) == (257, 16)
    w = torch.randn_like(y)
    dx, dp = torch.autograd.grad((y * w).sum(), (x, encoding.params))

    xr = x.detach().clone().requires_grad_(True)
    pr = encoding.params.detach().clone().requires_grad_(True)
    yr = ref.encode(xr, pr, encoding.grid.config)
    dxr, dpr = torch.autograd.grad((yr * w).sum(), (xr, pr))
    for ours, theirs in ((y, yr), (dx, dxr), (dp, dpr)):
        assert (ours - theirs).abs().max() <= FLOAT64_RTOL * theirs.abs().max()


def test_defaults_size_and_initialisation_are_tiny_cuda_nns():
    enc = tcnn.Encoding(3, {"otype": "HashGrid"})
    assert enc.grid.config.n_levels == 16 and enc.grid.config.log2_hashmap_size == 19
    assert enc.params.numel() == 14_229_504  # 7 114 752 entries x 2 features: docs/HASHGRID_SPEC.md, tiny-cuda-nn's default
    assert enc.params.abs().max() <= tcnn.INIT_RANGE
    assert torch.equal(tcnn.Encoding(3, {"otype": "HashGrid"}, seed=1337).params, enc.params)  # seeded
    assert not torch.equal(tcnn.Encoding(3, {"otype": "HashGrid"}, seed=1).params, enc.params)
    grid = tcnn.Encoding(2, {"otype": "Grid", "type": "Hash", "n_levels": 4, "log2_hashmap_size": 12})
    assert grid.n_output_dims == 8


def test_double_backward_through_the_drop_in():
    enc = tcnn.Encoding(2, {"otype": "HashGrid", "n_levels": 3, "log2_hashmap_size": 10, "base_resolution": 4},
                        dtype=torch.float64)
    x = (torch.rand(6, 2, dtype=torch.float64) * 0.8 + 0.1).requires_grad_(True)
    assert gradgradcheck(lambda x: enc(x), (x,))


@pytest.mark.parametrize("config,exc,needle", [
    ({"otype": "Frequency", "n_frequencies": 12}, NotImplementedError, "hash grids only"),
    ({"otype": "Grid", "type": "Dense"}, NotImplementedError, "'Dense'"),
    ({"otype": "HashGrid", "n_level": 8}, ValueError, "n_level"),
])
def test_what_is_not_implemented_is_refused_by_name(config, exc, needle):
    with pytest.raises(exc, match=needle):
        tcnn.Encoding(3, config)
