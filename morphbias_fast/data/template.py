"""The embedded atlas: nilearn's MNI152 2009 T1 template and brain mask (shipped inside nilearn, no download),
resampled to the requested spacing and cropped to the brain, as a 2-D axial slice or a 3-D volume."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# MNI coordinates (mm, RAS) of the two effect regions (docs/METHOD.md section 1; radius about 8-10 mm).
REGIONS = {"disease": (38.0, 4.0, 2.0), "bias": (-24.0, 4.0, 2.0)}  # right insula, left putamen
SLICE_Z_MM = 2.0  # the axial slice through both regions
MARGIN_MM = 6.0


@dataclass
class Template:
    image: np.ndarray   # [X, Y] or [X, Y, Z] float32 in [0, 1]
    mask: np.ndarray    # same shape, bool brain mask
    affine: np.ndarray  # 4x4 voxel -> RAS mm (for 2-D the third column is the slice's z)
    spacing: float

    @property
    def dim(self) -> int:
        return self.image.ndim

    def voxel_of(self, mm) -> np.ndarray:
        """Voxel coordinates (float) of an RAS point in mm, for the image's dimensions."""
        ijk = np.linalg.solve(self.affine, np.array([*mm, 1.0]))[:3]
        return ijk[: self.dim]


def load_template(dim: int = 2, spacing: float = 2.0) -> Template:
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if not (0.5 <= spacing <= 8):
        raise ValueError(f"spacing must be between 0.5 and 8 mm, got {spacing}")
    from nilearn import datasets  # imported here: nilearn is slow to import and only this stage needs it

    t1 = datasets.load_mni152_template(resolution=1)
    brain = datasets.load_mni152_brain_mask(resolution=1)
    src = np.asarray(t1.dataobj, dtype=np.float32)
    src_mask = np.asarray(brain.dataobj) > 0
    A = t1.affine
    # Bounding box of the brain (whole volume for 3-D, the slice for 2-D) in mm, with a margin.
    ijk = np.argwhere(src_mask)
    mm = ijk @ A[:3, :3].T + A[:3, 3]
    if dim == 2:
        k = int(round((SLICE_Z_MM - A[2, 3]) / A[2, 2]))
        mm = mm[ijk[:, 2] == k]
    lo, hi = mm.min(0) - MARGIN_MM, mm.max(0) + MARGIN_MM
    n = np.floor((hi - lo) / spacing).astype(int) + 1
    if dim == 2:
        lo[2], n[2] = SLICE_Z_MM, 1
    # Voxel axes run along ITK's LPS axes (x towards Left, y towards Posterior, z towards Superior): the
    # NIfTI affine has -spacing on x and y, and ITK sees an identity direction. ITK filters that ignore the
    # direction cosines (DisplacementFieldJacobianDeterminant does) then measure our fields correctly.
    start = np.array([hi[0], hi[1], lo[2]])
    step = np.array([-spacing, -spacing, spacing])
    axes = [start[d] + step[d] * np.arange(n[d]) for d in range(3)]
    grid_mm = np.stack(np.meshgrid(*axes, indexing="ij"), axis=0).reshape(3, -1)
    src_vox = np.linalg.solve(A[:3, :3], grid_mm - A[:3, 3:4])
    shape = tuple(n[:dim])
    image = ndimage.map_coordinates(src, src_vox, order=1, mode="constant").reshape(shape).astype(np.float32)
    mask = ndimage.map_coordinates(src_mask.astype(np.float32), src_vox, order=1).reshape(shape) >= 0.5
    affine = np.diag([-spacing, -spacing, spacing if dim == 3 else 1.0, 1.0])
    affine[:3, 3] = start
    return Template(np.clip(image, 0, None), mask, affine, float(spacing))
