"""The discover stage: features + classifier predictions -> subgroups, roles and the re-balanced set, for
the train and the val split separately (as the paper does). Writes DIR/subgroups.csv and DIR/summary.json."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from morphbias_fast.discover.backends import get_backend
from morphbias_fast.discover.features import load_features
from morphbias_fast.discover.mixture import ErrorAwareGMM
from morphbias_fast.discover.shortcut import ShortcutConfig, shortcut_discovery
from morphbias_fast.discover.subgroups import rebalanced_set, subgroup_table
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.io import atomic_path, write_json

METHODS = ("shortcut", "paper")
DISCOVER_SPLITS = ("train", "val")
PAPER_PCA, PAPER_K, PAPER_MIN_SIZE = 4, 7, 10  # METHOD.md section 3


def resolve_cohort(run_dir: Path, cohort_dir=None) -> Path:
    """--cohort, else RUN_DIR/cohort (what `run` makes), else the cohort the classify stage recorded."""
    if cohort_dir is not None:
        return Path(cohort_dir)
    if (run_dir / "cohort" / "participants.tsv").exists():
        return run_dir / "cohort"
    metrics = run_dir / "classify" / "metrics.json"
    if metrics.exists():
        recorded = json.loads(metrics.read_text()).get("cohort")
        if recorded:
            return Path(recorded)
    raise MorphbiasError(f"cannot tell which cohort {run_dir} was made from: pass --cohort COHORT_DIR")


def read_predictions(run_dir: Path) -> pd.DataFrame:
    path = run_dir / "classify" / "predictions.csv"
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: run `morphbias-fast classify` first")
    preds = pd.read_csv(path, dtype={"participant_id": str})
    need = {"participant_id", "split", "y_true", "prob", "y_pred"}
    if not need <= set(preds.columns):
        raise MorphbiasError(f"{path} lacks columns {', '.join(sorted(need - set(preds.columns)))}")
    return preds


def paper_discovery(features, y, prob, y_pred, backend, seed: int = 0) -> dict:
    """METHOD.md section 3, as published: error-aware mixture over [PCA(features, 4), label, probability],
    K = 7, diagonal covariances; subgroups under 10 members take no role."""
    pcs = backend.pca(features, PAPER_PCA, whiten=False, seed=seed)
    groups = ErrorAwareGMM(n_components=PAPER_K, seed=seed).fit_predict(pcs, y, prob)
    table = subgroup_table(groups, y, y_pred, min_size=PAPER_MIN_SIZE)
    roles = dict(zip(table.subgroup, table.role))
    return {"subgroup": groups, "selected": rebalanced_set(groups, y, table),
            "role": np.array([roles.get(int(g), "none") for g in groups])}


def _clean(v):
    if isinstance(v, (np.floating, float)):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    return v


def describe(frame: pd.DataFrame, truth: pd.DataFrame | None) -> dict:
    """Per-subgroup statistics and, with ground truth (bias column), the detection scores."""
    from sklearn.metrics import adjusted_mutual_info_score

    table = subgroup_table(frame.subgroup, frame.y_true, frame.y_pred, min_size=0).drop(columns="role")
    roles = frame.groupby("subgroup").role.first()
    rows = []
    for rec in table.to_dict("records"):
        g = rec["subgroup"]
        rec["role"] = roles[g]
        rec["selected"] = int(frame.selected[frame.subgroup == g].sum())
        if truth is not None:
            m = (frame.subgroup == g).to_numpy()
            rec["bias_share"] = float(truth.bias.to_numpy()[m].mean())
            rec["disease_share"] = float(truth.disease.to_numpy()[m].mean())
        rows.append({k: _clean(v) for k, v in rec.items()})
    out = {"n": len(frame), "selected": int(frame.selected.sum()), "subgroups": rows}
    if truth is not None:
        b, d, sel = truth.bias.to_numpy(), truth.disease.to_numpy(), frame.selected.to_numpy().astype(bool)
        target = ((b == 1) & (d == 0)) | ((b == 0) & (d == 1))  # the under-represented groups B&ND, NB&D
        out["precision"] = _clean(target[sel].mean()) if sel.any() else None
        out["recall"] = _clean(sel[target].mean()) if target.any() else None
        out["ami"] = float(adjusted_mutual_info_score(2 * b + d, frame.subgroup))
    return out


def run_discover(run_dir, features: str = "inr", method: str = "shortcut", backend: str = "auto",
                 out_dir=None, seed: int = 0, cohort_dir=None, device: str = "cpu",
                 clip_model: str | None = None) -> dict:
    """Discover on train and on val; write OUT/subgroups.csv and OUT/summary.json; return the summary."""
    from morphbias_fast.data import load_cohort

    run_dir = Path(run_dir)
    if method not in METHODS:
        raise MorphbiasError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "discover"
    be = get_backend(backend)
    preds = read_predictions(run_dir)
    cohort = load_cohort(resolve_cohort(run_dir, cohort_dir), load_images=features != "inr")
    truth_cols = {"bias", "disease"} <= set(cohort.participants.columns)
    frames, summary = [], {"features": features, "method": method, "backend": be.name, "seed": seed,
                           "cohort": str(cohort.root), "splits": {}}
    if method == "shortcut":
        summary["config"] = ShortcutConfig().__dict__
    if features == "clip":
        summary["clip_model"] = clip_model
    # Features, labels and predictions of train and val; the paper's method runs on each split alone, ours on
    # both together (shortcut.py says why).
    data = {}
    for split in DISCOVER_SPLITS:
        rows = cohort.index(split)
        ids = cohort.ids[rows]
        p = preds.set_index("participant_id").reindex(ids)
        if p.prob.isna().any():
            missing = ids[p.prob.isna().to_numpy()][0]
            raise MorphbiasError(f"{run_dir / 'classify/predictions.csv'} has no prediction for {missing}")
        t0 = time.perf_counter()
        feats = load_features(features, run_dir, cohort, rows, seed=seed, device=device, clip_model=clip_model)
        data[split] = (rows, ids, feats, p.y_true.to_numpy().astype(int), p.prob.to_numpy(),
                       p.y_pred.to_numpy().astype(int), time.perf_counter() - t0)
    results = {}
    if method == "paper":
        for split, (rows, ids, feats, y, prob, y_pred, _) in data.items():
            t0 = time.perf_counter()
            results[split] = paper_discovery(feats, y, prob, y_pred, be, seed)
            results[split]["seconds"] = time.perf_counter() - t0
    else:
        t0 = time.perf_counter()
        cat = [np.concatenate([data[s][i] for s in DISCOVER_SPLITS]) for i in (2, 3, 4)]
        res = shortcut_discovery(*cat, be, seed=seed)
        seconds = time.perf_counter() - t0
        lo = 0
        for split in DISCOVER_SPLITS:
            n = len(data[split][0])
            results[split] = {k: res[k][lo: lo + n] for k in ("subgroup", "selected", "role")}
            results[split]["seconds"] = seconds * n / len(cat[0])  # the joint fit's time, shared by size
            lo += n
    for split, (rows, ids, feats, y, prob, y_pred, feat_seconds) in data.items():
        res = results[split]
        frame = pd.DataFrame({"participant_id": ids, "split": split, "subgroup": res["subgroup"],
                              "selected": res["selected"].astype(int), "role": res["role"],
                              "y_true": y, "y_pred": y_pred})
        truth = cohort.participants.iloc[rows][["bias", "disease"]].reset_index(drop=True) if truth_cols else None
        summary["splits"][split] = {**describe(frame, truth), "seconds": res["seconds"],
                                    "feature_seconds": feat_seconds}
        frames.append(frame.drop(columns=["y_true", "y_pred"]))
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / "subgroups.csv") as tmp:
        pd.concat(frames).to_csv(tmp, index=False)
    write_json(out_dir / "summary.json", summary)
    return summary
