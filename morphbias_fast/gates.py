"""Quality gates: the checks that tell a weak or broken result from a good one, so that it is flagged and not
reported like a good one. Each gate returns its findings as sentences; the stage stores them under "warnings"
in its metrics.json (discover: summary.json) and prints them, and `--strict` turns any finding into exit
status 3 (STRICT_EXIT) for scripts.

The thresholds, and why:
- registration no better than identity: the warped atlas is no closer to the subjects than the atlas itself
  (image error >= the unwarped atlas's), or, where the cohort has true fields, the endpoint error is at least
  the true displacement (REG_EPE_RATIO = 1: leaving the atlas unwarped would do as well).
- a classifier collapsed to one class: >= COLLAPSE_SHARE of its test (else val) predictions are one class
  while the labels are not that one-sided (majority label share < COLLAPSE_SHARE).
- a retrained model below the biased one: test balanced accuracy more than ACC_DROP below the biased
  classifier's. 0.05 is about twice the standard error of an accuracy on the default 500-case test split
  (0.022), so a drop that large is not noise.
- images on another intensity scale than the atlas: the median over subjects of their 99th percentile inside
  the brain mask is more than SCALE_RATIO times the atlas's, or less than 1/SCALE_RATIO (mse then compares
  apples with oranges; `prepare` normalises, and lncc does not care).
- a discovery whose subgroups are tiny (fewer than max(TINY_MIN, TINY_SHARE of the split): too few to weight or
  augment from) or whose discovered side is the label itself (side and label agree on >= PURE_SHARE or
  <= 1 - PURE_SHARE of a split: no hidden attribute was found, only the label again), or that puts every case
  of a label on one side (nothing was found within that label).
- a discovered split that does not explain the classifier's held-out errors: on val (the classifier never
  trained on it; its train predictions are near perfect and say nothing), the errors should fall on the side
  the shortcut works against: missed disease on the S_NB side, false alarms on the S_B side. Per label, a
  one-sided Fisher exact test of "more errors on the disfavoured side", the two p-values combined by Fisher's
  method; the gate fires when the combined p is above SPLIT_ALPHA = 0.01, fixed before it was measured (a
  conventional level, not tuned). The shortcut discovery also reads the val logits to choose its direction,
  so p is optimistic; it is a floor for a split that works, and a split that does not (bias cohort 0.9, fresh
  seed 13: detection precision 0.08) gives no evidence at all.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

STRICT_EXIT = 3
SCALE_RATIO = 10.0
REG_EPE_RATIO = 1.0
COLLAPSE_SHARE = 0.95
ACC_DROP = 0.05
TINY_MIN, TINY_SHARE = 10, 0.02
PURE_SHARE = 0.98
SPLIT_ALPHA = 0.01


def registration(metrics: dict) -> list[str]:
    out = []
    for split, m in metrics.get("splits", {}).items():
        if m.get("identity_mse") is not None and m["image_mse"] >= m["identity_mse"]:
            out.append(f"registration no better than identity on {split}: image error {m['image_mse']:.3g} vs "
                       f"{m['identity_mse']:.3g} for the unwarped atlas")
        if m.get("epe_ratio") is not None and m["epe_ratio"] >= REG_EPE_RATIO:
            out.append(f"registration no better than identity on {split}: endpoint error "
                       f"{100 * m['epe_ratio']:.0f}% of the true displacement")
    return out


def intensity_scale(images: np.ndarray, atlas: np.ndarray, mask: np.ndarray) -> list[str]:
    ours = float(np.median([np.percentile(img[mask], 99) for img in images]))
    theirs = float(np.percentile(atlas[mask], 99))
    ratio = ours / theirs if theirs > 0 else float("inf")
    if not (1 / SCALE_RATIO <= ratio <= SCALE_RATIO):
        return [f"the images are on another intensity scale than the atlas ({ratio:.3g}x its 99th percentile in "
                f"the brain): normalise them (morphbias-fast prepare does) or use --similarity lncc"]
    return []


def _bal_acc(p: pd.DataFrame) -> float:
    return float(np.mean([(p.y_pred[p.y_true == c] == c).mean() for c in np.unique(p.y_true)]))


def classifier(preds: pd.DataFrame, biased: pd.DataFrame | None = None) -> list[str]:
    """Collapse (any classifier) and, given the biased classifier's predictions, a drop below it."""
    split = "test" if (preds.split == "test").any() else "val"
    p = preds[preds.split == split]
    out = []
    if len(p):
        pred_share = max(p.y_pred.mean(), 1 - p.y_pred.mean())
        label_share = max(p.y_true.mean(), 1 - p.y_true.mean())
        if pred_share >= COLLAPSE_SHARE and label_share < COLLAPSE_SHARE:
            out.append(f"the classifier collapsed to one class: {100 * pred_share:.0f}% of its {split} predictions "
                       f"are {int(round(p.y_pred.mean()))}")
    if biased is not None and len(p):
        b = biased[biased.split == split]
        ours, theirs = _bal_acc(p), _bal_acc(b)
        if ours < theirs - ACC_DROP:
            out.append(f"the retrained model fell below the biased one: {split} balanced accuracy {ours:.3f} vs "
                       f"{theirs:.3f}")
    return out


