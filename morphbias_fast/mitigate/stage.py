"""The `mitigate` stage: build the chosen strategy's plan (strategies.py), decode its latents into images with
the frozen registration INR, retrain the classifier from scratch on the plan, and write the run's mitigate
folder (classify's files, plus augmentations.png when images were generated)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from morphbias_fast import gates
from morphbias_fast.classify import (
    TrainConfig,
    accuracy_summary,
    config_record,
    fit,
    predict_proba,
    predictions_frame,
    standardise,
    write_outputs,
)
from morphbias_fast.console import warn
from morphbias_fast.data import load_cohort
from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.evaluation import group_metrics
from morphbias_fast.files import atomic_path
from morphbias_fast.mitigate.strategies import DEFAULT, STRATEGIES, Inputs, Plan
from morphbias_fast.register import Decoder
from morphbias_fast.runfolder import ModelFolder, RunFolder


@dataclass(frozen=True)
class Config:
    strategy: str = DEFAULT
    seed: int = 0
    epochs: int = 30
    device: str = "auto"
    cohort: Path | None = None   # default: the run's cohort (RunFolder.resolve_cohort)
    out: Path | None = None      # default: the run's folder for the strategy
    progress: bool = True


@dataclass
class Result:
    predictions: pd.DataFrame
    folder: ModelFolder
    warnings: list[str]  # the plan's (weaker than asked) and the quality gates'

    def summary(self) -> str:
        return accuracy_summary(self.predictions, self.folder.metrics) + gates.say_all(self.warnings)


def save_examples(path: Path, originals: np.ndarray, made: np.ndarray, title: str) -> None:
    """Up to six train cases (top row) above generated images (bottom row), as a PNG."""
    n = min(6, len(originals), len(made))
    fig = Figure(figsize=(2 * n, 4.4))
    axes = fig.subplots(2, n, squeeze=False)
    for i in range(n):
        for r, (img, label) in enumerate(((originals[i], "train case"), (made[i], "generated"))):
            sl = img if img.ndim == 2 else img[img.shape[0] // 2]
            axes[r, i].imshow(np.rot90(sl), cmap="gray")
            axes[r, i].set_axis_off()
            axes[r, i].set_title(label, fontsize=8)
    fig.suptitle(title, fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")


def _generate(run: RunFolder, inp: Inputs, plan: Plan, folder: ModelFolder, device: torch.device, progress: bool):
    """The plan's latents as images: the atlas warped by each decoded field, interpolated once like the
    cohort's own images. (Warping each case's own image by u' - u interpolates twice, and the classifier then
    told generated from real by blur and kept the shortcut on real ones, bench/RESULTS.md.)"""
    if plan.latents is None:
        return None
    decoder = Decoder.load(run.register, device)
    if plan.transport_from is None:
        extra = decoder.images(plan.latents, progress=progress)
    else:  # the cases' own images moved to the new anatomy
        rows = inp.tr[plan.transport_from]
        extra = decoder.transported(inp.cohort.images[rows], run.register.latents_of(inp.cohort.ids[rows]),
                                    plan.latents, progress=progress)
    folder.path.mkdir(parents=True, exist_ok=True)
    save_examples(folder.augmentations, plan.examples, extra[:6], plan.caption)
    return extra


def run(run: RunFolder, cfg: Config) -> Result:
    if cfg.strategy not in STRATEGIES:
        raise MorphbiasError(f"--strategy must be one of {', '.join(STRATEGIES)}, got {cfg.strategy!r}")
    folder = ModelFolder(Path(cfg.out)) if cfg.out is not None else run.mitigate(cfg.strategy)
    inp = Inputs(run, load_cohort(run.resolve_cohort(cfg.cohort)), cfg.seed)
    cohort, tr, va = inp.cohort, inp.tr, inp.va
    plan = STRATEGIES[cfg.strategy].fn(inp)
    if plan.warning:
        warn(plan.warning)
    device = resolve_device(cfg.device)
    extra = _generate(run, inp, plan, folder, device, cfg.progress)
    x, y = standardise(cohort.images), cohort.labels
    x_train, y_train, weights = x[tr], y[tr], plan.weights
    if extra is not None:  # originals and generated images weigh the same in total
        x_train = torch.cat([x_train, standardise(extra)])
        y_train = np.concatenate([y_train, plan.labels])
        g = np.ones(len(extra)) if plan.generated_weights is None else np.asarray(plan.generated_weights, float)
        weights = np.concatenate([weights, g * len(tr) / g.sum()])
    train_cfg = TrainConfig(epochs=cfg.epochs, seed=cfg.seed, device=cfg.device)
    model, history = fit(x_train, y_train, x[va], y[va], train_cfg, sample_weight=weights, progress=cfg.progress,
                         val_weight=plan.val_weight, val_groups=plan.val_groups)
    preds = predictions_frame(cohort, predict_proba(model, x, device))
    metrics = {"strategy": cfg.strategy, "seed": cfg.seed, "warning": plan.warning, "train_size": len(y_train),
               "generated": 0 if extra is None else len(extra), "train_config": config_record(train_cfg),
               "history": history, "splits": {}}
    for split in ("val", "test"):
        sel = (preds.split == split).to_numpy()
        if sel.any() and cohort.bias is not None:
            metrics["splits"][split] = group_metrics(preds.y_true[sel], preds.y_pred[sel], cohort.bias[sel])
    biased = run.classify.read_predictions() if run.classify.predictions.exists() else None
    metrics["warnings"] = ([plan.warning] if plan.warning else []) + gates.classifier(preds, biased)
    write_outputs(folder, model, {"strategy": cfg.strategy}, metrics, preds)
    return Result(preds, folder, metrics["warnings"])
