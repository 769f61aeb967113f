"""A tiny-cuda-nn-shaped front door to our hash grid: ``import morphbias_fast.tcnn as tcnn`` and
``tcnn.Encoding(n_input_dims, encoding_config)`` with tiny-cuda-nn's HashGrid JSON config, for encoder code
written against tiny-cuda-nn to run where it cannot: on a CPU, in float64, through double backward, and
bitwise deterministic.

What matches tiny-cuda-nn: the config keys and defaults (otype HashGrid or Grid with type Hash, n_levels 16,
n_features_per_level 2, log2_hashmap_size 19, base_resolution 16, per_level_scale 2.0, interpolation Linear
or Smoothstep), the encoding itself (docs/HASHGRID_SPEC.md), the flat parameter vector `params` in its layout
and size, its initialisation range (uniform in [-1e-4, 1e-4]) and the [batch, n_output_dims] output.
What differs: the initial values are drawn from torch's generator seeded with `seed`, not tiny-cuda-nn's
PCG32, so the same seed gives other (equally distributed) numbers; the output dtype is the encoding's dtype
(float32 by default, float64 on request) where tiny-cuda-nn returns float16 on GPUs; only hash grids are
implemented, and any other encoding is refused with a clear error."""
from __future__ import annotations

import torch

from morphbias_fast.encoding import HashGridEncoding

__all__ = ["Encoding"]

_KEYS = {"otype", "type", "n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution",
         "per_level_scale", "interpolation"}
INIT_RANGE = 1e-4  # tiny-cuda-nn's GridEncoding initialises its parameters uniformly in [-1e-4, 1e-4]


def _grid_args(encoding_config: dict) -> dict:
    cfg = dict(encoding_config)
    otype = cfg.get("otype")
    if otype not in ("HashGrid", "Grid") or (otype == "Grid" and cfg.get("type", "Hash") != "Hash"):
        raise NotImplementedError(f"morphbias_fast.tcnn implements hash grids only (otype 'HashGrid', or 'Grid' "
                                  f"with type 'Hash'); got otype {otype!r}"
                                  + (f" type {cfg.get('type')!r}" if otype == "Grid" else ""))
    unknown = sorted(set(cfg) - _KEYS)
    if unknown:
        raise ValueError(f"encoding_config has keys morphbias_fast.tcnn does not know: {', '.join(unknown)}")
    interpolation = str(cfg.get("interpolation", "Linear")).lower()
    return {"n_levels": int(cfg.get("n_levels", 16)), "n_features_per_level": int(cfg.get("n_features_per_level", 2)),
            "log2_hashmap_size": int(cfg.get("log2_hashmap_size", 19)),
            "base_resolution": int(cfg.get("base_resolution", 16)),
            "per_level_scale": float(cfg.get("per_level_scale", 2.0)), "interpolation": interpolation}


class Encoding(torch.nn.Module):
    """tiny-cuda-nn's ``tcnn.Encoding(n_input_dims, encoding_config, seed=1337, dtype=None)`` for hash grids.

    ``enc(x)`` takes x [batch, n_input_dims] in [0, 1] and returns [batch, n_output_dims]; ``enc.params`` is
    the flat parameter vector; ``enc.n_output_dims`` as in tiny-cuda-nn. ``dtype`` defaults to float32;
    float64 gives gradients for torch.autograd.gradcheck, double backward included. ``device`` is an
    addition (tiny-cuda-nn always uses the current GPU)."""

    def __init__(self, n_input_dims: int, encoding_config: dict, seed: int = 1337, dtype: torch.dtype | None = None,
                 device=None):
        super().__init__()
        self.n_input_dims = n_input_dims
        self.encoding_config = dict(encoding_config)
        self.grid = HashGridEncoding(n_input_dims=n_input_dims, **_grid_args(encoding_config),
                                     dtype=dtype or torch.float32, device=device)
        gen = torch.Generator().manual_seed(seed)
        init = torch.rand(self.grid.params.shape, generator=gen, dtype=torch.float64) * 2 * INIT_RANGE - INIT_RANGE
        with torch.no_grad():
            self.grid.params.copy_(init.to(self.grid.params))
        self.seed = seed

    @property
    def params(self) -> torch.nn.Parameter:
        return self.grid.params

    @property
    def n_output_dims(self) -> int:
        return self.grid.n_output_dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"x must have shape [batch, {self.n_input_dims}] (tiny-cuda-nn's layout), "
                             f"got {list(x.shape)}")
        return self.grid(x)
