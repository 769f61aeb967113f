"""Time to accuracy of the registration INR: hash grid against the paper's SIREN, in the same run.

Both architectures train on the same cohort's training subjects with the same loss, batches and seed, each
for its own wall-clock budget; the figure of merit is the endpoint error of the training subjects (mm,
inside the brain mask, against the true displacement) reached within the budget, plus steps per second."""
from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from morphbias_fast.data import load_cohort, read_nifti
from morphbias_fast.data.synth import SynthConfig, synthesize
from morphbias_fast.register import Images, INRConfig, split_metrics, train_inr


def run(cohort_dir: Path | None, budgets: dict, device: str = "cpu", seed: int = 0, progress=None) -> dict:
    """Both architectures on `cohort_dir`, or on a new 200-subject synthetic cohort when it is None."""
    if cohort_dir is None:
        with tempfile.TemporaryDirectory() as tmp:
            cohort_dir = Path(tmp) / "cohort"
            synthesize(cohort_dir, SynthConfig(n_train=200, n_val=4, n_test=4), progress=False)
            return run(cohort_dir, budgets, device, seed, progress)
    cohort = load_cohort(cohort_dir)
    atlas, affine = read_nifti(cohort.atlas_path)
    mask = read_nifti(cohort.mask_path)[0] > 0.5
    spacing = np.sqrt((affine[:3, :atlas.ndim] ** 2).sum(0))
    tr = cohort.index("train")
    imgs = Images(cohort.images[tr], atlas, torch.device(device))
    base = INRConfig(seed=seed, device=device, steps=None, time_budget=1.0)
    results = {"n_train": int(len(tr)), "device": device, "threads": torch.get_num_threads(), "arch": {}}
    for arch, budget in budgets.items():
        if progress:
            progress(f"{arch}: training for {budget:.0f} s")
        cfg = replace(base, arch=arch, time_budget=float(budget))
        t0 = time.monotonic()
        model, z, info = train_inr(imgs, len(tr), cfg, deadline=t0 + budget, progress=False)
        model.eval()
        m = split_metrics(model, imgs, z, np.arange(len(tr)), _TrainView(cohort, tr), mask, spacing, cohort.atlas_path)
        results["arch"][arch] = {"budget_s": budget, "steps": info["steps"],
                                 "steps_per_s": info["steps"] / info["seconds"], "train_epe_mm": m["epe_mm"],
                                 "true_displacement_mm": m["true_displacement_mm"], "epe_ratio": m["epe_ratio"],
                                 "folded_fraction_max": m["folded_fraction_max"]}
    a = results["arch"]
    if "hashgrid" in a and "siren" in a:
        results["hashgrid_at_least_as_accurate"] = a["hashgrid"]["train_epe_mm"] <= a["siren"]["train_epe_mm"]
        results["budget_ratio"] = a["siren"]["budget_s"] / a["hashgrid"]["budget_s"]
        results["steps_per_s_ratio"] = a["hashgrid"]["steps_per_s"] / a["siren"]["steps_per_s"]
    return results


class _TrainView:
    """The cohort seen through its training rows (split_metrics indexes images and ids by these rows)."""

    def __init__(self, cohort, rows):
        self._cohort, self._rows = cohort, rows
        self.atlas_path = cohort.atlas_path
        self.ids = cohort.ids[rows]
        self.participants = cohort.participants.iloc[rows].reset_index(drop=True)

    def displacement_path(self, pid):
        return self._cohort.displacement_path(pid)


def format_table(res: dict) -> str:
    lines = [f"registration time to accuracy ({res['n_train']} training subjects, {res['device']}, "
             f"{res['threads']} threads)",
             f"{'arch':<10}{'budget s':>10}{'steps':>8}{'steps/s':>10}{'train EPE mm':>14}{'EPE / true':>12}"]
    for arch, r in res["arch"].items():
        lines.append(f"{arch:<10}{r['budget_s']:>10.0f}{r['steps']:>8d}{r['steps_per_s']:>10.2f}"
                     f"{r['train_epe_mm']:>14.3f}{r['epe_ratio']:>12.3f}")
    if "hashgrid_at_least_as_accurate" in res:
        verdict = "yes" if res["hashgrid_at_least_as_accurate"] else "no"
        lines.append(f"hash grid with {1 / res['budget_ratio']:.2f}x SIREN's budget at least as accurate: {verdict}; "
                     f"steps/s ratio {res['steps_per_s_ratio']:.1f}x")
    return "\n".join(lines)
