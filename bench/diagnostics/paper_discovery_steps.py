"""Which step of the paper's discovery loses the bias (issue 17): on finished runs of a synthetic cohort (the
paper recipe's SIREN run and the hash-grid run of the same seed share cohort and classifier), per split and per
number of principal components k (the published 4, and more):

  probe      can the k components carry the bias at all: 5-fold CV AUC of a linear probe of the true bias within
             each disease class (bench/probe.py's cv_auc; within a class the label cannot help)
  grouping   does the error-aware mixture on [PCA(k), label, probability] isolate the under-represented cells
             B&ND and NB&D: AMI of its subgroups with the four true cells, and the precision and recall of the
             best selection the subgroups allow: the rules keep one label of a subgroup (of >= 10 members), so
             every (subgroup, label) in which those cells are the majority, as if the roles came from the truth:
             a ceiling no rule on these subgroups can pass
  rules      the published dTPR and FPR/FNR knee rules on those subgroups: how many they select, and with what
             precision and recall (what the paper's mitigation then gets). rules_knee_inclusive: the same with the
             subgroup at the knee itself in the role its dTPR sign gives (subgroup_table(knee_inclusive=True)); the
             paper does not say which side the knee is on, and the discovery leaves it on neither
  bias_pc    the principal component (of all) that alone separates the bias best within the disease classes: its
             rank by variance, its AUC and its share of the variance; top4_best_auc, the best of the first four
  errors     the classifier's accuracy on the split in the under-represented cells and in the others: the rules
             see only errors, so where the classifier fits the under-represented cells there is nothing to see

    python bench/diagnostics/paper_discovery_steps.py RUN_DIR [RUN_DIR ...] [--pcs 4,16,64,256]
        [--mixture-weights 10,1] [--mixture-seed S] [--json PATH]

Mixture as the recipe runs it (k-means start, K = 7, the run's own discovery seed unless --mixture-seed says
otherwise), at the label/probability weight(s) given.
The true bias is used to score, never to choose."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_mutual_info_score, roc_auc_score

from morphbias_fast.bench.probe import cv_auc
from morphbias_fast.data import load_cohort
from morphbias_fast.discover import FeatureInputs, load_features
from morphbias_fast.discover.backends import get_backend
from morphbias_fast.discover.stage import (
    DISCOVER_SPLITS,
    PAPER_MIN_SIZE,
    paper_discovery,
)
from morphbias_fast.discover.subgroups import rebalanced_set, subgroup_table
from morphbias_fast.files import write_json
from morphbias_fast.runfolder import RunFolder


def _score(selected: np.ndarray, target: np.ndarray) -> dict:
    n = int(selected.sum())
    return {"selected": n, "precision": float(target[selected].mean()) if n else None,
            "recall": float(selected[target].mean()) if target.any() else None}


def bias_spectrum(scores: np.ndarray, y: np.ndarray, bias: np.ndarray) -> dict:
    """Where in the spectrum the bias lies, from principal component scores [N, K] (all components, sorted by
    variance): the component that alone separates the bias best within the disease classes (AUC folded to
    >= 0.5, mean over the two classes), its rank and its share of the variance, and the best of the first four."""
    auc = np.array([np.mean([max(a, 1 - a) for a in (roc_auc_score(bias[y == c], scores[y == c, j]) for c in (0, 1))])
                    for j in range(scores.shape[1])])
    var = scores.var(0) / scores.var(0).sum()
    j = int(np.argmax(auc))
    return {"bias_pc_rank": j + 1, "bias_pc_auc": float(auc[j]), "bias_pc_variance_share": float(var[j]),
            "top4_best_auc": float(auc[:4].max())}


def split_steps(feats, y, y_pred, prob, bias, pcs: list[int], seed: int = 0, weight: float = 10.0) -> list[dict]:
    backend = get_backend("sklearn")
    target = bias != y  # B&ND and NB&D
    cells = 2 * bias + y
    common = {"acc_under_represented": float((y_pred == y)[target].mean()),
              "acc_others": float((y_pred == y)[~target].mean())}
    common.update(bias_spectrum(backend.pca(feats, min(feats.shape), whiten=False, seed=seed), y, bias))
    out = []
    for k in pcs:
        k_eff = min(k, feats.shape[1], len(feats))
        X = backend.pca(feats, k_eff, whiten=False, seed=seed)
        res = paper_discovery(feats, y, prob, y_pred, backend, seed, mixture_weight=weight, n_pca=k_eff)
        g = res["subgroup"]
        best = np.zeros(len(g), bool)
        for s in np.unique(g):
            if (g == s).sum() < PAPER_MIN_SIZE:
                continue
            for c in (0, 1):  # the rules keep one label of a subgroup: healthy of S_B, diseased of S_NB
                m = (g == s) & (y == c)
                if m.any() and target[m].mean() > 0.5:
                    best |= m
        out.append({"pcs": k_eff,
                    "probe_in_diseased": cv_auc(X[y == 1], bias[y == 1], seed),
                    "probe_in_healthy": cv_auc(X[y == 0], bias[y == 0], seed),
                    "ami": float(adjusted_mutual_info_score(cells, g)),
                    "grouping_ceiling": _score(best, target),
                    "rules": _score(res["selected"].astype(bool), target),
                    "rules_knee_inclusive": _score(rebalanced_set(g, y, subgroup_table(
                        g, y, y_pred, PAPER_MIN_SIZE, knee_inclusive=True)), target), **common})
    return out


def run_seed(run: RunFolder) -> int:
    """The seed the run's own discovery used (its summary.json), so that the replay is the run's mixture."""
    if not run.discover.summary.exists():
        raise SystemExit(f"{run.root}: no discover/summary.json; pass --mixture-seed")
    return int(json.loads(run.discover.summary.read_text())["seed"])


def steps(run_dir: Path, pcs: list[int], seed: int | None = None, weight: float = 10.0) -> dict:
    """Every step on both discovery splits of one run; `seed` (mixture, PCA and probe folds) defaults to the
    run's own discovery seed."""
    run = RunFolder(run_dir)
    seed = run_seed(run) if seed is None else seed
    cohort = load_cohort(run.resolve_cohort(), load_images=False)
    preds = run.classify.read_predictions().set_index("participant_id")
    part = cohort.participants.set_index("participant_id")
    arch = json.loads(run.register.metrics.read_text())["config"].get("arch")
    out = {"run": str(run_dir), "arch": arch, "mixture_weight": weight, "mixture_seed": seed, "latent_width": None,
           "splits": {}}
    for split in DISCOVER_SPLITS:
        rows = cohort.index(split)
        ids = cohort.ids[rows]
        feats = load_features("inr", FeatureInputs(run, cohort, seed), rows)
        out["latent_width"] = int(feats.shape[1])
        p = preds.loc[ids]
        out["splits"][split] = split_steps(feats, p.y_true.to_numpy().astype(int), p.y_pred.to_numpy().astype(int),
                                           p.prob.to_numpy(), part.loc[ids, "bias"].to_numpy().astype(int), pcs, seed,
                                           weight)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--pcs", default="4,16,64,256", help="numbers of principal components (capped at the width)")
    ap.add_argument("--mixture-weights", default="10", help="the mixture's label/probability weights to try "
                    "(10 is the recipe's choice, 1 the other published neighbour)")
    ap.add_argument("--mixture-seed", type=int, default=None, help="the mixture's seed (default: the run's own "
                    "discovery seed, as the run used it; the rows of paper_discovery_steps_dev.json used 0)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    pcs = [int(k) for k in a.pcs.split(",")]
    rows = []
    for r in a.runs:
        for w in (float(v) for v in a.mixture_weights.split(",")):
            rows.append(steps(r, pcs, a.mixture_seed, w))
            print(json.dumps(rows[-1]))
    if a.json:
        write_json(a.json, {"pcs": pcs, "rows": rows})


if __name__ == "__main__":
    main()
