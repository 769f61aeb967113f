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


def _grid(dim: int, spacing: float):
    """(the MNI152 voxel coordinates of every output voxel [3, N], output shape, output affine): the brain's
    bounding box (the slice's for 2-D) with a margin, on LPS-oriented axes at `spacing` mm."""
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    if not (0.5 <= spacing <= 8):
        raise ValueError(f"spacing must be between 0.5 and 8 mm, got {spacing}")
    from nilearn import datasets  # imported here: nilearn is slow to import and only this stage needs it

    brain = datasets.load_mni152_brain_mask(resolution=1)
    A = brain.affine
    ijk = np.argwhere(np.asarray(brain.dataobj) > 0)
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
    affine = np.diag([-spacing, -spacing, spacing if dim == 3 else 1.0, 1.0])
    affine[:3, 3] = start
    return np.linalg.solve(A[:3, :3], grid_mm - A[:3, 3:4]), tuple(n[:dim]), affine


def _resample(img, src_vox: np.ndarray, shape) -> np.ndarray:
    """A nilearn MNI152 image (all share one 1 mm grid) at the voxel coordinates of `_grid`, linear."""
    src = np.asarray(img.dataobj, dtype=np.float32)
    return ndimage.map_coordinates(src, src_vox, order=1, mode="constant").reshape(shape).astype(np.float32)


def load_template(dim: int = 2, spacing: float = 2.0) -> Template:
    from nilearn import datasets

    src_vox, shape, affine = _grid(dim, spacing)
    image = _resample(datasets.load_mni152_template(resolution=1), src_vox, shape)
    mask = _resample(datasets.load_mni152_brain_mask(resolution=1), src_vox, shape) >= 0.5
    return Template(np.clip(image, 0, None), mask, affine, float(spacing))


def load_tissues(dim: int = 2, spacing: float = 2.0) -> np.ndarray:
    """[3, *shape] float32 tissue probabilities (CSF, grey matter, white matter) on load_template's grid, from
    nilearn's MNI152 2009 grey- and white-matter maps; CSF is the brain mask minus both (clipped at 0)."""
    from nilearn import datasets

    src_vox, shape, _ = _grid(dim, spacing)
    gm = _resample(datasets.load_mni152_gm_template(resolution=1), src_vox, shape)
    wm = _resample(datasets.load_mni152_wm_template(resolution=1), src_vox, shape)
    brain = _resample(datasets.load_mni152_brain_mask(resolution=1), src_vox, shape)
    gm, wm = np.clip(gm, 0, 1), np.clip(wm, 0, 1)
    csf = np.clip(brain - gm - wm, 0, 1)
    return np.stack([csf, gm, wm]).astype(np.float32)
