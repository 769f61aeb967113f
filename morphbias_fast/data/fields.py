"""Displacement fields between our voxel-unit tensors and ITK's convention (physical LPS mm, vector NIfTI,
phi(x) = x + u(x) maps a subject-space point to the atlas point it samples: subject(x) = atlas(x + u(x))).

A 2-D cohort stores its images as single-slice volumes (BIDS requires 3-D anatomy), which ITK reads as 3-D
images of one slice; its fields stay 2-D ITK images (ITK reads a one-slice vector image back as 2-D, so a 3-D
one-slice field could not be applied). `read_grid` gives the 2-D slice of such an image, the grid a 2-D field
lives on; `write` puts the slice's z position in the field's NIfTI header (ITK writes 0), so image and field
agree for readers that keep the third axis (nibabel, FSL)."""
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


def read_grid(path, pixel_type=None):
    """SimpleITK image of `path` (as `pixel_type` when given); a single-slice volume as its 2-D slice."""
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path)) if pixel_type is None else sitk.ReadImage(str(path), pixel_type)
    if img.GetDimension() == 3 and img.GetSize()[2] == 1:
        img = img[:, :, 0]
    return img


def write(img, path, z_mm: float = 0.0) -> None:
    """Write a SimpleITK field to `path` (compressed NIfTI); a 2-D field gets the slice's z (mm) as the z
    offset of its NIfTI header."""
    import nibabel as nib
    import SimpleITK as sitk

    sitk.WriteImage(img, str(path), useCompression=True)
    if img.GetDimension() == 2 and z_mm != 0.0:
        nii = nib.load(str(path))
        affine = nii.affine.copy()
        affine[2, 3] = z_mm
        header = nii.header.copy()
        header.set_sform(affine, code=int(nii.header["sform_code"]))
        header.set_qform(affine, code=int(nii.header["qform_code"]))
        nib.save(nib.Nifti1Image(np.asanyarray(nii.dataobj), affine, header), str(path))


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
