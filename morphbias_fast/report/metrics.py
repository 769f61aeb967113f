"""RUN_DIR/metrics.json: one row per model on the test split (the paper's table) and the gap closed.

Models: biased (classify), mitigated (mitigate, our default strategy), every baseline that was run
(mitigate_<strategy>), and unbiased (a classifier trained on a bias-0.5 cohort of the same seed, evaluated on
this cohort's test split)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from morphbias_fast.errors import MorphbiasError
from morphbias_fast.evaluation import group_metrics
from morphbias_fast.runfolder import RunFolder, read_predictions

COLUMNS = ("acc_B", "acc_NB", "recall_B", "recall_NB", "prec_B", "prec_NB")


def gap_closed(recall_nb: float, biased: float, unbiased: float) -> float | None:
    """(recall NB of a model - biased) / (unbiased - biased); None when the gap is not positive."""
    den = unbiased - biased
    return None if not (den > 0) else (recall_nb - biased) / den


def _f(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def metrics_table(run: RunFolder, bias: pd.Series) -> dict:
    """{"rows": [...]} on the test split; `bias` maps participant_id -> 0/1."""
    rows = []
    for model, path in run.model_predictions().items():
        p = read_predictions(path)
        p = p[p.split == "test"]
        if p.empty:
            raise MorphbiasError(f"{path} has no test-split predictions")
        b = bias.reindex(p.participant_id)
        if b.isna().any():
            raise MorphbiasError(f"{path} has test participants without a bias value in the cohort")
        m = group_metrics(p.y_true.to_numpy(), p.y_pred.to_numpy(), b.to_numpy().astype(int))
        row = {"model": model, **{k: _f(m[k]) for k in COLUMNS}, "acc": _f(m["acc"]), "n_B": m["n_B"],
               "n_NB": m["n_NB"], "ci": {k: m["ci"][k] for k in COLUMNS if k in m["ci"]},
               "predictions": str(path)}
        rows.append(row)
    by = {r["model"]: r for r in rows}
    if "biased" in by and "unbiased" in by:
        for r in rows:
            if r["model"] not in ("biased", "unbiased"):
                r["gap_closed"] = gap_closed(r["recall_NB"], by["biased"]["recall_NB"], by["unbiased"]["recall_NB"])
                r["acc_B_drop"] = by["biased"]["acc_B"] - r["acc_B"]
    return {"split": "test", "rows": rows}


def aggregate(per_seed: list[dict]) -> dict:
    """Mean and std (ddof 1) over seeds of every numeric column, per model present in all seeds.

    Also `gap_closed_of_means`: the gap closed computed from the seed-mean recalls NB. The per-seed ratio
    divides by that seed's (unbiased - biased) gap, which the test split's 125 NB positives measure to about
    +-0.06 (one standard error of the difference of two independent recalls near 0.7); on a seed where the gap
    is that small the ratio is noise, and it dominates the mean. The ratio of means weighs each seed by its
    gap."""
    models = [r["model"] for r in per_seed[0]["rows"]]
    rows = []
    for model in models:
        vals = [next((r for r in m["rows"] if r["model"] == model), None) for m in per_seed]
        if any(v is None for v in vals):
            continue
        row = {"model": model, "n_seeds": len(vals)}
        for k in (*COLUMNS, "acc", "gap_closed", "acc_B_drop"):
            xs = [v.get(k) for v in vals]
            if all(x is not None for x in xs):
                row[k] = float(np.mean(xs))
                row[f"{k}_std"] = float(np.std(xs, ddof=1)) if len(xs) > 1 else 0.0
        rows.append(row)
    by = {r["model"]: r for r in rows}
    if "biased" in by and "unbiased" in by:
        for r in rows:
            if r["model"] not in ("biased", "unbiased"):
                r["gap_closed_of_means"] = gap_closed(r["recall_NB"], by["biased"]["recall_NB"],
                                                      by["unbiased"]["recall_NB"])
    return {"split": "test", "rows": rows}
