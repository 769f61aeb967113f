"""The paper's subgroup rules (docs/METHOD.md section 3): per subgroup dTPR = TPR(subgroup) - TPR(all) and
ratio = FPR / FNR; bias subgroups S_B have dTPR > 0 and a ratio above the knee of the sorted ratios,
non-bias subgroups S_NB dTPR < 0 and a ratio below it; the re-balanced set keeps the disease-negative cases
of S_B and the disease-positive cases of S_NB."""
from __future__ import annotations

import numpy as np
import pandas as pd


def knee_index(values) -> int:
    """Index (into the ascending sort of `values`) of the knee: the point farthest from the chord between the
    first and last sorted values (the Kneedle idea on a normalised curve)."""
    v = np.sort(np.asarray(values, dtype=float))
    if len(v) < 3:
        return len(v) - 1
    x = np.linspace(0, 1, len(v))
    span = v[-1] - v[0]
    y = (v - v[0]) / span if span > 0 else np.zeros_like(v)
    return int(np.argmax(np.abs(y - x)))


def _rate(num, den):
    return num / den if den > 0 else np.nan


def subgroup_table(groups, y_true, y_pred, min_size: int = 10, knee_inclusive: bool = False) -> pd.DataFrame:
    """One row per subgroup with >= min_size members: size, TPR, dTPR, FPR, FNR, ratio, role (S_B/S_NB/none).
    The paper does not say on which side of the knee the knee's own subgroup falls: by default on neither
    (strict inequalities); `knee_inclusive` gives it the role its dTPR sign says (a diagnostic's reading)."""
    groups, y_true, y_pred = (np.asarray(a) for a in (groups, y_true, y_pred))
    tpr_all = _rate(((y_true == 1) & (y_pred == 1)).sum(), (y_true == 1).sum())
    rows = []
    for g in np.unique(groups):
        m = groups == g
        if m.sum() < min_size:
            continue
        t, p = y_true[m], y_pred[m]
        tp, fn = ((t == 1) & (p == 1)).sum(), ((t == 1) & (p == 0)).sum()
        fp, tn = ((t == 0) & (p == 1)).sum(), ((t == 0) & (p == 0)).sum()
        tpr, fpr, fnr = _rate(tp, tp + fn), _rate(fp, fp + tn), _rate(fn, fn + tp)
        ratio = fpr / fnr if (np.isfinite(fpr) and np.isfinite(fnr) and fnr > 0) else (np.inf if fpr > 0 else np.nan)
        rows.append({"subgroup": int(g), "size": int(m.sum()), "tpr": tpr, "dtpr": tpr - tpr_all, "fpr": fpr,
                     "fnr": fnr, "ratio": ratio})
    # Explicit columns: on a small split every subgroup can fall under min_size, and the table is then empty.
    table = pd.DataFrame(rows, columns=["subgroup", "size", "tpr", "dtpr", "fpr", "fnr", "ratio"])
    table["role"] = "none"
    # The knee is found among finite ratios; a subgroup without false negatives (ratio inf) lies above any
    # knee, and one with an undefined ratio (no FP and no FN) takes no role.
    finite = table["ratio"].replace([np.inf], np.nan).dropna()
    if len(finite):
        knee = np.sort(finite.to_numpy())[knee_index(finite)]
        ratio = table["ratio"].fillna(-np.inf)
        above, below = (ratio >= knee, ratio <= knee) if knee_inclusive else (ratio > knee, ratio < knee)
        table.loc[(table["dtpr"] > 0) & above, "role"] = "S_B"
        table.loc[(table["dtpr"] < 0) & below & table["ratio"].notna(), "role"] = "S_NB"
    return table


def rebalanced_set(groups, y_true, table: pd.DataFrame) -> np.ndarray:
    """Boolean mask: disease-negative members of S_B and disease-positive members of S_NB."""
    groups, y_true = np.asarray(groups), np.asarray(y_true)
    sb = table.loc[table.role == "S_B", "subgroup"].to_numpy()
    snb = table.loc[table.role == "S_NB", "subgroup"].to_numpy()
    return (np.isin(groups, sb) & (y_true == 0)) | (np.isin(groups, snb) & (y_true == 1))


def side_delta(Z: np.ndarray, y: np.ndarray, side: np.ndarray) -> np.ndarray:
    """The discovered bias direction in feature space: mean of side 1 (S_B) minus side 0 (S_NB), within each
    label (so the disease cancels), averaged over the labels that have at least two cases on each side."""
    deltas = []
    for c in (0, 1):
        hi, lo = (side == 1) & (y == c), (side == 0) & (y == c)
        if hi.sum() >= 2 and lo.sum() >= 2:
            deltas.append(Z[hi].mean(0) - Z[lo].mean(0))
    if not deltas:
        raise ValueError("no label has two cases on each side of the discovered split")
    return np.mean(deltas, axis=0)
