"""The registration loss: similarity(subject(x), atlas(x + u(x, z))) + alpha * mean|u| + beta * mean(z^2)
+ gamma * mean |log det(I + du/dx)| + fold_weight * mean relu(fold_margin - det), the determinant from the
forward-mode Jacobian of the model (voxel units)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.images import Images

DET_EPS = 1e-3


def similarity(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return ((a - b) ** 2).mean()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    ncc = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
    return (1 - ncc).mean()


def loss_terms(model, imgs: Images, z: torch.Tensor, subjects: torch.Tensor, flat: torch.Tensor,
               cfg: INRConfig) -> dict:
    """Loss terms for subjects (rows of imgs) with latents z at the flat voxel indices `flat` [B, P]; every
    term is a mean over subjects of per-subject means (all subjects have P points)."""
    x, vox, target = imgs.sample(subjects, flat)
    with_jac = cfg.gamma > 0 or cfg.fold_weight > 0
    u, J = model(x, z, with_jacobian=with_jac)
    terms = {"sim": similarity(cfg.similarity, target, imgs.atlas_at(vox, u)),
             "disp": u.abs().mean(), "latent": (z ** 2).mean()}
    total = terms["sim"] + cfg.alpha * terms["disp"] + cfg.beta * terms["latent"]
    if with_jac:
        det = det_identity_plus(J / imgs.extent)  # du/dx -> du/d(voxel): divide column d by (n_d - 1)
        terms["jac"] = torch.log(det.clamp_min(DET_EPS)).abs().mean()
        terms["fold"] = F.relu(cfg.fold_margin - det).mean()
        total = total + cfg.gamma * terms["jac"] + cfg.fold_weight * terms["fold"]
    terms["total"] = total
    return terms


def det_identity_plus(J: torch.Tensor) -> torch.Tensor:
    """det(I + J) for J [..., D, D] with D = 2 or 3, written out (batched LU is slow for tiny matrices)."""
    A = J + torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
    if J.shape[-1] == 2:
        return A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
    return (A[..., 0, 0] * (A[..., 1, 1] * A[..., 2, 2] - A[..., 1, 2] * A[..., 2, 1])
            - A[..., 0, 1] * (A[..., 1, 0] * A[..., 2, 2] - A[..., 1, 2] * A[..., 2, 0])
            + A[..., 0, 2] * (A[..., 1, 0] * A[..., 2, 1] - A[..., 1, 1] * A[..., 2, 0]))


