"""Decoding latents into displacement fields and images (the `decode` command; later: augmentation)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from morphbias_fast.errors import MorphbiasError


def decode_latents(model, z: torch.Tensor, shape: tuple) -> np.ndarray:
    """Voxel-unit displacements [B, D, *shape] for latents z [B, K]."""
    from morphbias_fast.register.train import decode_displacement

    return decode_displacement(model, z, tuple(shape)).cpu().numpy()


def decode_subject(run_dir, subject: str, out: Path, warped: Path | None = None) -> None:
    import nibabel as nib
    import SimpleITK as sitk

    from morphbias_fast.data import deform, fields
    from morphbias_fast.io import atomic_path
    from morphbias_fast.register.stage import load_registration

    model, latents, ckpt = load_registration(run_dir)
    if subject not in latents:
        raise MorphbiasError(f"subject {subject} is not in {Path(run_dir) / 'register' / 'latents.npz'}")
    atlas_path = Path(run_dir) / "register" / "atlas_T1w.nii.gz"
    u = decode_latents(model, latents[subject][None], ckpt["shape"])[0]
    ref = sitk.ReadImage(str(atlas_path))
    with atomic_path(Path(out)) as tmp:
        sitk.WriteImage(fields.to_itk(u, ref), str(tmp), useCompression=True)
    if warped is not None:
        atlas = nib.load(str(atlas_path))
        img = deform.warp(torch.as_tensor(np.asarray(atlas.dataobj, dtype=np.float32))[None, None],
                          torch.as_tensor(u, dtype=torch.float32)[None])[0, 0].numpy()
        with atomic_path(Path(warped)) as tmp:
            nib.save(nib.Nifti1Image(img, atlas.affine, atlas.header), str(tmp))
