"""Hash-grid kernels as functions of torch tensors (one place per op).

Each function checks the tensors it is handed, allocates outputs with torch (so torch's allocator owns
all memory), and passes pointers, the device index and torch's current CUDA stream to the compiled kernels
(ops/compiled.py).
The autograd Functions in morphbias_fast/encoding.py are built from these four ops.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from morphbias_fast.gridconfig import HashGridConfig
from morphbias_fast.ops.compiled import kernels

DTYPE_CODES = {torch.float32: 0, torch.float64: 1}


@dataclass(frozen=True)
class Grid:
    """A validated configuration together with its compiled level table."""

    config: HashGridConfig
    c_config: object
    levels: object

    @classmethod
    def build(cls, config: HashGridConfig) -> "Grid":
        c_config = kernels.HashGridConfig(
            config.n_input_dims, config.n_levels, config.n_features_per_level, config.log2_hashmap_size,
            config.base_resolution, float(config.per_level_scale), config.interpolation_code)
        return cls(config, c_config, kernels.make_level_table(c_config))

    @property
    def n_params(self) -> int:
        return self.levels.n_entries * self.config.n_features_per_level


def cuda_compiled() -> bool:
    return bool(kernels.build_info()["cuda"])


def _launch(t: torch.Tensor):
    """(device index, stream handle, CPU threads) for a kernel working on tensor t."""
    if t.is_cuda:
        if not cuda_compiled():
            raise ValueError("got a CUDA tensor, but morphbias_fast was built without CUDA kernels: move the "
                             "tensors to the CPU or reinstall with nvcc on PATH (MORPHBIAS_CUDA=ON)")
        return t.device.index, torch.cuda.current_stream(t.device).cuda_stream, 0
    if t.device.type != "cpu":
        raise ValueError(f"tensors must be on the CPU or a CUDA device, got {t.device}")
    return -1, 0, torch.get_num_threads()


def _ptr(t) -> int:
    return 0 if t is None else t.data_ptr()


def _prep(name: str, t, like: torch.Tensor, shape: tuple):
    """Check one kernel argument against the point tensor `like` and make it contiguous."""
    if t is None:
        return None
    if t.dtype != like.dtype:
        raise TypeError(f"{name} must be {like.dtype}, got {t.dtype}")
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device} but x is on {like.device}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {list(shape)}, got {list(t.shape)}")
    return t.contiguous()


def _check_x(grid: Grid, x: torch.Tensor) -> torch.Tensor:
    if x.dtype not in DTYPE_CODES:
        raise TypeError(f"x must be float32 or float64, got {x.dtype}")
    if x.dim() != 2 or x.shape[1] != grid.config.n_input_dims:
        raise ValueError(f"x must have shape [N, {grid.config.n_input_dims}], got {list(x.shape)}")
    return x.contiguous()


def fwd(grid: Grid, x: torch.Tensor, params: torch.Tensor, *, want_y: bool = True, want_jacobian: bool = False,
        direction: torch.Tensor | None = None):
    """(y [N, L*F] | None, J [N, L*F, D] | None, jvp [N, L*F] | None); jvp = J @ direction needs direction [N, D]."""
    x = _check_x(grid, x)
    n, D, LF = x.shape[0], grid.config.n_input_dims, grid.config.n_output_dims
    params = _prep("params", params, x, (grid.n_params,))
    direction = _prep("direction", direction, x, (n, D))
    y = x.new_empty((n, LF)) if want_y else None
    J = x.new_empty((n, LF, D)) if want_jacobian else None
    jvp = x.new_empty((n, LF)) if direction is not None else None
    dev, stream, threads = _launch(x)
    kernels.hashgrid_fwd(grid.c_config, grid.levels, DTYPE_CODES[x.dtype], dev, stream, threads, n, _ptr(x),
                    _ptr(params), _ptr(direction), _ptr(y), _ptr(J), _ptr(jvp))
    return y, J, jvp


def _cot(grid: Grid, x: torch.Tensor, a, B, b, g):
    n, D, LF = x.shape[0], grid.config.n_input_dims, grid.config.n_output_dims
    if (b is None) != (g is None):
        raise ValueError("b and g come together (B = b outer g)")
    return (_prep("a", a, x, (n, LF)), _prep("B", B, x, (n, LF, D)), _prep("b", b, x, (n, LF)),
            _prep("g", g, x, (n, D)))


def input_grad(grid: Grid, x: torch.Tensor, params: torch.Tensor, *, a=None, B=None, b=None, g=None) -> torch.Tensor:
    """dL/dx [N, D] for L = sum a*y + sum B*J, with B dense [N, L*F, D] or b [N, L*F] outer g [N, D]."""
    x = _check_x(grid, x)
    params = _prep("params", params, x, (grid.n_params,))
    a, B, b, g = _cot(grid, x, a, B, b, g)
    out = torch.empty_like(x)
    dev, stream, threads = _launch(x)
    kernels.hashgrid_input_grad(grid.c_config, grid.levels, DTYPE_CODES[x.dtype], dev, stream, threads, x.shape[0],
                           _ptr(x), _ptr(params), _ptr(a), _ptr(B), _ptr(b), _ptr(g), _ptr(out))
    return out


def param_grad(grid: Grid, x: torch.Tensor, *, a=None, B=None, b=None, g=None) -> torch.Tensor:
    """dL/dparams [E*F] for L = sum a*y + sum B*J (same cotangent forms as input_grad)."""
    x = _check_x(grid, x)
    a, B, b, g = _cot(grid, x, a, B, b, g)
    out = torch.zeros(grid.n_params, dtype=x.dtype, device=x.device)
    dev, stream, threads = _launch(x)
    kernels.hashgrid_param_grad(grid.c_config, grid.levels, DTYPE_CODES[x.dtype], dev, stream, threads, x.shape[0],
                           _ptr(x), _ptr(a), _ptr(B), _ptr(b), _ptr(g), _ptr(out))
    return out


def corner_index(grid: Grid, x: torch.Tensor) -> torch.Tensor:
    """[N, L, 2^D] int64 global table entries of every corner (exact parity with the reference)."""
    x = _check_x(grid, x)
    out = torch.empty((x.shape[0], grid.config.n_levels, 1 << grid.config.n_input_dims), dtype=torch.int64,
                      device=x.device)
    dev, stream, threads = _launch(x)
    kernels.hashgrid_corner_index(grid.c_config, grid.levels, DTYPE_CODES[x.dtype], dev, stream, threads, x.shape[0],
                             _ptr(x), _ptr(out))
    return out
