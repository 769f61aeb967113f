"""How much of the true bias each representation carries (`morphbias-fast bench probe`): a linear probe, the
question behind every detection figure. Discovery can only find the bias where a representation has it; when
detection fails, this says whether the representation or the discovery is at fault.

Per finished run of a synthetic cohort (classify and register done) and feature kind: the 5-fold
cross-validated ROC AUC of a logistic regression (standardised features, scikit-learn's default C = 1,
untuned) that predicts the true bias from the training subjects' features, overall and within each disease
class. Within a class the label cannot help, so the within-class AUC is the bias signal itself; the overall
AUC mixes in the disease, which the bias correlates with in a biased cohort. Also the same for disease."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from morphbias_fast.data import load_cohort
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.discover import FEATURES, FeatureInputs, load_features
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.runfolder import RunFolder

FOLDS = 5


def cv_auc(X: np.ndarray, y: np.ndarray, seed: int = 0) -> float | None:
    """5-fold stratified CV ROC AUC of a standardised logistic regression; None with fewer than FOLDS of a class."""
    if np.bincount(y.astype(int), minlength=2).min() < FOLDS:
        return None
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    return float(cross_val_score(model, X, y, cv=folds, scoring="roc_auc").mean())


def probe_run(path: Path, kinds: list[str], seed: int = 0, echo=print) -> list[dict]:
    run = RunFolder(path)
    cohort_dir = run.resolve_cohort()
    if read_synth_config(cohort_dir) is None:
        raise MorphbiasError(f"{cohort_dir}: bench probe needs a synthetic cohort (the true bias of every subject)")
    cohort = load_cohort(cohort_dir, load_images=any(FEATURES[k].needs_images for k in kinds))
    part = cohort.participants.set_index("participant_id").loc[list(cohort.ids)]
    rows = cohort.index("train")
    bias, disease = part["bias"].to_numpy()[rows], part["disease"].to_numpy()[rows]
    out = []
    for kind in kinds:
        X = load_features(kind, FeatureInputs(run, cohort, seed), rows)
        r = {"run": str(path), "features": kind, "width": int(X.shape[1]), "n": int(len(rows)),
             "bias_auc": cv_auc(X, bias, seed), "disease_auc": cv_auc(X, disease, seed),
             "bias_auc_in_diseased": cv_auc(X[disease == 1], bias[disease == 1], seed),
             "bias_auc_in_healthy": cv_auc(X[disease == 0], bias[disease == 0], seed)}
        out.append(r)
        echo(f"{Path(path).name:12s} {kind:11s} bias AUC {_f(r['bias_auc'])} (in diseased {_f(r['bias_auc_in_diseased'])}"
             f", in healthy {_f(r['bias_auc_in_healthy'])}); disease AUC {_f(r['disease_auc'])}")
    return out


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def run(paths: list[Path], kinds: list[str], seed: int = 0, echo=print) -> dict:
    unknown = [k for k in kinds if k not in FEATURES]
    if unknown:
        raise MorphbiasError(f"--features: unknown kind(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)}")
    return {"folds": FOLDS, "seed": seed, "rows": [r for p in paths for r in probe_run(p, kinds, seed, echo)]}
