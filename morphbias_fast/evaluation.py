"""Per-group evaluation used by every stage: accuracy, recall and precision within cases with the bias (B)
and without it (NB), their gaps (B - NB), and percentile bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np

METRICS = ("acc", "recall", "prec")


def _counts(y, p):
    """(TP, FP, FN, TN) along the last axis; y, p are 0/1 arrays of the same shape."""
    tp = (y & p).sum(-1)
    fp = (~y & p).sum(-1)
    fn = (y & ~p).sum(-1)
    tn = (~y & ~p).sum(-1)
    return tp, fp, fn, tn


def _rates(y, p):
    tp, fp, fn, tn = _counts(y, p)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {"acc": (tp + tn) / (tp + fp + fn + tn), "recall": tp / (tp + fn), "prec": tp / (tp + fp)}


def group_metrics(y_true, y_pred, bias, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """Metrics within B (bias == 1) and NB (bias == 0), e.g. {"acc_B", "recall_NB", "recall_gap", ...,
    "ci": {"acc_B": [lo, hi], ...}, "n_B", "n_NB"}. Undefined rates (no positives) are NaN.
    Bootstrap resamples within each group (stratified), so group sizes stay fixed."""
    y_true, y_pred, bias = (np.asarray(a).astype(bool) for a in (y_true, y_pred, bias))
    out, boot = {}, {}
    rng = np.random.default_rng(seed)
    for name, mask in (("B", bias), ("NB", ~bias)):
        y, p = y_true[mask], y_pred[mask]
        out[f"n_{name}"] = int(mask.sum())
        for k, v in _rates(y, p).items():
            out[f"{k}_{name}"] = float(v)
        if len(y) and n_boot:
            idx = rng.integers(0, len(y), size=(n_boot, len(y)))
            for k, v in _rates(y[idx], p[idx]).items():
                boot[f"{k}_{name}"] = v
    for k in METRICS:
        out[f"{k}_gap"] = out[f"{k}_B"] - out[f"{k}_NB"]
        if f"{k}_B" in boot and f"{k}_NB" in boot:
            boot[f"{k}_gap"] = boot[f"{k}_B"] - boot[f"{k}_NB"]
    out["acc"] = float((y_true == y_pred).mean()) if len(y_true) else float("nan")
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    out["ci"] = {k: [float(np.nanpercentile(v, lo)), float(np.nanpercentile(v, hi))] for k, v in boot.items()
                 if np.isfinite(v).any()}
    return out
