"""Edge-preserving denoising of the subject scans before registration (SimpleITK's curvature anisotropic
diffusion), `register --denoise curvature`. Only registration sees the denoised scans: the classifier trains on
the scans as they are. Off by default: on an mri cohort it helped a classical B-spline registration (its worst
subjects) and raised the bias probe of our latents, but moved neither our endpoint error beyond run-to-run
spread nor detection (bench/RESULTS.md, "Denoising before registration")."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from tqdm.auto import tqdm

ITERATIONS = 10
CONDUCTANCE = 2.0  # relative to the image's mean gradient (ITK's convention), so the intensity scale does not matter


def curvature_diffusion(images: np.ndarray, spacing, progress: bool = False) -> np.ndarray:
    """[N, *shape] scans (array axes in voxel order) -> the same, each smoothed by curvature anisotropic
    diffusion on its physical grid (`spacing` in mm per array axis)."""
    dim = images.ndim - 1
    # A quarter of ITK's stability limit (smallest spacing / 2^(D+1)): 0.0625 on the 2 mm 2-D grid, where
    # bench/diagnostics/classical_registration.py measured it.
    step = float(np.min(spacing)) / 2 ** (dim + 3)
    out = np.empty(images.shape, np.float32)
    for i in tqdm(range(len(images)), desc="denoise", unit="scan", disable=not progress):
        img = sitk.GetImageFromArray(np.asarray(images[i], np.float32).T.copy())  # sitk arrays run [z, y, x]
        img.SetSpacing([float(s) for s in spacing])
        smooth = sitk.CurvatureAnisotropicDiffusion(img, timeStep=step, conductanceParameter=CONDUCTANCE,
                                                     numberOfIterations=ITERATIONS)
        out[i] = sitk.GetArrayFromImage(smooth).T
    return out
