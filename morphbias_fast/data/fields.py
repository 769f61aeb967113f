"""Displacement fields between our voxel-unit tensors and ITK's convention (physical LPS mm, vector NIfTI,
phi(x) = x + u(x) maps a subject-space point to the atlas point it samples: subject(x) = atlas(x + u(x)))."""
from __future__ import annotations

import numpy as np


def to_itk(u_vox: np.ndarray, ref_image):
    """Voxel-unit displacement [D, *shape] (components along array axes) -> SimpleITK vector image in physical
    mm on ref_image's grid (origin, spacing, direction copied)."""
    import SimpleITK as sitk

    D = u_vox.shape[0]
    direction = np.array(ref_image.GetDirection()).reshape(D, D)
    spacing = np.array(ref_image.GetSpacing())
    phys = np.einsum("ij,j...->i...", direction * spacing[None, :], u_vox.astype(np.float64))
    arr = np.moveaxis(phys, 0, -1).transpose(*reversed(range(D)), D)  # sitk arrays are [z, y, x, component]
    img = sitk.GetImageFromArray(arr, isVector=True)
    img.CopyInformation(ref_image)
    return img


def from_itk(img) -> np.ndarray:
    """SimpleITK vector image in physical mm -> voxel-unit displacement [D, *shape] along array axes."""
    import SimpleITK as sitk

    D = img.GetDimension()
    direction = np.array(img.GetDirection()).reshape(D, D)
    spacing = np.array(img.GetSpacing())
    arr = sitk.GetArrayFromImage(img)  # [z, y, x, D] (reversed axes)
    phys = np.moveaxis(arr.transpose(*reversed(range(D)), D), -1, 0)
    return np.einsum("ij,j...->i...", np.linalg.inv(direction * spacing[None, :]), phys)


def folded_fraction(img, mask: np.ndarray | None = None) -> float:
    """Share of voxels (inside mask when given, mask in array-axis order) where SimpleITK's
    DisplacementFieldJacobianDeterminant is <= 0. That filter ignores direction cosines, so it is only
    meaningful on grids with identity direction, which is what the synthetic cohorts use."""
    import SimpleITK as sitk

    D = img.GetDimension()
    if not np.allclose(np.array(img.GetDirection()).reshape(D, D), np.eye(D)):
        raise ValueError("folded_fraction needs a field with identity direction (LPS-aligned voxel axes)")
    det = sitk.GetArrayFromImage(sitk.DisplacementFieldJacobianDeterminant(img)).transpose(*reversed(range(D)))
    sel = det[mask] if mask is not None else det.ravel()
    return float((sel <= 0).mean()) if sel.size else 0.0
