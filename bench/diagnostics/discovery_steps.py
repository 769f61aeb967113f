"""Which step of the shortcut discovery loses the bias (issue 15): on a finished run of a synthetic cohort, how
well each intermediate score of `discover/shortcut.py` separates the true bias within each disease class
(ROC AUC, train and val together as the stage runs it), from the classifier's own output to the final split.

    python bench/diagnostics/discovery_steps.py RUN_DIR [RUN_DIR ...] [--features inr,pca] [--json PATH]

Scores, each oriented so that higher means "the classifier leans to disease" (as the method orients them):
  logit          the classifier's within-class logit: the shortcut as the classifier uses it
  aimed          the least-squares direction of that logit in the whitened features (the aimed start)
  aimed_ica      the same after the one-unit FastICA fixed point (the non-Gaussian direction nearest to it)
  best_ica       among one FastICA restart's components, the one the method would take (best logit correlation)
  aimed_refined  a candidate: the aimed score's split without the non-Gaussian step (two modes, self-training)
  final          the score of the split the method returns (after self-training and the choice by separation)
  *_tracks       what else the non-Gaussian scores follow: the scanner site, a global subject-effect mode
  probe          a linear probe of the bias itself on the whitened features (5-fold CV, the true bias: the
                 ceiling of any linear score, not something the method can reach)
Within a class the label is constant, so an AUC there is the bias signal itself. A score that separates the
bias no better than chance (0.5) within classes cannot give a split with high precision. The diagnostic uses
the true bias for evaluation only."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from morphbias_fast.bench.probe import cv_auc
from morphbias_fast.data import load_cohort
from morphbias_fast.discover import FEATURES, FeatureInputs, load_features
from morphbias_fast.discover.backends import get_backend
from morphbias_fast.discover.shortcut import (ShortcutConfig, _within_class_centre, aimed_direction, ica_component,
                                              nearest_non_gaussian, orient, refined_split, select,
                                              shortcut_discovery, whiten, within_class_logit)
from morphbias_fast.discover.stage import DISCOVER_SPLITS
from morphbias_fast.files import write_json
from morphbias_fast.runfolder import RunFolder


def within_auc(score: np.ndarray, bias: np.ndarray, y: np.ndarray) -> dict:
    """ROC AUC of `score` for the bias within the diseased and within the healthy."""
    return {name: float(roc_auc_score(bias[y == c], score[y == c])) for name, c in (("in_diseased", 1),
                                                                                   ("in_healthy", 0))}


def tracks(score: np.ndarray, part) -> dict:
    """What else a score follows: the best one-site-against-the-rest AUC (folded to >= 0.5; mri cohorts) and the
    largest |correlation| with a global subject-effect coefficient, with its name."""
    out = {}
    if "site" in part:
        site = part["site"].to_numpy()
        out["site_auc"] = max(max(a, 1 - a) for a in (roc_auc_score(site == k, score) for k in np.unique(site)))
    coefs = [c for c in part.columns if c.startswith("subject_coef_")]
    if coefs:
        r = [abs(np.corrcoef(score, part[c].to_numpy())[0, 1]) for c in coefs]
        out["subject_coef_max_abs_corr"], out["subject_coef"] = float(max(r)), coefs[int(np.argmax(r))]
    return out


def steps(run_dir: Path, kind: str, seed: int = 0) -> dict:
    run = RunFolder(run_dir)
    cohort = load_cohort(run.resolve_cohort(), load_images=FEATURES[kind].needs_images)
    preds = run.classify.read_predictions().set_index("participant_id")
    part = cohort.participants.set_index("participant_id")
    rows = np.concatenate([cohort.index(s) for s in DISCOVER_SPLITS])
    ids = cohort.ids[rows]
    feats = load_features(kind, FeatureInputs(run, cohort, seed), rows)
    y = preds.loc[ids, "y_true"].to_numpy().astype(int)
    bias = part.loc[ids, "bias"].to_numpy().astype(int)
    prob = preds.loc[ids, "prob"].to_numpy()
    # Each intermediate score from the method's own steps (discover/shortcut.py), seeded as its first ones.
    cfg, backend = ShortcutConfig(), get_backend("auto")
    logit_c = within_class_logit(prob, y)
    X = whiten(feats, cfg, backend, seed)
    Xfit = _within_class_centre(X, y)
    w = aimed_direction(X, Xfit, logit_c)
    aimed = orient(X @ w, y, logit_c)
    aimed_ica = orient(X @ nearest_non_gaussian(X, w), y, logit_c)
    best_ica = ica_component(X, y, logit_c, seed * 1000)
    res = shortcut_discovery(feats, y, prob, backend, cfg, seed=seed)
    target = bias != y  # the under-represented cells B&ND and NB&D
    # A candidate without the non-Gaussian step: the aimed score's two modes and self-training, selected as the
    # method selects.
    ref = refined_split(aimed, X, Xfit, cfg, backend, seed * 1000 + 999)
    sel = select(y, ref["posterior"], cfg)
    out = {"run": str(run_dir), "features": kind, "n": int(len(rows)), "whitened_columns": int(X.shape[1]),
           "logit": within_auc(logit_c, bias, y), "aimed": within_auc(aimed, bias, y),
           "aimed_ica": within_auc(aimed_ica, bias, y), "aimed_ica_tracks": tracks(aimed_ica, part.loc[ids]),
           "best_ica": within_auc(best_ica, bias, y), "final": within_auc(res["score"], bias, y),
           "final_tracks": tracks(res["score"], part.loc[ids]),
           "aimed_refined": within_auc(ref["score"], bias, y),
           "aimed_refined_precision": float(target[sel].mean()) if sel.any() else None,
           "aimed_refined_selected": int(sel.sum()),
           "final_restart": int(res["restart"]), "final_separation": float(res["separation"]),
           "final_precision": float(target[res["selected"]].mean()) if res["selected"].any() else None,
           "probe": {"in_diseased": cv_auc(X[y == 1], bias[y == 1], seed),
                     "in_healthy": cv_auc(X[y == 0], bias[y == 0], seed)}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--features", default="inr,pca")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    for r in a.runs:
        for kind in a.features.split(","):
            rows.append(steps(r, kind))
            print(json.dumps(rows[-1]))
    if a.json:
        write_json(a.json, {"rows": rows})


if __name__ == "__main__":
    main()
