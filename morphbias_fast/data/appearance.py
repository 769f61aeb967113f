"""How a warped subject looks (`synth --appearance`, `--shortcut`).

`template`: the atlas image itself, warped: every subject has the atlas's contrast and no noise (the paper's
synthetic study). `mri`: nilearn's MNI152 tissue maps (CSF, grey and white matter), warped by the subject's field
and rendered as a scan from one of several sites: per-site tissue intensities with a per-subject jitter, a
partial-volume blur, a smooth multiplicative bias field, Rician noise and a global gain. The registration atlas
(the MNI152 T1) is then an image none of the subjects looks like, as with real scans.

`--shortcut intensity` is the negative control: the bias becomes a local brightening in the bias region (no
shape change), which an image representation can see and a deformation representation should not.

Every random draw of a subject's appearance comes from its own seed (cohort seed, row), so a counterfactual
twin (twins.py) gets the same site, contrast, bias field and noise as its subject."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

APPEARANCES = ("template", "mri")
SHORTCUTS = ("morphology", "intensity")


@dataclass(frozen=True)
class Site:
    tissue: tuple[float, float, float]  # mean intensity of CSF, grey matter, white matter
    contrast_sd: float                  # per-subject jitter of each tissue mean
    noise: float                        # Rician noise sigma
    bias_field: float                   # SD over the brain of the log of the multiplicative bias field


# Three scanners that differ the way T1 scans from different sites do (contrast between tissues, noise,
# field inhomogeneity); the values are ours, chosen so that the grey/white contrast-to-noise ratio runs from
# about 15 (site 0) to about 5 (site 2).
SITES = (
    Site((0.25, 0.60, 0.90), 0.03, 0.020, 0.08),
    Site((0.35, 0.55, 0.75), 0.04, 0.035, 0.15),
    Site((0.15, 0.48, 0.95), 0.03, 0.050, 0.25),
)
PV_BLUR_VOX = 0.6     # Gaussian sigma (voxels) of the partial-volume blur / point-spread of the scanner
GAIN_SD = 0.10        # SD of the log of each scan's global intensity gain


def subject_rng(seed: int, row: int) -> np.random.Generator:
    """The generator of one subject's appearance draws (the same for its counterfactual twin)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3, int(row))))


def draw_sites(n: int, bias: np.ndarray, confound: float, rng: np.random.Generator) -> np.ndarray:
    """Site of each subject: uniform over SITES, independent of disease and bias; with `confound` > 0 a
    subject with the bias is scanned at site 0 with that probability (else a uniform site)."""
    site = rng.integers(0, len(SITES), n)
    to_zero = (rng.random(n) < confound) & (np.asarray(bias) == 1)
    site[to_zero] = 0
    return site


def bump(shape, center_vox, radius_vox: float) -> np.ndarray:
    """A Gaussian bump, 1 at the centre, sigma = radius: where the intensity shortcut brightens the image."""
    idx = np.meshgrid(*[np.arange(n, dtype=np.float64) for n in shape], indexing="ij")
    r2 = sum((idx[k] - center_vox[k]) ** 2 for k in range(len(shape)))
    return np.exp(-r2 / (2 * radius_vox ** 2)).astype(np.float32)


def _bias_field(shape, mask: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    """exp(b) with b a random polynomial of degree 2 in the normalised coordinates, SD `sd` inside the mask:
    the slow intensity drift of a receive coil."""
    idx = list(np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij"))
    terms = idx + [a * b for i, a in enumerate(idx) for b in idx[i:]]
    b = sum(rng.standard_normal() * t for t in terms)
    b = b - b[mask].mean()
    b *= sd / (b[mask].std() + 1e-12)
    return np.exp(b)


def render_mri(tissues: np.ndarray, sites: np.ndarray, rngs: list, mask: np.ndarray,
               brighten: np.ndarray | None = None) -> np.ndarray:
    """Scans [B, *shape] from warped tissue probabilities [B, 3, *shape]. `sites` [B] index SITES, `rngs` are
    the subjects' generators (subject_rng); `brighten` [B, *shape] (or None) multiplies the noiseless image by
    (1 + brighten) before blur, field and noise: the intensity shortcut."""
    out = np.empty((len(tissues), *tissues.shape[2:]), np.float32)
    for b, (p, s, rng) in enumerate(zip(tissues, sites, rngs)):
        site = SITES[int(s)]
        mu = np.asarray(site.tissue) + site.contrast_sd * rng.standard_normal(3)
        clean = np.tensordot(mu, p, axes=1)
        if brighten is not None:
            clean = clean * (1 + brighten[b])
        img = ndimage.gaussian_filter(clean, PV_BLUR_VOX) * _bias_field(clean.shape, mask, site.bias_field, rng)
        n1, n2 = site.noise * rng.standard_normal((2, *img.shape))
        img = np.sqrt((img + n1) ** 2 + n2 ** 2) * np.exp(GAIN_SD * rng.standard_normal())
        out[b] = img
    return out


def noiseless(tissues: np.ndarray) -> np.ndarray:
    """The rendering without site contrast, blur, field or noise: CSF, grey and white matter at 1/3, 2/3, 1
    ([B, 3, *shape] -> [B, *shape]); what SimpleITK must reproduce from a subject's stored field."""
    return np.tensordot(np.array([1 / 3, 2 / 3, 1.0], np.float32), tissues, axes=([0], [1]))
