"""RUN_DIR/metrics.json: one row per model on the balanced test split, and the seed aggregate.

Models: biased (classify), mitigated (mitigate, our default strategy), every baseline that was run
(mitigate_<strategy>), and unbiased (a classifier trained on a bias-0.5 cohort of the same seed, evaluated on
this cohort's test split).

Per row (docs/METHOD.md section 7): the headline, worst-group accuracy (wga) over the four bias x disease cells
and, on synthetic cohorts, the counterfactual-twin sensitivity; the cell accuracies, balanced accuracy, the
equalized-odds gap and the signed shortcut effect, each with a stratified bootstrap interval; and the paper's
six columns. Against the biased and unbiased rows: wga_gap_closed = (wga - wga_biased) / (wga_unbiased -
wga_biased), cf_reduction = 1 - cf_sensitivity / cf_sensitivity_biased, and the paper's recall-NB gap closed
(`gap_closed`), which has no upper bound: a model that calls every case without the bias diseased scores
highest on it.

Per row also, from the validation split and the discovered bias side alone (discovery's S_B / S_NB roles, no
true bias, no test data): `val_disc_wga` and `val_disc_shortcut`, the worst-cell accuracy and the signed
shortcut effect a user without bias labels can measure. Choices between variants of the method are made on
these (issue 14, item 5); the test columns only report."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from morphbias_fast.errors import MorphbiasError
from morphbias_fast.evaluation import CELL_METRICS, cell_metrics, group_metrics, twin_metrics
from morphbias_fast.runfolder import RunFolder, read_predictions

COLUMNS = ("acc_B", "acc_NB", "recall_B", "recall_NB", "prec_B", "prec_NB")
TWIN_METRICS = ("cf_sensitivity", "cf_flip_rate")
HEADLINE = ("wga", "wga_gap_closed", "shortcut_effect", "cf_sensitivity", "cf_reduction", "cf_flip_rate",
            "bal_acc", "eo_gap")
GAPS = ("wga_gap_closed", "cf_reduction", "gap_closed", "acc_B_drop")
VAL_DISCOVERED = ("val_disc_wga", "val_disc_shortcut")
PAIRED_AGAINST = ("oracle", "groupbal")  # the default is tested against these across seeds
PAIRED_METRICS = ("wga", "shortcut_effect", "cf_sensitivity")


def gap_closed(value: float, biased: float, unbiased: float) -> float | None:
    """(value of a model - biased) / (unbiased - biased); None when the gap is not positive."""
    den = unbiased - biased
    return None if not (den > 0) else (value - biased) / den


def _f(v):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def model_row(model: str, preds: pd.DataFrame, bias: np.ndarray, twins: dict | None) -> dict:
    """One model's row from its test predictions, the test subjects' bias, and (optional) its probabilities on
    each subject and its twin: {"own": [n], "twin": [n]} in the order of `preds`."""
    y, yp = preds.y_true.to_numpy(), preds.y_pred.to_numpy()
    m = group_metrics(y, yp, bias)
    try:
        c = cell_metrics(y, yp, bias)
    except ValueError:  # a bias x disease cell is empty on this test split (small real cohorts): no cell metrics
        c = {**{k: None for k in CELL_METRICS}, "n_cells": None, "ci": {}}
    row = {"model": model, **{k: _f(m[k]) for k in COLUMNS}, "acc": _f(m["acc"]), "n_B": m["n_B"],
           "n_NB": m["n_NB"], **{k: c[k] for k in CELL_METRICS}, "n_cells": c["n_cells"],
           "ci": {**{k: m["ci"][k] for k in COLUMNS if k in m["ci"]}, **c["ci"]}}
    if twins is not None:
        t = twin_metrics(twins["own"], twins["twin"], bias, y)
        row.update({k: t[k] for k in TWIN_METRICS})
        row["ci"].update(t["ci"])
    return row


def _gaps(rows: list[dict]) -> None:
    """wga_gap_closed, cf_reduction, gap_closed (recall NB) and acc_B_drop of every row but the references."""
    by = {r["model"]: r for r in rows}
    if "biased" not in by:
        return
    b = by["biased"]
    for r in rows:
        if r["model"] in ("biased", "unbiased"):
            continue
        r["acc_B_drop"] = b["acc_B"] - r["acc_B"]
        if "unbiased" in by:
            r["wga_gap_closed"] = gap_closed(r["wga"], b["wga"], by["unbiased"]["wga"])
            r["gap_closed"] = gap_closed(r["recall_NB"], b["recall_NB"], by["unbiased"]["recall_NB"])
        if r.get("cf_sensitivity") is not None and b.get("cf_sensitivity", 0) > 0:
            r["cf_reduction"] = 1 - r["cf_sensitivity"] / b["cf_sensitivity"]


def val_discovered(preds: pd.DataFrame, roles: pd.Series) -> dict:
    """val_disc_wga and val_disc_shortcut of one model's predictions on the val split, with the discovered side
    (role S_B = 1, S_NB = 0; subjects without a side left out) standing in for the bias."""
    p = preds[preds.split == "val"]
    side = roles.reindex(p.participant_id).map({"S_B": 1, "S_NB": 0}).to_numpy()
    keep = ~pd.isna(side)
    try:
        c = cell_metrics(p.y_true.to_numpy()[keep], p.y_pred.to_numpy()[keep], side[keep].astype(int), n_boot=1)
    except ValueError:  # a discovered side x label cell is empty on val: nothing to measure
        return {k: None for k in VAL_DISCOVERED}
    return {"val_disc_wga": _f(c["wga"]), "val_disc_shortcut": _f(c["shortcut_effect"])}


def metrics_table(run: RunFolder, bias: pd.Series, twin_probs: dict | None = None) -> dict:
    """{"rows": [...]} on the test split; `bias` maps participant_id -> 0/1; `twin_probs` (optional) maps a
    model name to {"ids", "own", "twin"}: its disease probabilities on test subjects and their twins."""
    rows = []
    roles = run.discover.read_subgroups().role if run.done("discover") else None
    for model, path in run.model_predictions().items():
        p = read_predictions(path)
        disc = val_discovered(p, roles) if roles is not None else {}
        p = p[p.split == "test"]
        if p.empty:
            raise MorphbiasError(f"{path} has no test-split predictions")
        b = bias.reindex(p.participant_id)
        if b.isna().any():
            raise MorphbiasError(f"{path} has test participants without a bias value in the cohort")
        twins = None
        if twin_probs and model in twin_probs:
            t = twin_probs[model]
            order = pd.Series(np.arange(len(t["ids"])), index=t["ids"]).reindex(p.participant_id).to_numpy()
            twins = {"own": t["own"][order], "twin": t["twin"][order]}
        rows.append({**model_row(model, p, b.to_numpy().astype(int), twins), **disc, "predictions": str(path)})
    _gaps(rows)
    return {"split": "test", "rows": rows}


def t_interval(xs: list[float]) -> list[float] | None:
    """95% t-interval of the mean over seeds (None with one seed)."""
    if len(xs) < 2:
        return None
    h = stats.t.ppf(0.975, len(xs) - 1) * np.std(xs, ddof=1) / np.sqrt(len(xs))
    return [float(np.mean(xs) - h), float(np.mean(xs) + h)]


def _paired_tests(per_seed: list[dict], default: str = "mitigated") -> list[dict]:
    """Two-sided Wilcoxon signed-rank tests over seeds of the default against each PAIRED_AGAINST model.
    With 5 seeds the smallest possible p is 0.0625: a direction, not a verdict."""
    out = []
    for other in PAIRED_AGAINST:
        for k in PAIRED_METRICS:
            pairs = []
            for m in per_seed:
                by = {r["model"]: r for r in m["rows"]}
                if default in by and other in by and by[default].get(k) is not None and by[other].get(k) is not None:
                    pairs.append((by[default][k], by[other][k]))
            if len(pairs) < 2:
                continue
            d = [a - b for a, b in pairs]
            p = None if all(x == 0 for x in d) else float(stats.wilcoxon([a for a, _ in pairs],
                                                                         [b for _, b in pairs]).pvalue)
            out.append({"metric": k, "a": default, "b": other, "n": len(pairs), "mean_difference": float(np.mean(d)),
                        "wins_of_a": int(sum(x > 0 for x in d)), "p_wilcoxon": p})
    return out


def aggregate(per_seed: list[dict]) -> dict:
    """Mean, std (ddof 1) and a 95% t-interval over seeds of every numeric column, per model present in all
    seeds; the ratios of seed means; paired Wilcoxon tests of the default against oracle and groupbal.

    `*_of_means`: a gap closed computed from the seed means. The per-seed ratio divides by that seed's
    (unbiased - biased) gap, which the test split's 125 cases per cell measure to about +-0.06 (one standard
    error of the difference of two independent rates near 0.7); on a seed where the gap is that small the
    ratio is noise, and it dominates the mean. The ratio of means weighs each seed by its gap."""
    models = [r["model"] for r in per_seed[0]["rows"]]
    rows = []
    for model in models:
        vals = [next((r for r in m["rows"] if r["model"] == model), None) for m in per_seed]
        if any(v is None for v in vals):
            continue
        row = {"model": model, "n_seeds": len(vals)}
        for k in (*COLUMNS, "acc", *CELL_METRICS, *TWIN_METRICS, *GAPS, *VAL_DISCOVERED):
            xs = [v.get(k) for v in vals]
            if all(x is not None for x in xs):
                row[k] = float(np.mean(xs))
                row[f"{k}_std"] = float(np.std(xs, ddof=1)) if len(xs) > 1 else None  # undefined for one seed
                row[f"{k}_ci95"] = t_interval(xs)
        rows.append(row)
    by = {r["model"]: r for r in rows}
    if "biased" in by and "unbiased" in by:
        b, u = by["biased"], by["unbiased"]
        for r in rows:
            if r["model"] not in ("biased", "unbiased"):
                r["gap_closed_of_means"] = gap_closed(r["recall_NB"], b["recall_NB"], u["recall_NB"])
                if all("wga" in x for x in (r, b, u)):
                    r["wga_gap_closed_of_means"] = gap_closed(r["wga"], b["wga"], u["wga"])
    return {"split": "test", "rows": rows, "paired_tests": _paired_tests(per_seed)}
