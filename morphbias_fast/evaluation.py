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


# The four bias x disease cells of the balanced test split: name -> (bias, disease).
CELLS = {"BD": (1, 1), "BND": (1, 0), "NBD": (0, 1), "NBND": (0, 0)}
CELL_METRICS = ("acc_BD", "acc_BND", "acc_NBD", "acc_NBND", "wga", "bal_acc", "eo_gap", "shortcut_effect")


def _from_cells(correct: dict, n: dict) -> dict:
    """Every cell metric from the per-cell shares correct (arrays of any shape, one per cell) and cell sizes.
    TPR_B = acc(B&D), FPR_B = 1 - acc(B&ND), and the same within NB."""
    tpr_b, fpr_b = correct["BD"], 1 - correct["BND"]
    tpr_nb, fpr_nb = correct["NBD"], 1 - correct["NBND"]
    tpr = (n["BD"] * correct["BD"] + n["NBD"] * correct["NBD"]) / (n["BD"] + n["NBD"])
    tnr = (n["BND"] * correct["BND"] + n["NBND"] * correct["NBND"]) / (n["BND"] + n["NBND"])
    out = {f"acc_{c}": correct[c] for c in CELLS}
    out.update({"wga": np.minimum.reduce([correct[c] for c in CELLS]), "bal_acc": (tpr + tnr) / 2,
                "eo_gap": np.maximum(np.abs(tpr_b - tpr_nb), np.abs(fpr_b - fpr_nb)),
                "shortcut_effect": ((tpr_b - tpr_nb) + (fpr_b - fpr_nb)) / 2})
    return out


def _stratified_means(values: np.ndarray, cells: dict, n_boot: int, rng) -> dict:
    """Per cell: the mean of `values` over the cell, and its n_boot resampled means (resampling within the cell,
    so cell sizes stay fixed)."""
    point, boot = {}, {}
    for c, idx in cells.items():
        point[c] = float(values[idx].mean())
        boot[c] = values[idx][rng.integers(0, len(idx), size=(n_boot, len(idx)))].mean(1)
    return point, boot


def _interval(boot: np.ndarray, ci: float) -> list[float]:
    lo, hi = 100 * (1 - ci) / 2, 100 * (1 + ci) / 2
    return [float(np.percentile(boot, lo)), float(np.percentile(boot, hi))]


def _cells(bias, disease) -> dict:
    bias, disease = np.asarray(bias).astype(int), np.asarray(disease).astype(int)
    cells = {c: np.flatnonzero((bias == b) & (disease == d)) for c, (b, d) in CELLS.items()}
    empty = [c for c, idx in cells.items() if not len(idx)]
    if empty:
        raise ValueError(f"cell {empty[0]} has no cases: the cell metrics need all four bias x disease cells")
    return cells


def cell_metrics(y_true, y_pred, bias, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """Accuracy in each bias x disease cell, worst-group accuracy (their minimum), balanced accuracy, the
    equalized-odds gap max(|TPR_B - TPR_NB|, |FPR_B - FPR_NB|) and the signed shortcut effect
    ((TPR_B - TPR_NB) + (FPR_B - FPR_NB)) / 2 (positive: the bias is used as disease evidence; negative: reversed),
    each with a percentile bootstrap interval stratified over the four cells (seeded)."""
    y_true, y_pred = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    cells = _cells(bias, y_true)
    n = {c: len(idx) for c, idx in cells.items()}
    point, boot = _stratified_means((y_true == y_pred).astype(float), cells, n_boot, np.random.default_rng(seed))
    out = {k: float(v) for k, v in _from_cells(point, n).items()}
    out["ci"] = {k: _interval(v, ci) for k, v in _from_cells(boot, n).items()}
    out["n_cells"] = n
    return out


def twin_metrics(p_own, p_twin, bias, disease, n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> dict:
    """From a model's disease probability on each subject (p_own) and on its counterfactual twin (p_twin):
    cf_sensitivity = mean of p(disease | bias present) - p(disease | bias absent) over subjects, and
    cf_flip_rate = share of subjects whose predicted label changes with the bias; bootstrap intervals
    stratified over the four cells."""
    p_own, p_twin, bias = np.asarray(p_own, float), np.asarray(p_twin, float), np.asarray(bias).astype(int)
    cells = _cells(bias, disease)
    n = {c: len(idx) for c, idx in cells.items()}
    total = sum(n.values())
    out, intervals = {}, {}
    for name, values in (("cf_sensitivity", np.where(bias == 1, p_own - p_twin, p_twin - p_own)),
                         ("cf_flip_rate", ((p_own >= 0.5) != (p_twin >= 0.5)).astype(float))):
        point, boot = _stratified_means(values, cells, n_boot, np.random.default_rng(seed))
        out[name] = sum(n[c] * point[c] for c in cells) / total
        intervals[name] = _interval(sum(n[c] * boot[c] for c in cells) / total, ci)
    out["ci"] = intervals
    return out
