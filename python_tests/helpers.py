"""Shared helpers for the kernel tests (pytest puts python_tests/ on sys.path; the package itself is
imported from the installation)."""
from __future__ import annotations

import math

import numpy as np
import torch

import morphbias_fast as mbf
from morphbias_fast import reference as ref

import pytest

# CUDA cases run whenever a GPU is visible to torch and the kernels were compiled with CUDA.
CUDA_READY = torch.cuda.is_available() and mbf.build_info()["cuda"]
DEVICES = ["cpu"] + (["cuda"] if CUDA_READY else [])


def device_params(cuda_ready: bool) -> list:
    """The `device` fixture's parameters: the CUDA case carries the `cuda` marker, so `pytest -m cuda`
    selects every CUDA case of every file, not only test_cuda.py."""
    return [pytest.param("cpu")] + ([pytest.param("cuda", marks=pytest.mark.cuda)] if cuda_ready else [])


def small_encoding(D=3, L=6, F=2, log2=12, base=4, scale=1.9, interp="linear", dtype=torch.float64,
                   device="cpu", spread=1.0, seed=0):
    """An encoding with a few dense and a few hashed levels and parameters of order `spread`
    (tiny-cuda-nn's 1e-4 initialisation would hide errors below the tolerances)."""
    enc = mbf.HashGridEncoding(n_input_dims=D, n_levels=L, n_features_per_level=F, log2_hashmap_size=log2,
                               base_resolution=base, per_level_scale=scale, interpolation=interp, dtype=dtype,
                               device=device)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        enc.params.copy_((torch.rand(enc.params.shape, generator=g, dtype=dtype) * 2 - 1) * spread)
    return enc


def interior_points(enc, n, margin=1e-3, seed=0, dtype=None):
    """Points in [0,1]^D whose fractional cell position t stays `margin` away from 0 and 1 at every
    level, so that finite differences and the float64 fma/non-fma difference never cross a cell."""
    dtype = dtype or enc.params.dtype
    rng = np.random.default_rng(seed)
    levels = ref.level_table(enc.config)
    out = []
    while len(out) < n:
        x = rng.random((4 * n + 16, enc.n_input_dims))
        ok = np.ones(len(x), dtype=bool)
        for lvl in levels:
            t = np.mod(x * lvl.scale + 0.5, 1.0)
            ok &= np.all((t > margin) & (t < 1 - margin), axis=1)
        out.extend(x[ok].tolist())
    return torch.tensor(out[:n], dtype=dtype)


def max_rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max |b| (a max-norm relative error; 0 when both are zero)."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    scale = b.abs().max().item() if b.numel() else 0.0
    diff = (a - b).abs().max().item() if b.numel() else 0.0
    return 0.0 if diff == 0 else diff / (scale if scale > 0 else math.inf)

