"""An independent oracle for the registration's endpoint error: how close does a classical per-subject
registration (SimpleITK B-spline, local correlation, three resolutions) get to the true fields of a cohort?
If it is no closer than the INR, the images themselves limit the field; if it is closer, our training is the
limit (bench/RESULTS.md, issue 15).

    python bench/diagnostics/classical_registration.py COHORT_DIR --n 20 --json OUT.json

Per subject of the test split (the first N): fixed = the subject, moving = the cohort's atlas (so the
transform maps a subject point to the atlas point it samples, our u), metric ANTS neighbourhood correlation
of radius 2 (our lncc window), a B-spline transform of each mesh size below, L-BFGS-B, shrink factors 4, 2, 1
with smoothing 2, 1, 0 voxels. Endpoint error as a share of the true displacement inside the brain mask, as
the register stage reports it."""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import SimpleITK as sitk

from morphbias_fast.data import fields, load_cohort, read_nifti

MESHES = (4, 8, 16)


def register(fixed, moving, mesh: int):
    tx = sitk.BSplineTransformInitializer(fixed, [mesh] * fixed.GetDimension())
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsANTSNeighborhoodCorrelation(2)
    reg.SetOptimizerAsLBFGSB(gradientConvergenceTolerance=1e-5, numberOfIterations=100)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(tx, inPlace=True)
    reg.Execute(fixed, moving)
    disp = sitk.TransformToDisplacementField(tx, sitk.sitkVectorFloat64, fixed.GetSize(), fixed.GetOrigin(),
                                             fixed.GetSpacing(), fixed.GetDirection())
    return fields.from_itk(disp)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(2)
    cohort = load_cohort(args.cohort, load_images=False)
    mask = read_nifti(cohort.mask_path)[0] > 0.5
    atlas_aff = read_nifti(cohort.atlas_path)[1]
    spacing = np.sqrt((atlas_aff[:3, :mask.ndim] ** 2).sum(0)).reshape(-1, *[1] * mask.ndim)
    moving = fields.read_grid(cohort.atlas_path, sitk.sitkFloat32)
    ids = list(np.asarray(cohort.ids)[cohort.index("test")][: args.n])
    out = {"cohort": str(args.cohort), "n": len(ids), "meshes": {}}
    for mesh in MESHES:
        err, mag, t0 = [], [], time.perf_counter()
        for pid in ids:
            fixed = fields.read_grid(cohort.image_path(pid), sitk.sitkFloat32)
            u = register(fixed, moving, mesh)
            truth = fields.from_itk(sitk.ReadImage(str(cohort.displacement_path(pid)), sitk.sitkVectorFloat64))
            err.append(np.sqrt((((u - truth) * spacing) ** 2).sum(0))[mask].mean())
            mag.append(np.sqrt(((truth * spacing) ** 2).sum(0))[mask].mean())
        out["meshes"][str(mesh)] = {"epe_share": float(np.mean(err) / np.mean(mag)),
                                    "seconds_per_subject": (time.perf_counter() - t0) / len(ids)}
        print(mesh, out["meshes"][str(mesh)], flush=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
