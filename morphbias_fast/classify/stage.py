"""The `classify` stage: train the CNN on the cohort's train split (model selection on val), predict every
split, and write RUN/classify/{model.pt, metrics.json, predictions.csv}."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from morphbias_fast import gates
from morphbias_fast.classify.model import CNN
from morphbias_fast.classify.train import (
    TrainConfig,
    config_record,
    fit,
    predict_proba,
    standardise,
)
from morphbias_fast.data import Cohort, load_cohort
from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.evaluation import group_metrics
from morphbias_fast.files import atomic_path, write_json
from morphbias_fast.runfolder import ModelFolder, RunFolder, write_predictions


# The stage contract (Config, Result.summary) has the shape of unbiased's; `duplicates` pairs them by shape.
@dataclass(frozen=True)
class Config:
    cohort: Path
    label_column: str = "disease"
    train: TrainConfig = field(default_factory=TrainConfig)
    progress: bool = True


@dataclass
class Result:
    predictions: pd.DataFrame
    folder: ModelFolder
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return accuracy_summary(self.predictions, self.folder.metrics) + gates.say_all(self.warnings)


def accuracy_summary(preds: pd.DataFrame, details: Path) -> str:
    """The one-line summary of a classifier's predictions (classify, mitigate, the unbiased reference)."""
    test = preds[preds.split == "test"]
    if not len(test):
        return f"no test split; details in {details}"
    return f"test accuracy {(test.y_pred == test.y_true).mean():.3f} ({len(test)} participants); details in {details}"


def load_classifier(path, device="cpu") -> CNN:
    """The CNN saved by classify (or mitigate) at `path`, in eval mode on `device`."""
    path = Path(path)
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: run `morphbias-fast classify` first")
    ckpt = torch.load(path, map_location=device, weights_only=False)
    model = CNN(ckpt["dim"]).to(device)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def predictions_frame(cohort: Cohort, prob: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"participant_id": cohort.ids, "split": cohort.splits, "y_true": cohort.labels,
                         "prob": prob, "y_pred": (prob >= 0.5).astype(int)})


def write_outputs(folder: ModelFolder, model: CNN, checkpoint: dict, metrics: dict, preds: pd.DataFrame) -> None:
    """The one writer of a trained classifier's files (classify, mitigate, the unbiased reference):
    model.pt (state dict, dim and `checkpoint`'s entries), metrics.json, and predictions.csv last, since
    its presence marks the stage done."""
    folder.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder.model) as tmp:
        torch.save({"state_dict": model.state_dict(), "dim": model.dim, **checkpoint}, tmp)
    write_json(folder.metrics, metrics)
    write_predictions(folder.predictions, preds)


def run(run: RunFolder, cfg: Config) -> Result:
    """Train on train, select on val, predict every split. The cohort's location and label column go into
    metrics.json, so that later stages find the images."""
    cohort = load_cohort(cfg.cohort, label_column=cfg.label_column)
    tr, va = cohort.index("train"), cohort.index("val")
    if len(tr) < 2 or len(va) < 1:
        raise MorphbiasError(f"{cohort.root}: classify needs at least 2 train and 1 val participants "
                             f"(found {len(tr)} and {len(va)})")
    x = standardise(cohort.images)
    y = cohort.labels
    model, history = fit(x[tr], y[tr], x[va], y[va], cfg.train, progress=cfg.progress)
    preds = predictions_frame(cohort, predict_proba(model, x, resolve_device(cfg.train.device)))
    metrics = {"cohort": str(Path(cfg.cohort).resolve()), "label_column": cfg.label_column,
               "train_config": config_record(cfg.train), "history": history, "splits": {}}
    for split in ("train", "val", "test"):
        sel = preds["split"] == split
        if not sel.any():
            continue
        m = {"acc": float((preds.y_pred[sel] == preds.y_true[sel]).mean()), "n": int(sel.sum())}
        if cohort.bias is not None:
            m.update(group_metrics(preds.y_true[sel], preds.y_pred[sel], cohort.bias[sel.to_numpy()]))
        metrics["splits"][split] = m
    metrics["warnings"] = gates.classifier(preds)
    write_outputs(run.classify, model, {"train_config": config_record(cfg.train), "label_column": cfg.label_column,
                                        "history": history}, metrics, preds)
    return Result(preds, run.classify, metrics["warnings"])
