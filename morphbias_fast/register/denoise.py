"""Edge-preserving denoising of the subject scans before registration (SimpleITK's curvature anisotropic
diffusion). A local-correlation similarity on noisy scans learns fields that miss a structure's 2 mm change;
smoothing within tissues while keeping their boundaries gives it back (bench/RESULTS.md, "Denoising before
registration"). Only registration sees the denoised scans: the classifier trains on the scans as they are."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from tqdm.auto import tqdm

from morphbias_fast.data.synth import read_synth_config

DENOISE = ("auto", "none", "curvature")
ITERATIONS = 10
CONDUCTANCE = 2.0  # relative to the image's mean gradient (ITK's convention), so the intensity scale does not matter


def denoise_for(cohort_dir) -> str:
    """What `auto` means: none where every subject is the noise-free atlas warped (a template cohort), curvature
    wherever scans carry noise (mri cohorts and real scans)."""
    synth = read_synth_config(cohort_dir)
    return "none" if synth is not None and synth.appearance == "template" else "curvature"


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
