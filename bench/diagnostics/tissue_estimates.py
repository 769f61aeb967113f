"""Can a per-scan tissue estimate stand in for the noiseless rendering on the mri cohort (issue 15, "a
similarity that compares tissues")? Before registering anything: how close each estimate, made from the scan
alone, comes to the subject's noiseless rendering (its own warped tissue maps at 1/3, 2/3, 1), over the brain
and near the left putamen where the bias acts. The noiseless rendering registered by our INR reached 33% EPE
and detection 0.61 (bench/RESULTS.md); an estimate far from it cannot do better than that.

    python bench/diagnostics/tissue_estimates.py --n 60 --json bench/results/tissue_estimates_mri0.json

Subjects are the first N rows of the mri cohort of seed 0 at the default size, made in memory by the
generator (the same subjects `synth --appearance mri --seed 0` writes). Estimates (none uses the generator):
- scan: the scan as stored;
- n4: SimpleITK's N4 bias-field correction (segmentation_cohort.n4_correct);
- curvature: the product's curvature diffusion of the scan (`register --denoise curvature`);
- n4+curvature: the same after N4;
- gmm: the four-class mixture's posteriors of the N4-corrected scan, weighted by the noiseless levels (what
  segmentation_cohort.py registered);
- curvature+gmm: the mixture fitted to the denoised scan;
- gmm+mrf(beta): the mixture's likelihood with a Potts prior on the 8 neighbours, by mean-field iterations
  (the spatial regularisation of FSL FAST and ANTs Atropos), beta the prior's weight per neighbour.
Scores are Pearson r with the noiseless rendering, inside the brain mask and inside a disc of twice the
region radius around the bias centre, mean over subjects and per site."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy import ndimage
from scipy.special import softmax
from tqdm import tqdm

from segmentation_cohort import LEVELS, n4_correct, tissue_log_likelihood
from morphbias_fast.data import appearance
from morphbias_fast.data.synth import Generator, SynthConfig
from morphbias_fast.data.template import REGIONS
from morphbias_fast.files import write_json
from morphbias_fast.register.denoise import curvature_diffusion

BETAS = (0.3, 1.0)
MF_ITERATIONS = 10  # mean-field sweeps; the posteriors change by < 1e-3 after about five


def mean_field(loglik: np.ndarray, beta: float) -> np.ndarray:
    """[H, W, K] posteriors of a Potts-regularised mixture: q_k ~ exp(loglik_k + beta * sum over the 8
    neighbours of q_k)."""
    q = softmax(loglik, axis=-1)
    kernel = np.ones((3, 3))
    kernel[1, 1] = 0
    for _ in range(MF_ITERATIONS):
        votes = np.stack([ndimage.convolve(q[..., k], kernel, mode="nearest") for k in range(q.shape[-1])], -1)
        q = softmax(loglik + beta * votes, axis=-1)
    return q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=60, help="subjects (N4 takes a few seconds each)")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    cfg = SynthConfig(appearance="mri", seed=0)
    gen = Generator(cfg)
    rows = np.arange(args.n)
    u, scans = gen.render(rows)
    clean = appearance.noiseless(gen.warped_tissues(u))
    sites = gen.participants["site"].to_numpy()[rows]
    brain = gen.tpl.mask
    centre = gen.tpl.voxel_of(REGIONS["bias"])
    near = brain & (appearance.bump(brain.shape, centre, 2 * cfg.region_radius_mm / gen.tpl.spacing) > np.exp(-0.5))

    est = {"scan": list(scans), "n4": [n4_correct(s) for s in tqdm(scans, desc="n4", unit="scan")]}
    est["curvature"] = list(curvature_diffusion(scans, [gen.tpl.spacing] * 2))
    est["n4+curvature"] = list(curvature_diffusion(np.stack(est["n4"]), [gen.tpl.spacing] * 2))
    for src, name in (("n4", "gmm"), ("n4+curvature", "curvature+gmm")):
        lls = [tissue_log_likelihood(x) for x in tqdm(est[src], desc=name, unit="scan")]
        est[name] = [softmax(ll, axis=-1) @ LEVELS for ll in lls]
        if name == "gmm":
            for beta in BETAS:
                est[f"gmm+mrf{beta}"] = [mean_field(ll, beta) @ LEVELS for ll in lls]

    def r(a, b, m):
        return float(np.corrcoef(a[m], b[m])[0, 1])

    table = {}
    for name, images in est.items():
        row = {}
        for where, m in (("brain", brain), ("bias_region", near)):
            rs = np.array([r(e, c, m) for e, c in zip(images, clean)])
            row[where] = {"r_mean": float(rs.mean()), "r_min": float(rs.min()),
                          "r_per_site": [float(rs[sites == k].mean()) for k in range(len(appearance.SITES))]}
        table[name] = row
        print(f"{name:16s} brain r {row['brain']['r_mean']:.3f} {np.round(row['brain']['r_per_site'], 3)}   "
              f"bias region r {row['bias_region']['r_mean']:.3f} {np.round(row['bias_region']['r_per_site'], 3)}")
    out = {"cohort": {"appearance": "mri", "seed": 0, "rows": args.n,
                      "subjects_per_site": np.bincount(sites, minlength=len(appearance.SITES)).tolist()},
           "estimates": table}
    write_json(args.json, out)


if __name__ == "__main__":
    main()
