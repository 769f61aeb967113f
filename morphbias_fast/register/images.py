"""The cohort's images and the atlas as tensors on one device, and the voxel sampler of training."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


class Images:
    """The cohort's images and the atlas as tensors on one device, with the point sampler."""

    def __init__(self, images: np.ndarray, atlas: np.ndarray, device: torch.device):
        self.shape = tuple(atlas.shape)
        self.dim = atlas.ndim
        scale = float(np.percentile(atlas, 99.5)) or 1.0  # intensities to ~[0, 1]; the same for all images
        self.atlas = torch.as_tensor(atlas / scale, dtype=torch.float32, device=device)[None, None]
        self.images = torch.as_tensor(images / scale, dtype=torch.float32, device=device).reshape(len(images), -1)
        self.n_vox = self.images.shape[1]
        self.extent = torch.tensor([max(n - 1, 1) for n in self.shape], dtype=torch.float32, device=device)
        strides = np.cumprod((self.shape[1:] + (1,))[::-1])[::-1].copy()
        self.strides = torch.as_tensor(strides, device=device)
        self.device = device

    def subset(self, rows) -> "Images":
        """The same atlas and grid with only the images of `rows` (a shallow copy)."""
        out = Images.__new__(Images)
        out.__dict__.update(self.__dict__)
        out.images = self.images[torch.as_tensor(rows, device=self.device)]
        return out

    def coords(self, flat_idx: torch.Tensor) -> torch.Tensor:
        """Flat voxel indices [...] -> voxel coordinates [..., D] (float, array-axis order)."""
        return torch.stack([(flat_idx // s) % n for s, n in zip(self.strides.tolist(), self.shape)], -1).float()

    def sample_indices(self, n: int, points: int, gen: torch.Generator) -> torch.Tensor:
        """Flat voxel indices [n, points], drawn for a whole batch at once so that every process of a
        distributed run draws the same ones and each keeps its own rows."""
        return torch.randint(0, self.n_vox, (n, points), generator=gen)

    def sample_positions(self, n: int, points: int, gen: torch.Generator, std: float) -> torch.Tensor:
        """Continuous voxel positions [n, points, D] from N(0, std) per axis in [-1, 1] coordinates, clamped to
        [-1, 1] (the paper's sampler: the centre of the volume more often than the edges)."""
        c = (torch.randn(n, points, self.dim, generator=gen) * std).clamp_(-1, 1)
        return (c + 1) / 2 * self.extent.cpu()

    def sample(self, subjects: torch.Tensor, where: torch.Tensor):
        """(x in [0,1]^D [B, P, D], voxel coords [B, P, D], subject intensities [B, P]) at flat voxel indices
        [B, P] (integer) or at continuous voxel positions [B, P, D] (float; the images interpolated linearly)."""
        where = where.to(self.device)
        if where.is_floating_point():
            rows = self.images[subjects.to(self.device)].view(len(subjects), 1, *self.shape)
            return where / self.extent, where, self._interpolate(rows, where)
        vox = self.coords(where)
        return vox / self.extent, vox, torch.gather(self.images[subjects.to(self.device)], 1, where)

    def _interpolate(self, volumes: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """volumes [B, 1, *shape] at voxel positions pos [B, P, ..., D] -> [B, P, ...] (linear, zero outside)."""
        norm = 2 * pos / self.extent - 1
        grid = norm.flip(-1).reshape(pos.shape[0], -1, *[1] * (self.dim - 1), self.dim)
        out = F.grid_sample(volumes, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return out.view(pos.shape[:-1])

    def patches(self, subjects: torch.Tensor, vox: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """Subject intensities at vox + each integer offset ([B, P, D] + [K, D] -> [B, P, K]), the positions
        clamped to the grid (a patch at the border repeats its edge)."""
        pos = (vox[:, :, None, :] + offsets).long()
        hi = torch.tensor(self.shape, device=self.device) - 1
        pos = torch.minimum(pos.clamp_min(0), hi)
        flat = (pos * self.strides).sum(-1)
        rows = self.images[subjects.to(self.device)]
        return torch.gather(rows, 1, flat.reshape(len(rows), -1)).view(flat.shape)

    def atlas_at(self, vox: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Atlas intensities at vox + u ([B, P, ..., D] voxel units) -> [B, P, ...]."""
        pos = vox + u
        return self._interpolate(self.atlas.expand(pos.shape[0], *self.atlas.shape[1:]), pos)


