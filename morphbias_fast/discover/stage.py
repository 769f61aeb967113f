"""The discover stage: features + classifier predictions -> subgroups, roles and the re-balanced set, for
the train and the val split. Writes subgroups.csv and summary.json into the run's discover folder."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_mutual_info_score

from morphbias_fast import gates
from morphbias_fast.data import load_cohort
from morphbias_fast.devices import resolve_device
from morphbias_fast.discover.backends import Backend, get_backend
from morphbias_fast.discover.features import FEATURES, FeatureInputs, load_features
from morphbias_fast.discover.mixture import INITS as MIXTURE_INITS
from morphbias_fast.discover.mixture import ErrorAwareGMM
from morphbias_fast.discover.shortcut import ShortcutConfig, shortcut_discovery
from morphbias_fast.discover.subgroups import rebalanced_set, subgroup_table
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_path, write_json
from morphbias_fast.runfolder import DiscoverFolder, RunFolder

METHODS = ("shortcut", "paper")
DISCOVER_SPLITS = ("train", "val")
PAPER_PCA, PAPER_K, PAPER_MIN_SIZE = 4, 7, 10  # docs/METHOD.md section 3


@dataclass(frozen=True)
class Config:
    features: str = "inr"
    method: str = "shortcut"
    backend: str = "auto"
    out: Path | None = None      # default: the run's discover folder
    cohort: Path | None = None   # default: the run's cohort (RunFolder.resolve_cohort)
    seed: int = 0
    device: str = "auto"
    clip_model: str | None = None
    # --method paper only: the mixture's label and probability weights, and its start (mixture.py)
    mixture_weight: float = 10.0
    mixture_init: str = "kmeans"


@dataclass
class Result:
    summary_json: dict

    def summary(self) -> str:
        lines = []
        for split, s in self.summary_json["splits"].items():
            line = f"{split}: {s['selected']} of {s['n']} in the re-balanced set"
            if s.get("precision") is not None:
                line += f" (precision {s['precision']:.2f}, recall {s['recall']:.2f}, AMI {s['ami']:.2f})"
            lines.append(line + f" [{self.summary_json['backend']}, {s['seconds']:.1f} s]")
        return "\n".join(lines) + gates.say_all(self.warnings)

    @property
    def warnings(self) -> list[str]:
        return self.summary_json.get("warnings", [])


@dataclass
class _Split:
    rows: np.ndarray
    ids: np.ndarray
    features: np.ndarray
    y: np.ndarray
    prob: np.ndarray
    y_pred: np.ndarray
    feature_seconds: float


def paper_discovery(features, y, prob, y_pred, backend: Backend, seed: int = 0, mixture_weight: float = 10.0,
                    mixture_init: str = "kmeans", n_pca: int = PAPER_PCA) -> dict:
    """docs/METHOD.md section 3, as published: error-aware mixture over [PCA(features, 4), label, probability],
    K = 7, diagonal covariances; subgroups under 10 members take no role. The paper is silent on the mixture's
    label/probability weights and its start (mixture_weight, mixture_init). n_pca is published (4); other
    counts are for the diagnostic of which setting loses the bias (bench/diagnostics/paper_discovery_steps.py)."""
    pcs = backend.pca(features, n_pca, whiten=False, seed=seed)
    groups = ErrorAwareGMM(n_components=PAPER_K, y_weight=mixture_weight, p_weight=mixture_weight,
                           init=mixture_init, seed=seed).fit_predict(pcs, y, prob)
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


def _load_splits(run: RunFolder, cfg: Config, inp: FeatureInputs) -> dict[str, _Split]:
    """Features, labels and predictions of train and val."""
    preds = run.classify.read_predictions().set_index("participant_id")
    out = {}
    for split in DISCOVER_SPLITS:
        rows = inp.cohort.index(split)
        ids = inp.cohort.ids[rows]
        p = preds.reindex(ids)
        if p.prob.isna().any():
            raise MorphbiasError(f"{run.classify.predictions} has no prediction for "
                                 f"{ids[p.prob.isna().to_numpy()][0]}")
        t0 = time.perf_counter()
        feats = load_features(cfg.features, inp, rows)
        out[split] = _Split(rows, ids, feats, p.y_true.to_numpy().astype(int), p.prob.to_numpy(),
                            p.y_pred.to_numpy().astype(int), time.perf_counter() - t0)
    return out


def _discover(data: dict[str, _Split], cfg: Config, backend: Backend) -> dict[str, dict]:
    """Subgroup, selected and role per split. The paper's method runs on each split alone; ours on both
    together (shortcut.py says why), its time shared by size."""
    results = {}
    if cfg.method == "paper":
        for split, d in data.items():
            t0 = time.perf_counter()
            results[split] = paper_discovery(d.features, d.y, d.prob, d.y_pred, backend, cfg.seed,
                                             cfg.mixture_weight, cfg.mixture_init)
            results[split]["seconds"] = time.perf_counter() - t0
        return results
    t0 = time.perf_counter()
    cat = [np.concatenate([getattr(data[s], k) for s in DISCOVER_SPLITS]) for k in ("features", "y", "prob")]
    res = shortcut_discovery(*cat, backend, seed=cfg.seed)
    seconds = time.perf_counter() - t0
    lo = 0
    for split in DISCOVER_SPLITS:
        n = len(data[split].rows)
        results[split] = {k: res[k][lo: lo + n] for k in ("subgroup", "selected", "role")}
        results[split]["seconds"] = seconds * n / len(cat[0])
        lo += n
    return results


def run(run: RunFolder, cfg: Config) -> Result:
    """Discover on train and on val; write subgroups.csv and summary.json; return the summary."""
    if cfg.method not in METHODS:
        raise MorphbiasError(f"--method must be one of {', '.join(METHODS)}, got {cfg.method!r}")
    if cfg.features not in FEATURES:
        raise MorphbiasError(f"--features must be one of {', '.join(FEATURES)}, got {cfg.features!r}")
    if cfg.mixture_init not in MIXTURE_INITS:
        raise MorphbiasError(f"--mixture-init must be one of {', '.join(MIXTURE_INITS)}, got {cfg.mixture_init!r}")
    if not (math.isfinite(cfg.mixture_weight) and cfg.mixture_weight > 0):
        raise MorphbiasError(f"--mixture-weight must be a positive number, got {cfg.mixture_weight}")
    files = DiscoverFolder(cfg.out) if cfg.out is not None else run.discover
    backend = get_backend(cfg.backend)
    cohort = load_cohort(run.resolve_cohort(cfg.cohort), load_images=FEATURES[cfg.features].needs_images)
    inp = FeatureInputs(run, cohort, cfg.seed, resolve_device(cfg.device), cfg.clip_model)
    data = _load_splits(run, cfg, inp)
    results = _discover(data, cfg, backend)
    summary = {"features": cfg.features, "method": cfg.method, "backend": backend.name, "seed": cfg.seed,
               "cohort": str(cohort.root), "splits": {}}
    if cfg.method == "shortcut":
        summary["config"] = ShortcutConfig().__dict__
    else:
        summary["config"] = {"pca": PAPER_PCA, "k": PAPER_K, "min_size": PAPER_MIN_SIZE,
                             "mixture_weight": cfg.mixture_weight, "mixture_init": cfg.mixture_init}
    if cfg.features == "clip":
        summary["clip_model"] = cfg.clip_model
    truth_cols = {"bias", "disease"} <= set(cohort.participants.columns)
    frames = []
    for split, d in data.items():
        res = results[split]
        frame = pd.DataFrame({"participant_id": d.ids, "split": split, "subgroup": res["subgroup"],
                              "selected": res["selected"].astype(int), "role": res["role"],
                              "y_true": d.y, "y_pred": d.y_pred})
        truth = cohort.participants.iloc[d.rows][["bias", "disease"]].reset_index(drop=True) if truth_cols else None
        summary["splits"][split] = {**describe(frame, truth), "seconds": res["seconds"],
                                    "feature_seconds": d.feature_seconds}
        frames.append(frame)
    everyone = pd.concat(frames)
    summary["split_check"] = gates.split_errors(everyone)
    summary["warnings"] = gates.discovery(everyone) + gates.split_check(summary["split_check"])
    frames = [f.drop(columns=["y_true", "y_pred"]) for f in frames]
    files.path.mkdir(parents=True, exist_ok=True)
    with atomic_path(files.subgroups) as tmp:
        pd.concat(frames).to_csv(tmp, index=False)
    write_json(files.summary, summary)
    return Result(summary)
