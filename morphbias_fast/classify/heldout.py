"""Held-out (cross-fitted) predictions on train for a finished classify stage (issue 17).

The paper's discovery reads the classifier's errors on train, but the classifier was trained there and fits
most of train, the under-represented cells too (accuracy 0.67 on them in-sample against 0.56 held out on
s09 seed 0), so the dTPR and FPR/FNR rules see little (bench/RESULTS.md, issue 17). Here train is cut into
k folds, stratified by the label only; a classifier trained on the other k - 1 folds, with the recorded
settings and model selection on val, predicts each fold. The result is a classify folder of its own whose
predictions.csv has those held-out predictions for train and the original classifier's for val and test, so
discovery can read it (RunFolder(classify_dir=...)) while everything else keeps the original classifier."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold
from tqdm import tqdm

from morphbias_fast.classify.train import TrainConfig, fit, predict_proba, standardise
from morphbias_fast.data import load_cohort
from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_path, write_json
from morphbias_fast.runfolder import ModelFolder, write_predictions


def heldout_predictions(src: ModelFolder, cohort_dir: Path, out: ModelFolder, folds: int = 5, seed: int = 0,
                        progress: bool = True) -> dict:
    """Write `out` (predictions.csv: train held out, val/test as `src`; metrics.json); return its record.
    Each fold's predictions are kept in out/fold_<i>.npz as it finishes, so a stopped run resumes."""
    if folds < 2:
        raise MorphbiasError(f"held-out predictions need at least 2 folds, got {folds}")
    meta = json.loads(src.metrics.read_text())
    cohort = load_cohort(cohort_dir, label_column=meta.get("label_column", "disease"))
    preds = src.read_predictions().set_index("participant_id").reindex(cohort.ids)
    if preds.prob.isna().any():
        raise MorphbiasError(f"{src.predictions} does not cover the cohort {cohort_dir}")
    tr, va = cohort.index("train"), cohort.index("val")
    y = cohort.labels
    if np.bincount(y[tr], minlength=2).min() < folds:
        raise MorphbiasError(f"{cohort_dir}: a class has fewer train participants than the {folds} folds")
    cfg = TrainConfig(**{k: v for k, v in meta["train_config"].items() if k in TrainConfig.__dataclass_fields__})
    x = standardise(cohort.images)
    device = resolve_device(cfg.device)
    out.path.mkdir(parents=True, exist_ok=True)
    prob = np.full(len(tr), np.nan)
    cuts = list(StratifiedKFold(folds, shuffle=True, random_state=seed).split(tr, y[tr]))
    for i, (fit_rows, held_rows) in enumerate(tqdm(cuts, desc="held-out folds", unit="fold", disable=not progress)):
        saved = out.path / f"fold_{i}.npz"
        if not saved.exists():
            model, _ = fit(x[tr[fit_rows]], y[tr[fit_rows]], x[va], y[va], cfg, progress=False)
            with atomic_path(saved) as tmp, open(tmp, "wb") as fh:
                np.savez(fh, rows=held_rows, prob=predict_proba(model, x[tr[held_rows]], device))
        fold = np.load(saved)
        prob[fold["rows"]] = fold["prob"]
    frame = preds.reset_index()
    frame.loc[tr, "prob"] = prob
    frame.loc[tr, "y_pred"] = (prob >= 0.5).astype(int)
    record = {"from": str(src.path), "folds": folds, "seed": seed,
              "train_acc_in_sample": float((preds.y_pred.to_numpy()[tr] == y[tr]).mean()),
              "train_acc_held_out": float((frame.y_pred.to_numpy()[tr] == y[tr]).mean())}
    write_json(out.metrics, {**meta, "heldout": record})
    write_predictions(out.predictions, frame)  # last: predictions mark the folder done
    return record
