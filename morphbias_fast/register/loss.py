"""The registration loss: similarity(subject(x), atlas(x + u(x, z))) + alpha * mean|u| + beta * mean(z^2)
+ gamma * mean |log det(I + du/dx)| + fold_weight * mean relu(fold_margin - det), the determinant from the
forward-mode Jacobian of the model (voxel units). The paper's recipe (INRConfig.paper) has L2 + alpha * mean
|u| in [-1, 1] units + beta * std(z) of the batch's latents, and no Jacobian terms.

Similarities: `mse` (subject and atlas share a contrast: template cohorts), `ncc` (global over the sampled
points), and `lncc`, local normalised cross-correlation for subjects whose contrast, gain and bias field differ
from the atlas's (mri cohorts, real scans). lncc compares a (2r+1)^D patch around each sampled point with the
atlas patch moved by the point's displacement: the network is evaluated once per point (not per patch voxel),
which treats u as constant over the patch, an approximation good to the field's curvature over r voxels."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from morphbias_fast.register.config import LNCC_RADIUS, INRConfig
from morphbias_fast.register.images import Images

DET_EPS = 1e-3
SIMILARITIES = ("mse", "ncc", "lncc")
NCC_EPS = 1e-6   # a flat patch (background) has no correlation; it adds 1 to the loss and no gradient


def _ncc(a: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    a = a - a.mean(dim, keepdim=True)
    b = b - b.mean(dim, keepdim=True)
    return (a * b).sum(dim) / (a.norm(dim=dim) * b.norm(dim=dim) + NCC_EPS)


def similarity(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Dissimilarity of subject values a and atlas values b: [B, P] for mse and ncc, [B, P, K] patches for lncc."""
    if kind == "mse":
        return ((a - b) ** 2).mean()
    return (1 - _ncc(a, b, dim=-1)).mean()


def patch_offsets(dim: int, radius: int = LNCC_RADIUS) -> torch.Tensor:
    """[(2r+1)^D, D] integer offsets of a cubic window."""
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    return torch.stack(torch.meshgrid(*[r] * dim, indexing="ij"), -1).reshape(-1, dim)


def loss_terms(model, imgs: Images, z: torch.Tensor, subjects: torch.Tensor, flat: torch.Tensor,
               cfg: INRConfig) -> dict:
    """Loss terms for subjects (rows of imgs) with latents z at the flat voxel indices `flat` [B, P]; every
    term is a mean over subjects of per-subject means (all subjects have P points)."""
    x, vox, target = imgs.sample(subjects, flat)
    with_jac = cfg.gamma > 0 or cfg.fold_weight > 0
    u, J = model(x, z, with_jacobian=with_jac)
    if cfg.similarity == "lncc":
        off = patch_offsets(imgs.dim, cfg.lncc_radius).to(vox.device)
        sim = similarity("lncc", imgs.patches(subjects, vox, off), imgs.atlas_at(vox[:, :, None] + off, u[:, :, None]))
    else:
        sim = similarity(cfg.similarity, target, imgs.atlas_at(vox, u))
    if cfg.recipe == "paper":  # |phi - x|_1 in the [-1, 1] coordinates and std(z), as published
        terms = {"sim": sim, "disp": (2 * u / imgs.extent).abs().mean(), "latent": z.std() if z.numel() > 1 else
                 z.new_zeros(())}
    else:
        terms = {"sim": sim, "disp": u.abs().mean(), "latent": (z ** 2).mean()}
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


