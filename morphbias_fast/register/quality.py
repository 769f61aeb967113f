"""How good a registration is, per split: image error of the warped atlas, endpoint error against the true
field when the cohort has one, and folded voxels as SimpleITK measures them (an independent implementation)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from morphbias_fast.data import fields
from morphbias_fast.register.decode import Decoder
from morphbias_fast.register.images import Images


def split_metrics(model, imgs: Images, z: torch.Tensor, rows: np.ndarray, cohort, mask: np.ndarray,
                  spacing: np.ndarray, atlas_path, batch: int = 64) -> dict:
    """Image MSE (and the unwarped atlas's, identity_mse), endpoint error (mm, inside the brain mask) against
    the true field when the cohort has it,
    and the share of folded voxels as SimpleITK's DisplacementFieldJacobianDeterminant measures it."""
    decoder = Decoder(model, imgs.atlas)  # the atlas scaled as the images are
    ref = fields.read_grid(atlas_path)
    mse, identity, epe, true_mag, folded = [], [], [], [], []
    for lo in range(0, len(rows), batch):
        sel = rows[lo: lo + batch]
        u = decoder.fields(z[lo: lo + batch])
        warped = decoder.warp(u).reshape(len(sel), -1)
        target = imgs.images[torch.as_tensor(sel, device=imgs.device)]
        mse += ((warped - target) ** 2).mean(1).tolist()
        identity += ((imgs.atlas.reshape(1, -1) - target) ** 2).mean(1).tolist()  # the unwarped atlas
        for k, r in enumerate(sel):
            u_k = u[k].cpu().numpy()
            itk = fields.to_itk(u_k, ref)
            folded.append(fields.folded_fraction(itk, mask))
            truth_path = cohort.displacement_path(cohort.ids[r])
            if truth_path is not None:
                truth = fields.from_itk(sitk.ReadImage(str(truth_path), sitk.sitkVectorFloat64))
                diff = np.sqrt((((u_k - truth) * spacing.reshape(-1, *[1] * imgs.dim)) ** 2).sum(0))
                mag = np.sqrt(((truth * spacing.reshape(-1, *[1] * imgs.dim)) ** 2).sum(0))
                epe.append(float(diff[mask].mean()))
                true_mag.append(float(mag[mask].mean()))
    out = {"n": int(len(rows)), "image_mse": float(np.mean(mse)), "identity_mse": float(np.mean(identity)),
           "folded_fraction_max": float(np.max(folded)),
           "folded_fraction_mean": float(np.mean(folded)),
           "subjects_over_0.1pct_folded": int(np.sum(np.array(folded) > 1e-3))}
    if epe:
        out.update({"epe_mm": float(np.mean(epe)), "true_displacement_mm": float(np.mean(true_mag)),
                    "epe_ratio": float(np.mean(epe) / np.mean(true_mag))})
    return out
