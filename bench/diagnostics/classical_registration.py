"""An independent oracle for the registration's endpoint error: how close does a classical per-subject
registration (SimpleITK B-spline, local correlation, three resolutions) get to the true fields of a cohort,
and does it see the bias? If it is no closer than the INR, the images themselves limit the field; if it is
closer, our training is the limit (bench/RESULTS.md, issue 15).

    python bench/diagnostics/classical_registration.py COHORT_DIR --n 20 --json OUT.json
        [--preprocess none,curvature,gaussian,noiseless] [--meshes 4,8,16] [--metric lncc|mattes|lncc+mattes]

Per subject of the test split (the first N, which are in no particular order of bias or disease): fixed = the
subject, moving = the cohort's atlas (so the transform maps a subject point to the atlas point it samples, our
u), metric ANTS neighbourhood correlation of radius 2 (our lncc window), a B-spline transform of each mesh
size, L-BFGS-B, shrink factors 4, 2, 1 with smoothing 2, 1, 0 voxels.

Reported per preprocessing of the subject image and mesh:
- epe_share: endpoint error as a share of the true displacement inside the brain mask, as the register stage
  reports it (its median over subjects; the number of subjects whose registration diverged, a share over 1,
  which L-BFGS-B on a smoothed scan sometimes does; and the share over the others);
- bias_r: Pearson r, over subjects (and over the converged ones), between the registered and the true field's
  local volume change in the bias region (log det of the Jacobian, weighted by a Gaussian of the region's radius at its centre);
- bias_auc: ROC AUC of that registered volume change for the true bias label (true fields: true_bias_auc).
Preprocessing (SimpleITK filters; the atlas is a clean template and is left as it is):
- none: the scan as stored;
- curvature: the register stage's denoising (morphbias_fast.register.denoise: curvature anisotropic diffusion,
  edge-preserving smoothing);
- gaussian: Gaussian smoothing of sigma one voxel (no edge preservation);
- noiseless: not a preprocessing but the ceiling any denoiser could reach (mri cohorts of `synth` only): the
  subject's own warped tissue maps rendered without site contrast, blur, field or noise."""
from __future__ import annotations

import argparse
import time

import numpy as np
import SimpleITK as sitk
import torch
from field_features import log_det
from sklearn.metrics import roc_auc_score

from morphbias_fast.data import appearance, fields, load_cohort, read_nifti
from morphbias_fast.data.synth import Generator, read_synth_config
from morphbias_fast.data.template import REGIONS
from morphbias_fast.files import write_json
from morphbias_fast.register.denoise import curvature_diffusion


def register(fixed, moving, mesh: int, metric: str = "lncc"):
    """The subject's displacement field [D, *shape] from a B-spline registration of the atlas to it. metric
    lncc or mattes: one three-resolution optimisation with it; lncc+mattes: the lncc one, then mutual
    information at full resolution from where lncc ended (does a second similarity add to a field that holds?)."""
    tx = sitk.BSplineTransformInitializer(fixed, [mesh] * fixed.GetDimension())
    if metric == "lncc+mattes":
        _optimise(fixed, moving, tx, "lncc", [4, 2, 1], [2, 1, 0])
        _optimise(fixed, moving, tx, "mattes", [1], [0], iterations=REFINE_ITERATIONS)
    else:
        _optimise(fixed, moving, tx, metric, [4, 2, 1], [2, 1, 0])
    disp = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(),
                                             fixed.GetSpacing(), fixed.GetDirection())
    return fields.from_itk(disp)


def _optimise(fixed, moving, tx, metric: str, shrink, smooth, iterations: int = 100) -> None:
    reg = sitk.ImageRegistrationMethod()
    if metric == "lncc":
        reg.SetMetricAsANTSNeighborhoodCorrelation(2)
    else:  # every voxel sampled: a 2-D slice is small, and random sampling would make the figures noisier
        reg.SetMetricAsMattesMutualInformation(MI_BINS)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=iterations)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(smooth)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=True)
    reg.Execute(fixed, moving)


REFINE_ITERATIONS = 30  # the mutual-information refinement: a third of a full optimisation, from a field that holds
MI_BINS = 32  # Mattes' histogram bins: ITK's examples and ANTs' defaults use 32


