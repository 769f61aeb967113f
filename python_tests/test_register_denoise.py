"""Denoising before registration: it must smooth noise inside a tissue while keeping the boundary (which is what
separates it from a plain blur), follow each axis's spacing, and reach the register stage when asked for."""
import numpy as np
import pytest
import torch
from scipy import ndimage

from morphbias_fast import register
from morphbias_fast.data import load_cohort, read_nifti
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.denoise import curvature_diffusion
from morphbias_fast.register.images import Images
from morphbias_fast.register.stage import _load_inputs
from morphbias_fast.runfolder import RunFolder


def _step_image(seed: int = 0):
    """Two tissues (0.3 | 0.7) meeting at column 25, with Gaussian noise of SD 0.05 (the mri cohort's sites
    have Rician SD 0.02-0.05 on a grey/white contrast of 0.2-0.47)."""
    clean = np.full((40, 50), 0.3, np.float32)
    clean[:, 25:] = 0.7
    return clean + np.random.default_rng(seed).normal(0, 0.05, clean.shape).astype(np.float32)


def _flat_sd(a):  # noise left inside the left tissue, away from the boundary and the image border
    return a[5:35, 5:20].std()


def _edge_step(a):  # contrast between the two columns that meet at the boundary
    return a[5:35, 25].mean() - a[5:35, 24].mean()


def test_denoising_removes_noise_and_keeps_the_boundary():
    noisy = _step_image()
    out = curvature_diffusion(noisy[None], (2.0, 2.0))[0]
    blur = ndimage.gaussian_filter(noisy, 1.0)  # a plain blur that removes about as much noise
    # Measured: noise SD 0.049 -> 0.015 (0.30 of it; the blur 0.25); the boundary's step 0.39 -> 0.36 (0.93 of
    # it; the blur keeps 0.40). The bounds sit between what a no-op (1.0 of the noise) or a blur (0.4 of the
    # step) would give and the measured values.
    assert _flat_sd(out) < 0.5 * _flat_sd(noisy)
    assert _edge_step(out) > 0.8 * _edge_step(noisy)
    assert _edge_step(blur) < 0.5 * _edge_step(noisy)  # the blur fails the same bound: the test tells them apart


def test_each_axis_gets_its_own_spacing():
    img = np.random.default_rng(1).random((12, 17)).astype(np.float32)
    a = curvature_diffusion(img[None], (1.0, 3.0))[0]
    transposed = curvature_diffusion(np.ascontiguousarray(img.T)[None], (3.0, 1.0))[0].T
    np.testing.assert_array_equal(a, transposed)  # the same filter on the same grid: bit for bit (measured)
    swapped = curvature_diffusion(img[None], (3.0, 1.0))[0]
    assert np.abs(a - swapped).max() > 0.05  # measured 0.15: the spacing is used, on the right axes


def test_denoising_is_opt_in():
    assert INRConfig().denoise == "none" and INRConfig.paper().denoise == "none"
    with pytest.raises(MorphbiasError, match="--denoise"):
        INRConfig(denoise="gaussian")


def test_the_register_stage_trains_on_the_denoised_scans(tmp_path):
    mri = tmp_path / "mri"
    synthesize(mri, SynthConfig(seed=2, appearance="mri", n_train=4, n_val=2, n_test=4, spacing=8.0), progress=False)
    inr = INRConfig(steps=2, time_budget=None, fit_steps=1, batch_subjects=2, device="cpu", denoise="curvature")
    metrics = register.run(RunFolder(tmp_path / "run"), register.Config(mri, inr, progress=False)).metrics
    assert metrics["config"]["denoise"] == "curvature"  # recorded with the run's settings
    cohort = load_cohort(mri)
    got = _load_inputs(register.Config(mri, INRConfig(denoise="curvature", device="cpu"))).imgs.images
    want = Images(curvature_diffusion(cohort.images, (8.0, 8.0)), read_nifti(cohort.atlas_path)[0],
                  torch.device("cpu")).images
    assert torch.equal(got, want)  # the same scans through the same filter and scaling: bit for bit
