"""Pure-PyTorch hash-grid encoding, written line by line from docs/HASHGRID_SPEC.md.

It is the oracle of the kernel tests (its autograd gives first and second derivatives) and the
baseline of ``morphbias-fast bench encode``. It is vectorised over points and corners and loops
over levels, as a user writing a hash grid in PyTorch would. uint32 arithmetic is emulated exactly
in int64 with a 32-bit mask (int64 products wrap modulo 2^64, which keeps the low 32 bits right).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from morphbias_fast.gridconfig import HashGridConfig

PRIMES = (1, 2654435761, 805459861)
MASK32 = 0xFFFFFFFF


@dataclass(frozen=True)
class Level:
    scale: float  # the float32 value of scale_l, held as a Python float
    resolution: int
    size: int
    hashed: bool
    offset: int


@lru_cache(maxsize=1)
def _float_math():
    """exp2f/log2f from the C library (the spec computes scale_l with them); numpy float32 otherwise."""
    name = ctypes.util.find_library("m")
    if name:
        try:
            libm = ctypes.CDLL(name)
            exp2f, log2f = libm.exp2f, libm.log2f
            for fn in (exp2f, log2f):
                fn.restype = ctypes.c_float
                fn.argtypes = [ctypes.c_float]
            return (lambda v: np.float32(exp2f(float(v)))), (lambda v: np.float32(log2f(float(v))))
        except (OSError, AttributeError):
            pass
    return (lambda v: np.exp2(np.float32(v))), (lambda v: np.log2(np.float32(v)))


def level_table(cfg: HashGridConfig) -> list[Level]:
    exp2f, log2f = _float_math()
    log2_b = log2f(cfg.per_level_scale)
    max_size = 1 << cfg.log2_hashmap_size
    levels, offset = [], 0
    for l in range(cfg.n_levels):
        scale = np.float32(exp2f(np.float32(l) * log2_b) * np.float32(cfg.base_resolution) - np.float32(1.0))
        if not np.isfinite(scale) or float(scale) + 0.5 >= 2**31:  # int32 grid corners: floor(scale + 0.5) must fit
            raise ValueError(f"level {l} has more than 2^31 vertices per axis (grid corners are int32): lower "
                             "n_levels, base_resolution or per_level_scale")
        res = int(np.ceil(scale)) + 1
        dense = res ** cfg.n_input_dims
        n = min(dense, max_size)
        n = (n + 7) // 8 * 8
        size = min(n, max_size)
        levels.append(Level(float(scale), res, size, size < dense, offset))
        offset += size
    return levels


def n_params(cfg: HashGridConfig) -> int:
    last = level_table(cfg)[-1]
    return (last.offset + last.size) * cfg.n_features_per_level


def _corner_bits(D: int, device) -> torch.Tensor:
    # [2^D, D]: bit d of corner c
    c = torch.arange(1 << D, device=device)
    return torch.stack([(c >> d) & 1 for d in range(D)], dim=1)


def _position(x: torch.Tensor, scale: float) -> torch.Tensor:
    if x.dtype == torch.float32:
        # fmaf: the float64 product of two float32 values is exact, so one rounding to float32 follows.
        return (x.double() * scale + 0.5).float()
    return x * scale + 0.5  # float64: no fused multiply-add in torch; may differ from fma in the last bit


def _level_index(g: torch.Tensor, bits: torch.Tensor, lvl: Level) -> torch.Tensor:
    """g [N, D] int64 lower corners (already masked to uint32) -> [N, 2^D] global entries."""
    D = g.shape[1]
    gc = (g[:, None, :] + bits[None]) & MASK32  # [N, 2^D, D]
    if lvl.hashed:
        i = torch.zeros_like(gc[..., 0])
        for d in range(D):
            i = i ^ ((gc[..., d] * PRIMES[d]) & MASK32)
    else:
        i = torch.zeros_like(gc[..., 0])
        stride = 1
        for d in range(D):
            i = (i + gc[..., d] * stride) & MASK32
            stride = (stride * lvl.resolution) & MASK32
    return i % lvl.size + lvl.offset


def _level_geometry(x: torch.Tensor, lvl: Level, interpolation: str):
    """Lower corner g [N, D] (uint32 in int64), factors w1 [N, D] and dw = d w1 / dx [N, D]."""
    p = _position(x, lvl.scale)
    fl = torch.floor(p).detach()
    t = p - fl
    g = fl.long() & MASK32
    if interpolation == "linear":
        w1 = t
        dw = torch.full_like(t, lvl.scale)
    else:
        w1 = t * t * (3 - 2 * t)
        dw = lvl.scale * (6 * t * (1 - t))
    return g, w1, dw


def _product(factors: torch.Tensor) -> torch.Tensor:
    w = factors[..., 0]
    for d in range(1, factors.shape[-1]):
        w = w * factors[..., d]
    return w


def _check(x: torch.Tensor, params: torch.Tensor, cfg: HashGridConfig) -> None:
    if x.dim() != 2 or x.shape[1] != cfg.n_input_dims:
        raise ValueError(f"x must have shape [N, {cfg.n_input_dims}], got {list(x.shape)}")
    if params.shape != (n_params(cfg),):
        raise ValueError(f"params must have shape [{n_params(cfg)}], got {list(params.shape)}")


def corner_index(x: torch.Tensor, cfg: HashGridConfig) -> torch.Tensor:
    """[N, L, 2^D] int64: the global table entry of every corner."""
    bits = _corner_bits(cfg.n_input_dims, x.device)
    out = []
    for lvl in level_table(cfg):
        g, _, _ = _level_geometry(x.detach(), lvl, cfg.interpolation)
        out.append(_level_index(g, bits, lvl))
    return torch.stack(out, dim=1)


def _encode(x, params, cfg, with_jacobian):
    D, F = cfg.n_input_dims, cfg.n_features_per_level
    bits = _corner_bits(D, x.device).bool()
    table = params.view(-1, F)
    ys, Js = [], []
    for lvl in level_table(cfg):
        g, w1, dw = _level_geometry(x, lvl, cfg.interpolation)
        idx = _level_index(g, bits.long(), lvl)  # [N, 2^D]
        vals = table[idx]  # [N, 2^D, F]
        factors = torch.where(bits[None], w1[:, None, :], 1 - w1[:, None, :])  # [N, 2^D, D]
        w = _product(factors)
        ys.append((w[..., None] * vals).sum(1))
        if with_jacobian:
            cols = []
            for e in range(D):
                de = torch.where(bits[None, :, e], dw[:, None, e], -dw[:, None, e])  # [N, 2^D]
                fe = torch.cat([factors[..., :e], de[..., None], factors[..., e + 1:]], dim=-1)
                cols.append((_product(fe)[..., None] * vals).sum(1))  # [N, F]
            Js.append(torch.stack(cols, dim=-1))  # [N, F, D]
    y = torch.cat(ys, dim=1)
    if not with_jacobian:
        return y
    return y, torch.cat(Js, dim=1)


def encode(x: torch.Tensor, params: torch.Tensor, cfg: HashGridConfig) -> torch.Tensor:
    """y [N, L*F] from x [N, D] and params [E*F]; differentiable to any order through autograd."""
    _check(x, params, cfg)
    return _encode(x, params, cfg, False)


def encode_with_jacobian(x: torch.Tensor, params: torch.Tensor, cfg: HashGridConfig):
    """(y [N, L*F], J = dy/dx [N, L*F, D]) with J from the analytic formula of the spec."""
    _check(x, params, cfg)
    return _encode(x, params, cfg, True)