def preprocess(name: str, img, noiseless_img=None):
    if name == "none":
        return img
    if name == "curvature":  # the register stage's own denoising
        arr = sitk.GetArrayFromImage(img).T[None]
        out = sitk.GetImageFromArray(curvature_diffusion(arr, img.GetSpacing())[0].T.copy())
        out.CopyInformation(img)
        return out
    if name == "gaussian":  # plain smoothing, one voxel: what edge preservation is compared with
        return sitk.SmoothingRecursiveGaussian(img, float(img.GetSpacing()[0]))
    if name == "noiseless":
        return noiseless_img
    raise SystemExit(f"--preprocess: unknown {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", required=True)
    ap.add_argument("--preprocess", default="none")
    ap.add_argument("--meshes", default="4,8,16")
    ap.add_argument("--metric", choices=("lncc", "mattes", "lncc+mattes"), default="lncc",
                    help="lncc: ANTS neighbourhood correlation, radius 2; mattes: Mattes mutual information; "
                         "lncc+mattes: lncc, then a mutual-information refinement at full resolution")
    args = ap.parse_args()
    names, meshes = args.preprocess.split(","), [int(m) for m in args.meshes.split(",")]
    cohort = load_cohort(args.cohort, load_images=False)
    mask = read_nifti(cohort.mask_path)[0] > 0.5
    atlas_aff = read_nifti(cohort.atlas_path)[1]
    spacing = np.sqrt((atlas_aff[:3, :mask.ndim] ** 2).sum(0)).reshape(-1, *[1] * mask.ndim)
    moving = fields.read_grid(cohort.atlas_path, sitk.sitkFloat32)
    rows = cohort.index("test")[: args.n]
    ids, bias = list(np.asarray(cohort.ids)[rows]), np.asarray(cohort.bias)[rows]
    cfg = read_synth_config(args.cohort)
    if cfg is None or ("noiseless" in names and cfg.appearance != "mri"):
        raise SystemExit(f"{args.cohort}: a cohort written by synth is needed (an mri one for noiseless)")
    gen = Generator(cfg)
    weight = appearance.bump(mask.shape, gen.tpl.voxel_of(REGIONS["bias"]), cfg.region_radius_mm / gen.tpl.spacing)

    def region(u: np.ndarray) -> float:
        return float((log_det(u[None])[0] * weight).sum() / weight.sum())

    truths = [fields.from_itk(sitk.ReadImage(str(cohort.displacement_path(p)), sitk.sitkVectorFloat64)) for p in ids]
    true_region = np.array([region(t) for t in truths])
    out = {"cohort": str(args.cohort), "metric": args.metric, "n": len(ids), "n_bias": int(bias.sum()),
           "true_bias_auc": float(roc_auc_score(bias, true_region)), "preprocess": {}}
    print("true fields' bias AUC", out["true_bias_auc"], flush=True)
    for name in names:
        out["preprocess"][name] = {}
        for mesh in meshes:
            err, mag, reg_region, t0 = [], [], [], time.perf_counter()
            for pid, row, truth in zip(ids, rows, truths):
                fixed = fields.read_grid(cohort.image_path(pid), sitk.sitkFloat32)
                clean = None
                if name == "noiseless":
                    u = torch.from_numpy(truth[None].astype(np.float32))
                    clean = sitk.GetImageFromArray(appearance.noiseless(gen.warped_tissues(u))[0].T.copy())
                    clean.CopyInformation(fixed)
                u = register(preprocess(name, fixed, clean), moving, mesh, args.metric)
                err.append(np.sqrt((((u - truth) * spacing) ** 2).sum(0))[mask].mean())
                mag.append(np.sqrt(((truth * spacing) ** 2).sum(0))[mask].mean())
                reg_region.append(region(u))
            reg_region, share = np.array(reg_region), np.array(err) / np.array(mag)
            ok = share < 1  # a registration that diverged (moved points farther than no registration would)
            res = {"epe_share": float(np.mean(err) / np.mean(mag)),
                   "epe_share_median": float(np.median(share)), "diverged": int((~ok).sum()),
                   "epe_share_converged": float(np.mean(np.array(err)[ok]) / np.mean(np.array(mag)[ok])),
                   "bias_r": float(np.corrcoef(reg_region, true_region)[0, 1]),
                   "bias_r_converged": float(np.corrcoef(reg_region[ok], true_region[ok])[0, 1]),
                   "bias_auc": float(roc_auc_score(bias, reg_region)),
                   "seconds_per_subject": (time.perf_counter() - t0) / len(ids)}
            out["preprocess"][name][str(mesh)] = res
            print(name, mesh, res, flush=True)
    write_json(args.json, out)


if __name__ == "__main__":
    main()
