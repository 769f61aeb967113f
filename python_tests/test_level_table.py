"""Level sizes and parameter counts: C++ table vs the reference and vs tiny-cuda-nn's published counts."""
import pytest
import torch

import morphbias_fast as mbf
from morphbias_fast import reference as ref
from morphbias_fast.gridconfig import HashGridConfig
from morphbias_fast.ops import hashgrid as ops
from morphbias_fast.ops.hashgrid import Grid

CONFIGS = [
    HashGridConfig(),
    HashGridConfig(n_input_dims=2),
    HashGridConfig(n_input_dims=2, n_levels=8, n_features_per_level=4, log2_hashmap_size=15, base_resolution=5,
                   per_level_scale=1.3819),
    HashGridConfig(n_levels=32, log2_hashmap_size=24, base_resolution=2, per_level_scale=1.5),
    HashGridConfig(n_levels=12, n_features_per_level=8, log2_hashmap_size=10, base_resolution=3,
                   per_level_scale=1.25, interpolation="smoothstep"),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=str)
def test_cpp_level_table_matches_reference(cfg):
    enc_table = Grid.build(cfg).levels.as_dict()  # no parameters allocated (the 2^24 config would need 4 GB)
    levels = ref.level_table(cfg)
    assert list(enc_table["scale"]) == [lvl.scale for lvl in levels]  # bitwise: same float32 values
    assert list(enc_table["resolution"]) == [lvl.resolution for lvl in levels]
    assert list(enc_table["size"]) == [lvl.size for lvl in levels]
    assert list(enc_table["hashed"]) == [lvl.hashed for lvl in levels]
    assert list(enc_table["offset"]) == [lvl.offset for lvl in levels]


def test_default_3d_counts_match_tiny_cuda_nn():
    # docs/HASHGRID_SPEC.md: levels 0-2 dense (16^3, 32^3, 64^3 vertices), 13 hashed levels of 2^19 entries.
    enc = mbf.HashGridEncoding()
    t = enc.level_table()
    assert list(t["resolution"][:3]) == [16, 32, 64]
    assert list(t["size"][:3]) == [16**3, 32**3, 64**3]
    assert list(t["hashed"]) == [False] * 3 + [True] * 13
    assert t["n_entries"] == 7_114_752
    assert enc.params.numel() == 14_229_504


def test_sizes_round_up_to_multiples_of_8():
    # base 5 in 2-D: 5^2 = 25 vertices -> 32 entries (tiny-cuda-nn pads every level to a multiple of 8).
    enc = mbf.HashGridEncoding(n_input_dims=2, n_levels=1, base_resolution=5, log2_hashmap_size=10)
    assert enc.level_table()["size"][0] == 32


@pytest.mark.parametrize("field,value,exc", [
    ("n_input_dims", 4, ValueError), ("n_levels", 0, ValueError), ("n_levels", 33, ValueError),
    ("n_features_per_level", 3, ValueError), ("log2_hashmap_size", 9, ValueError),
    ("log2_hashmap_size", 25, ValueError), ("base_resolution", 1, ValueError), ("per_level_scale", 1.0, ValueError),
    ("per_level_scale", float("nan"), ValueError), ("interpolation", "cubic", ValueError),
    ("n_levels", 2.5, TypeError),
])
def test_bad_config_is_named(field, value, exc):
    with pytest.raises(exc, match=field):
        mbf.HashGridEncoding(**{field: value})


def test_resolution_overflow_is_refused():
    with pytest.raises(ValueError, match="2\\^31"):
        mbf.HashGridEncoding(n_levels=32, base_resolution=1024, per_level_scale=4.0)
    # Grid corners are int32: 2^30 * 1.41^2 > 2^31 vertices per axis at level 2. The kernels used to accept it
    # and (on the host, through an undefined int32 conversion) disagree with the reference.
    with pytest.raises(ValueError, match="2\\^31"):
        mbf.HashGridEncoding(n_input_dims=3, base_resolution=2**30, log2_hashmap_size=24)
    with pytest.raises(ValueError, match="2\\^31"):
        ref.level_table(mbf.HashGridConfig(n_input_dims=3, base_resolution=2**30, log2_hashmap_size=24))


def test_largest_accepted_resolution_indexes_like_the_reference():
    """Levels of 2^30 and about 1.9 * 2^30 vertices per axis, near the most the int32 corners allow: kernel and
    reference agree on every corner index for points all over [0, 1]^3, the far corner included. (Scale 2.0
    would give 2^31 at the second level: refused.)"""
    with pytest.raises(ValueError, match="2\\^31"):
        mbf.HashGridEncoding(n_input_dims=3, n_levels=2, base_resolution=2**30, log2_hashmap_size=24)
    enc = mbf.HashGridEncoding(n_input_dims=3, n_levels=2, base_resolution=2**30, per_level_scale=1.9,
                               log2_hashmap_size=24)
    x = torch.cat([torch.rand(2000, 3, generator=torch.Generator().manual_seed(0)), torch.ones(1, 3)])
    assert torch.equal(ops.corner_index(enc._grid, x), ref.corner_index(x, enc.config))
