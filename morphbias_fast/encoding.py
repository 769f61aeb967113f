"""HashGridEncoding: the multiresolution hash grid as an nn.Module, with its autograd Functions.

Derivatives:
- ``enc(x)``: first order to x and params; the backward is itself a Function (_EncodeBackward) whose
  backward runs the double-backward kernels, so ``torch.autograd.grad(enc(x), x, create_graph=True)``
  followed by a backward gives exact second-order gradients (to params, x and the incoming gradient).
- ``enc(x, with_jacobian=True)``: (y, dy/dx) from one kernel; the gradient of a loss on both goes to
  params (and x) in one fused kernel. That backward is once-differentiable: a third derivative raises.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from morphbias_fast.gridconfig import HashGridConfig
from morphbias_fast.ops import hashgrid as ops


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, grid):
        y, _, _ = ops.fwd(grid, x, params)
        ctx.save_for_backward(x, params)
        ctx.grid = grid
        ctx.set_materialize_grads(False)
        return y

    @staticmethod
    def backward(ctx, dy):
        if dy is None:
            return None, None, None
        x, params = ctx.saved_tensors
        want_x, want_p = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        dx, dparams = _EncodeBackward.apply(dy, x, params, ctx.grid, want_x, want_p)
        return dx, dparams, None


class _EncodeBackward(torch.autograd.Function):
    """(dL/dx, dL/dparams) as a function of (dL/dy, x, params): differentiable once more."""

    # forward/backward here and in _EncodeWithJacobian share their shape (save tensors, keep the grid, call
    # the ops): `duplicates` pairs them; the cotangents they pass differ, so there is nothing to factor out.
    @staticmethod
    def forward(ctx, dy, x, params, grid, want_x, want_p):
        dy = dy.contiguous()
        dx = ops.input_grad(grid, x, params, a=dy) if want_x else None
        dparams = ops.param_grad(grid, x, a=dy) if want_p else None
        ctx.save_for_backward(dy, x, params)
        ctx.grid = grid
        ctx.set_materialize_grads(False)
        return dx, dparams

    @staticmethod
    @once_differentiable
    def backward(ctx, g_dx, g_dparams):
        # dparams = sum_n w_c(x) dy  and  dx = J(x, params)^T dy; their cotangents are g_dparams [E*F], g_dx [N, D].
        dy, x, params = ctx.saved_tensors
        grid = ctx.grid
        need_dy, need_x, need_p = ctx.needs_input_grad[:3]
        grad_dy = grad_x = grad_p = None
        if need_dy:
            parts = []
            if g_dparams is not None:
                parts.append(ops.fwd(grid, x, g_dparams)[0])
            if g_dx is not None:
                parts.append(ops.fwd(grid, x, params, want_y=False, direction=g_dx)[2])
            grad_dy = sum(parts) if parts else None
        if need_x:
            parts = []
            if g_dparams is not None:
                parts.append(ops.input_grad(grid, x, g_dparams, a=dy))
            if g_dx is not None:
                parts.append(ops.input_grad(grid, x, params, b=dy, g=g_dx))
            grad_x = sum(parts) if parts else None
        if need_p and g_dx is not None:
            grad_p = ops.param_grad(grid, x, b=dy, g=g_dx)
        return grad_dy, grad_x, grad_p, None, None, None


class _EncodeWithJacobian(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, params, grid):
        y, J, _ = ops.fwd(grid, x, params, want_jacobian=True)
        ctx.save_for_backward(x, params)
        ctx.grid = grid
        ctx.set_materialize_grads(False)
        return y, J

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dJ):
        if dy is None and dJ is None:
            return None, None, None
        x, params = ctx.saved_tensors
        dx = ops.input_grad(ctx.grid, x, params, a=dy, B=dJ) if ctx.needs_input_grad[0] else None
        dparams = ops.param_grad(ctx.grid, x, a=dy, B=dJ) if ctx.needs_input_grad[1] else None
        return dx, dparams, None


class HashGridEncoding(nn.Module):
    """Multiresolution hash-grid encoding, defined exactly as tiny-cuda-nn's HashGrid (CoherentPrime hash).

    Args:
        n_input_dims: D, 2 or 3.
        n_levels: L, 1..32.
        n_features_per_level: F, 1, 2, 4 or 8.
        log2_hashmap_size: entries per hashed level = 2**log2_hashmap_size (10..24).
        base_resolution: vertices per axis of the coarsest level (>= 2).
        per_level_scale: growth of the resolution from level to level (> 1).
        interpolation: "linear" or "smoothstep".
        dtype: torch.float32 (production) or torch.float64 (gradient checks).
        device: where the parameters live.
        check_finite: refuse inputs with NaN or infinity (ValueError). None (the default): on the CPU,
            where the check is a cheap scan; not on a GPU, where reading its result back would stall the
            stream on every call and forbid CUDA-graph capture. True or False forces it either way.

    Call ``enc(x)`` with x [..., D] in [0,1]^D (same dtype and device as ``enc.params``) for y
    [..., L*F]; ``enc(x, with_jacobian=True)`` also returns dy/dx [..., L*F, D].
    ``enc.params`` is the flat parameter vector in tiny-cuda-nn's layout and size.
    """

    def __init__(self, n_input_dims: int = 3, n_levels: int = 16, n_features_per_level: int = 2,
                 log2_hashmap_size: int = 19, base_resolution: int = 16, per_level_scale: float = 2.0,
                 interpolation: str = "linear", dtype: torch.dtype = torch.float32, device=None,
                 check_finite: bool | None = None):
        super().__init__()
        self.check_finite = check_finite
        if dtype not in ops.DTYPE_CODES:
            raise TypeError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.config = HashGridConfig(n_input_dims, n_levels, n_features_per_level, log2_hashmap_size,
                                     base_resolution, float(per_level_scale), interpolation)
        self._grid = ops.Grid.build(self.config)
        params = torch.empty(self._grid.n_params, dtype=dtype, device=device)
        self.params = nn.Parameter(params.uniform_(-1e-4, 1e-4))

    @property
    def n_input_dims(self) -> int:
        return self.config.n_input_dims

    @property
    def n_output_dims(self) -> int:
        return self.config.n_output_dims

    def level_table(self) -> dict:
        """Per-level scale, resolution, size, hashed flag and offset, as the kernels use them."""
        return self._grid.levels.as_dict()

    def extra_repr(self) -> str:
        c = self.config
        return (f"n_input_dims={c.n_input_dims}, n_levels={c.n_levels}, n_features_per_level="
                f"{c.n_features_per_level}, log2_hashmap_size={c.log2_hashmap_size}, base_resolution="
                f"{c.base_resolution}, per_level_scale={c.per_level_scale}, interpolation={c.interpolation!r}, "
                f"n_params={self._grid.n_params}")

    def _check_input(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        p = self.params
        if x.dtype != p.dtype:
            raise TypeError(f"x is {x.dtype} but the encoding's params are {p.dtype}: convert x with "
                            f"x.to({p.dtype}) or build the encoding with dtype={x.dtype}")
        if x.dim() < 1 or x.shape[-1] != self.n_input_dims:
            raise ValueError(f"x must have shape [..., {self.n_input_dims}], got {list(x.shape)}")
        if x.device != p.device:
            raise ValueError(f"x is on {x.device} but the encoding's params are on {p.device}")
        check = x.device.type == "cpu" if self.check_finite is None else self.check_finite
        if check and x.numel() and not bool(torch.isfinite(x).all()):  # bool(): a device->host read on a GPU
            raise ValueError("x contains NaN or infinite values")
        return x.reshape(-1, self.n_input_dims)

    def forward(self, x: torch.Tensor, with_jacobian: bool = False):
        lead = x.shape[:-1] if isinstance(x, torch.Tensor) else ()
        flat = self._check_input(x)
        if not with_jacobian:
            return _Encode.apply(flat, self.params, self._grid).reshape(*lead, self.n_output_dims)
        y, J = _EncodeWithJacobian.apply(flat, self.params, self._grid)
        return y.reshape(*lead, self.n_output_dims), J.reshape(*lead, self.n_output_dims, self.n_input_dims)
