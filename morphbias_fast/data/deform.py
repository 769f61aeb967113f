"""Diffeomorphic deformations as SimBA builds them: stationary velocity fields (SVF) made of smooth modes,
exponentiated by scaling and squaring, then used to warp the atlas. Fields live in voxel-index units with
components in array-axis order, as tensors [B, D, *spatial]; conversion to physical ITK (LPS, mm) fields is
done when they are written (synth.py)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage


def _grid(u: torch.Tensor) -> torch.Tensor:
    """grid_sample grid for sampling at x + u(x); u [B, D, *spatial] in voxel units (align_corners=True)."""
    D = u.shape[1]
    spatial = u.shape[2:]
    idx = torch.meshgrid(*[torch.arange(n, dtype=u.dtype, device=u.device) for n in spatial], indexing="ij")
    norm = [2 * (idx[d] + u[:, d]) / max(spatial[d] - 1, 1) - 1 for d in range(D)]
    return torch.stack(norm[::-1], dim=-1)  # grid_sample wants the last spatial axis first


def warp(img: torch.Tensor, u: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """img(x + u(x)) with linear interpolation; img [B or 1, C, *spatial], u [B, D, *spatial]."""
    if img.shape[0] == 1 and u.shape[0] > 1:
        img = img.expand(u.shape[0], *img.shape[1:])
    return F.grid_sample(img, _grid(u), mode="bilinear", padding_mode=padding_mode, align_corners=True)


def exp_svf(v: torch.Tensor, steps: int = 7) -> torch.Tensor:
    """Displacement u of phi = exp(v) by scaling and squaring: u <- u + u(x + u), `steps` times from v / 2^steps."""
    u = v / (2 ** steps)
    for _ in range(steps):
        u = u + warp(u, u, padding_mode="border")
    return u


def region_mode(shape, center_vox, radius_vox: float) -> np.ndarray:
    """Radial expansion field around a region, [D, *shape]: (x - c) exp(-|x - c|^2 / (2 r^2)), scaled so its
    largest displacement (at |x - c| = r) is 1 voxel. A positive coefficient enlarges the region."""
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    d = np.stack([idx[k] - center_vox[k] for k in range(len(shape))])
    g = np.exp(-(d ** 2).sum(0) / (2 * radius_vox ** 2))
    return (d * g / (radius_vox * np.exp(-0.5))).astype(np.float32)


def global_modes(shape, n_modes: int, smooth_vox: float, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Smooth random whole-brain velocity fields, [K, D, *shape], each with unit RMS length inside the mask."""
    D = len(shape)
    modes = np.empty((n_modes, D, *shape), dtype=np.float32)
    for k in range(n_modes):
        field = np.stack([ndimage.gaussian_filter(rng.standard_normal(shape), smooth_vox, mode="reflect")
                          for _ in range(D)])
        rms = np.sqrt((field ** 2).sum(0)[mask].mean())
        modes[k] = field / rms
    return modes


def transport(image: torch.Tensor, u_from: torch.Tensor, u_to: torch.Tensor, iterations: int = 6,
              keep_below: float = 0.05) -> torch.Tensor:
    """A subject's own image moved from the anatomy of field u_from to that of u_to (both atlas-to-subject
    displacements, subject(x) = atlas(x + u(x))): out(x) = image(y) with y + u_from(y) = x + u_to(x), solved by
    fixed-point iteration d <- u_to - u_from(x + d) for d = y - x. Where |d| stays under `keep_below` voxels
    the original voxel is kept as it is, so only the region that moves is interpolated (and blurred).
    image [B, *spatial], u_* [B, D, *spatial] in voxel units; returns [B, *spatial]."""
    d = u_to - u_from
    for _ in range(iterations):
        d = u_to - warp(u_from, d, padding_mode="border")
    moved = warp(image[:, None], d)[:, 0]
    still = d.norm(dim=1) < keep_below
    return torch.where(still, image, moved)
