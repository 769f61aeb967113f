"""`morphbias-fast bench prepare`: how well `prepare` recovers known affines. A real-style BIDS dataset is made
from the MNI152 template: 3-D scans on their own 2.5 mm grids, each moved by a random affine (rotation up to
8 degrees per axis, shift up to 8 mm, scale 0.93-1.07) and multiplied by its own intensity factor (x0.01 to
x1000); `prepare` aligns them back, and each recovered affine is compared with the applied one over the atlas
brain (mean point distance, mm) and by the angle of the residual rotation (degrees)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from morphbias_fast.data.prepare import PrepareConfig, itk_image, prepare, read_affine
from morphbias_fast.data.template import load_template

SUBJECT_MM = 2.5


def _random_affine(rng: np.random.Generator) -> sitk.AffineTransform:
    """Atlas point -> subject point, about a point near the brain's centre."""
    angles = np.deg2rad(rng.uniform(-8, 8, 3))
    m = np.array(sitk.Euler3DTransform((0.0, 0.0, 0.0), *angles).GetMatrix()).reshape(3, 3) * rng.uniform(0.93, 1.07)
    aff = sitk.AffineTransform(3)
    aff.SetMatrix(m.ravel().tolist())
    aff.SetCenter((0.0, -18.0, 10.0))
    aff.SetTranslation(rng.uniform(-8, 8, 3).tolist())
    return aff


def make_dataset(root: Path, n: int = 12, seed: int = 7) -> dict[str, sitk.AffineTransform]:
    """Write the real-style BIDS dataset to `root` (participants.tsv with split, disease, bias; the test split
    holds all four bias x disease cells); returns the applied affine of each participant."""
    root.mkdir(parents=True)
    tpl = load_template(3, 2.0)
    template = itk_image(tpl.image, tpl.affine)
    rng = np.random.default_rng(seed)
    truth, rows = {}, []
    for i in range(n):
        pid = f"sub-{i + 1:02d}"
        aff = _random_affine(rng)
        grid = sitk.Image([int(s * 2.0 / SUBJECT_MM) + 8 for s in template.GetSize()], sitk.sitkFloat32)
        grid.SetSpacing([SUBJECT_MM] * 3)
        grid.SetOrigin([o - 10.0 for o in template.GetOrigin()])
        scan = sitk.Resample(template, grid, aff.GetInverse(), sitk.sitkLinear, 0.0)  # subject(y) = T(A^-1 y)
        anat = root / pid / "anat"
        anat.mkdir(parents=True)
        sitk.WriteImage(scan * float(10.0 ** rng.uniform(-2, 3)), str(anat / f"{pid}_T1w.nii.gz"))
        truth[pid] = aff
        split = "test" if i % 12 < 4 else "val" if i % 12 < 8 else "train"
        rows.append({"participant_id": pid, "split": split, "disease": i % 2, "bias": (i // 2) % 2})
    pd.DataFrame(rows).to_csv(root / "participants.tsv", sep="\t", index=False)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "real-style test", "BIDSVersion": "1.9.0"}))
    return truth


def affine_errors(prepared: Path, truth: dict, spacing: float) -> dict[str, dict]:
    """Per participant: mean distance (mm) between the recovered and the applied affine over the atlas brain
    (every 7th voxel), and the angle (degrees) of the rotation left between them."""
    tpl = load_template(3, spacing)
    ras = np.argwhere(tpl.mask) @ tpl.affine[:3, :3].T + tpl.affine[:3, 3]
    lps = (ras * np.array([-1, -1, 1]))[::7].tolist()  # ITK's physical frame
    out = {}
    for pid, aff in truth.items():
        found = read_affine(prepared, pid)
        dist = [np.linalg.norm(np.array(found.TransformPoint(p)) - np.array(aff.TransformPoint(p))) for p in lps]
        a = np.array(sitk.AffineTransform(found).GetMatrix()).reshape(3, 3)
        u, _, vt = np.linalg.svd(a @ np.linalg.inv(np.array(aff.GetMatrix()).reshape(3, 3)))
        angle = np.degrees(np.arccos(np.clip((np.trace(u @ vt) - 1) / 2, -1, 1)))
        out[pid] = {"mean_mm": float(np.mean(dist)), "max_mm": float(np.max(dist)), "angle_deg": float(angle)}
    return out


def run(out_dir: Path, n: int = 12, spacing: float = 2.0) -> dict:
    out_dir = Path(out_dir)
    truth = make_dataset(out_dir / "raw", n)
    t0 = time.perf_counter()
    prepare(out_dir / "raw", out_dir / "cohort", PrepareConfig(spacing=spacing))
    seconds = time.perf_counter() - t0
    errors = affine_errors(out_dir / "cohort", truth, spacing)
    return {"subjects": n, "atlas_spacing_mm": spacing, "prepare_seconds": seconds,
            "mean_mm_max": max(e["mean_mm"] for e in errors.values()),
            "angle_deg_max": max(e["angle_deg"] for e in errors.values()), "per_subject": errors}
