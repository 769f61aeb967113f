"""Generalizable registration INRs: u(x, z) for every subject from one network and a latent z per subject.

Both architectures return the displacement u [B, P, D] (voxel units) at points x [B, P, D] in [0,1]^D and,
on request, its spatial Jacobian du/dx [B, P, D, D], pushed through the MLP in forward mode from the
encoder's analytic dy/dx: each linear layer maps the tangent with its weight, each activation scales it by
the activation's derivative, FiLM scales it by gamma. No finite differences, no per-column autograd.

- "hashgrid" (ours): HashGridEncoding(x) -> MLP with SiLU, FiLM-modulated by z after every hidden layer.
- "siren" (the paper's): SIREN 4 x 256, omega_0 = 30, FiLM (sin(omega_0 * (gamma * (W h + b) + beta)))."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from morphbias_fast.encoding import HashGridEncoding

# Tangents are kept as T [D, B*P, width]: row d is d(activations)/dx_d. A linear layer then maps all D
# tangents with one matrix product (no transposes), and elementwise factors broadcast over the first axis.


def _jacobian_out(T: torch.Tensor, B: int, P: int) -> torch.Tensor:
    """[D_in, B*P, D_out] -> du/dx [B, P, D_out, D_in]."""
    return T.permute(1, 2, 0).reshape(B, P, T.shape[2], T.shape[0])


class HashGridINR(nn.Module):
    def __init__(self, dim: int, latent_dim: int = 128, hidden: int = 64, n_hidden: int = 2, n_levels: int = 8,
                 n_features_per_level: int = 2, log2_hashmap_size: int = 15, base_resolution: int = 4,
                 per_level_scale: float = 1.5):
        super().__init__()
        self.dim, self.latent_dim = dim, latent_dim
        self.encoding = HashGridEncoding(n_input_dims=dim, n_levels=n_levels,
                                         n_features_per_level=n_features_per_level,
                                         log2_hashmap_size=log2_hashmap_size, base_resolution=base_resolution,
                                         per_level_scale=per_level_scale)
        widths = [self.encoding.n_output_dims] + [hidden] * n_hidden
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.film = nn.Linear(latent_dim, 2 * hidden * n_hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)  # start from the identity transform
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor, with_jacobian: bool = False):
        B, P, D = x.shape
        flat = x.reshape(-1, D)
        if with_jacobian:
            h, T = self.encoding(flat, with_jacobian=True)
            T = T.permute(2, 0, 1)  # [D, B*P, L*F]
        else:
            h, T = self.encoding(flat), None
        film = self.film(z).view(B, len(self.hidden), 2, 1, -1)
        for i, layer in enumerate(self.hidden):
            gamma, beta = 1 + film[:, i, 0], film[:, i, 1]  # [B, 1, H]
            pre = (layer(h).view(B, P, -1) * gamma + beta).view(B * P, -1)
            h = F.silu(pre)
            if T is not None:
                sig = torch.sigmoid(pre)
                scale = (gamma * (sig * (1 + pre * (1 - sig))).view(B, P, -1)).view(B * P, -1)
                T = torch.matmul(T, layer.weight.t()) * scale
        u = self.out(h).view(B, P, D)
        return u, (_jacobian_out(torch.matmul(T, self.out.weight.t()), B, P) if T is not None else None)


class SirenINR(nn.Module):
    def __init__(self, dim: int, latent_dim: int = 128, hidden: int = 256, n_hidden: int = 4, omega_0: float = 30.0):
        super().__init__()
        self.dim, self.latent_dim, self.omega_0 = dim, latent_dim, omega_0
        widths = [dim] + [hidden] * n_hidden
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        with torch.no_grad():  # SIREN initialisation
            self.hidden[0].weight.uniform_(-1 / dim, 1 / dim)
            for layer in self.hidden[1:]:
                bound = math.sqrt(6 / layer.in_features) / omega_0
                layer.weight.uniform_(-bound, bound)
        self.film = nn.Linear(latent_dim, 2 * hidden * n_hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor, with_jacobian: bool = False):
        B, P, D = x.shape
        h = x.reshape(B * P, D) * 2 - 1  # SIREN expects inputs in [-1, 1]
        T = (2 * torch.eye(D, dtype=x.dtype, device=x.device))[:, None, :].expand(D, B * P, D) if with_jacobian \
            else None
        film = self.film(z).view(B, len(self.hidden), 2, 1, -1)
        for i, layer in enumerate(self.hidden):
            gamma, beta = 1 + film[:, i, 0], film[:, i, 1]
            pre = (self.omega_0 * (layer(h).view(B, P, -1) * gamma + beta)).view(B * P, -1)
            h = torch.sin(pre)
            if T is not None:
                scale = (self.omega_0 * gamma * torch.cos(pre).view(B, P, -1)).view(B * P, -1)
                T = torch.matmul(T, layer.weight.t()) * scale
        u = self.out(h).view(B, P, D)
        return u, (_jacobian_out(torch.matmul(T, self.out.weight.t()), B, P) if T is not None else None)


def build_model(arch: str, dim: int, latent_dim: int = 128) -> nn.Module:
    if arch == "hashgrid":
        return HashGridINR(dim, latent_dim)
    if arch == "siren":
        return SirenINR(dim, latent_dim)
    raise ValueError(f"--arch must be hashgrid or siren, got {arch!r}")