def discovery(frame: pd.DataFrame) -> list[str]:
    """From discovery's per-subject frame (split, subgroup, role, y_true)."""
    out = []
    for split, f in frame.groupby("split"):
        sizes = f.subgroup.value_counts()
        floor = max(TINY_MIN, TINY_SHARE * len(f))
        tiny = sizes[sizes < floor]
        if len(tiny):
            out.append(f"tiny discovered subgroups on {split}: " + ", ".join(f"{g} ({n})" for g, n in tiny.items())
                       + f" of {len(f)} (under {floor:.0f})")
        sided = f[f.role.isin(["S_B", "S_NB"])]
        if len(sided):
            agree = float(((sided.role == "S_B") == (sided.y_true == 1)).mean())
            if agree >= PURE_SHARE or agree <= 1 - PURE_SHARE:
                out.append(f"the discovered side is the label itself on {split} (they agree on {100 * agree:.0f}% "
                           f"of cases): no hidden attribute was found")
            one_sided = [str(c) for c, g in sided.groupby("y_true") if g.role.nunique() < 2]
            if one_sided:
                out.append(f"the discovered split puts every case of label {', '.join(one_sided)} on one side on "
                           f"{split}: no hidden attribute was found there")
    return out


def split_errors(frame: pd.DataFrame) -> dict | None:
    """The held-out check of a discovered split, from discovery's per-subject frame (split, role, y_true,
    y_pred): per label, the val error rate on the side the shortcut works against ("disfavoured") and on the
    other, the one-sided Fisher p of each and their combination. None when val has no sided subjects of both
    sides in some label (nothing to test)."""
    f = frame[(frame.split == "val") & frame.role.isin(["S_B", "S_NB"])]
    out, pvals = {}, []
    for label, name, against in ((1, "disease", "S_NB"), (0, "no_disease", "S_B")):
        c = f[f.y_true == label]
        wrong = (c.y_pred != label).to_numpy()
        dis = (c.role == against).to_numpy()
        if dis.all() or not dis.any():
            return None
        table = [[int(wrong[dis].sum()), int((~wrong[dis]).sum())],
                 [int(wrong[~dis].sum()), int((~wrong[~dis]).sum())]]
        p = float(stats.fisher_exact(table, alternative="greater").pvalue)
        out[name] = {"error_disfavoured": float(wrong[dis].mean()), "error_favoured": float(wrong[~dis].mean()),
                     "n_disfavoured": int(dis.sum()), "n_favoured": int((~dis).sum()), "p": p}
        pvals.append(p)
    out["p"] = float(stats.combine_pvalues(pvals, method="fisher").pvalue)
    return out


def split_check(check: dict | None) -> list[str]:
    if check is None or check["p"] <= SPLIT_ALPHA:
        return []
    d, n = check["disease"], check["no_disease"]
    return [f"the discovered split does not explain the classifier's val errors (p = {check['p']:.2g}): missed "
            f"disease {100 * d['error_disfavoured']:.0f}% on the S_NB side vs {100 * d['error_favoured']:.0f}%, "
            f"false alarms {100 * n['error_disfavoured']:.0f}% on the S_B side vs {100 * n['error_favoured']:.0f}%; "
            f"either the split is not the shortcut, and mitigation built on it may not help, or the classifier "
            f"leans on it too little for its errors to show it (a weak shortcut)"]


def say_all(warnings: list[str]) -> str:
    return "".join(f"\nwarning: {w}" for w in warnings)
