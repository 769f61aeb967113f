"""The realistic-cohort study (`morphbias-fast bench realistic`): the issue-15 table over archived seeds.

`bench/queue/mri_line.sh` archives, per development seed of an mri cohort, four files in one folder
(e.g. bench/results/archive/m09): seed_K.json (`bench mitigate --archive`: the models' table and the cohort's
synth settings), register_seed_K.json (the register stage's metrics.json), discover_seed_K.json (`bench
discover`: detection per feature kind and discovery seed) and probe_seed_K.json (`bench probe`), and, where it
was measured, discovery_steps_seed_K.json (bench/diagnostics/discovery_steps.py). This module
reads them back, takes one figure per seed for each line of the issue's Done-when, and gives each figure's
mean, min and max over the seeds with whether the target holds on the mean (and on every seed). Nothing is
recomputed from images: the figures are the archived ones, so the table outlives the run folders.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from morphbias_fast.bench.mitigate import read_archive
from morphbias_fast.errors import MorphbiasError

FEATURES = ("inr", "pca", "autoencoder")

# The Done-when as (figure, comparison, target, bias levels it applies at; None: every level). Detection
# margins compare two per-seed figures. They apply to the shape shortcut only: the intensity-shortcut control
# (`synth --shortcut intensity`) is reported without targets.
TARGETS = (
    ("epe_ratio_test", "<=", 0.35, None),
    ("subjects_over_0.1pct_folded", "<=", 0, None),
    ("recall_gap_biased", ">=", 0.25, (0.9,)),
    ("abs_recall_gap_unbiased", "<=", 0.12, None),  # the reference classifier, trained at bias 0.5
    ("detection_inr", ">=", 0.80, (0.9, 0.8)),
    ("detection_inr_minus_pca", ">=", 0.20, (0.9, 0.8)),
    ("detection_inr_minus_autoencoder", ">=", 0.15, (0.9, 0.8)),
    ("wga_gap_closed", ">=", 0.60, (0.9,)),
)


def _row(rows: list[dict], model: str, where: Path) -> dict:
    for r in rows:
        if r["model"] == model:
            return r
    raise MorphbiasError(f"{where}: no {model!r} row in the archived table")


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise MorphbiasError(f"{path} is missing: mri_line.sh archives it beside the seed's table") from None


def seed_figures(folder: Path, name: str, table: dict) -> dict:
    """One seed's figure for every line of the Done-when (None where the seed's files do not have it), from its
    archived table (`name`: seed_K) and the files archived beside it."""
    k, seed_file = name[5:], folder / f"{name}.json"
    reg = _read(folder / f"register_seed_{k}.json")
    disc, probe = _read(folder / f"discover_seed_{k}.json"), _read(folder / f"probe_seed_{k}.json")
    biased, unbiased = _row(table["rows"], "biased", seed_file), _row(table["rows"], "unbiased", seed_file)
    mitigated = _row(table["rows"], "mitigated", seed_file)
    out = {"seed": int(k), "bias_level": table.get("bias_level"), "synth": table.get("synth"),
           "epe_ratio_test": reg["splits"]["test"].get("epe_ratio"),
           # the issue asks for no subject over 0.1% folded: every split counts
           "subjects_over_0.1pct_folded": sum(s["subjects_over_0.1pct_folded"] for s in reg["splits"].values()),
           "recall_gap_biased": biased["recall_B"] - biased["recall_NB"],
           "abs_recall_gap_unbiased": abs(unbiased["recall_B"] - unbiased["recall_NB"]),
           "wga_gap_closed": mitigated.get("wga_gap_closed"),
           "wga_mitigated": mitigated["wga"], "wga_biased": biased["wga"], "wga_unbiased": unbiased["wga"],
           "shortcut_effect_mitigated": mitigated["shortcut_effect"]}
    for f in FEATURES:
        prec = [r["precision"] for r in disc["rows"] if r["features"] == f and r["split"] == "train"
                and r["method"] == "shortcut"]
        out[f"detection_{f}"] = float(np.mean(prec)) if prec else None  # mean over the discovery seeds
        pr = [r for r in probe["rows"] if r["features"] == f]
        out[f"probe_bias_in_diseased_{f}"] = pr[0]["bias_auc_in_diseased"] if pr else None
        out[f"probe_bias_in_healthy_{f}"] = pr[0]["bias_auc_in_healthy"] if pr else None
    # Optional (archived from 2026-12-02): which step of the discovery loses the bias
    # (bench/diagnostics/discovery_steps.py), as within-diseased AUCs of the aimed start and of the final score.
    steps = folder / f"discovery_steps_seed_{k}.json"
    step_rows = {r["features"]: r for r in json.loads(steps.read_text())["rows"]} if steps.exists() else {}
    for f in FEATURES:
        r = step_rows.get(f)
        out[f"aimed_auc_in_diseased_{f}"] = r["aimed"]["in_diseased"] if r else None
        out[f"final_auc_in_diseased_{f}"] = r["final"]["in_diseased"] if r else None
    for f in FEATURES[1:]:
        a, b = out["detection_inr"], out[f"detection_{f}"]
        out[f"detection_inr_minus_{f}"] = None if a is None or b is None else a - b
    return out


def _holds(value: float | None, op: str, target: float) -> bool | None:
    if value is None:
        return None
    return value <= target if op == "<=" else value >= target


def summarise(per_seed: list[dict]) -> dict:
    """Mean, min and max over the seeds of every figure, and each target that applies to the folder's bias level
    and shortcut on the mean and on every seed."""
    keys = [k for k in per_seed[0] if k not in ("seed", "bias_level", "synth")]
    stats = {}
    for k in keys:
        vals = [s[k] for s in per_seed if s[k] is not None]
        stats[k] = ({"mean": float(np.mean(vals)), "min": float(min(vals)), "max": float(max(vals)), "n": len(vals)}
                    if vals else {"mean": None, "min": None, "max": None, "n": 0})
    level, synth = per_seed[0]["bias_level"], per_seed[0]["synth"] or {}
    checks = []
    for k, op, target, levels in TARGETS:
        if synth.get("shortcut", "morphology") != "morphology" or (levels and level not in levels):
            continue
        on_seeds = [_holds(s[k], op, target) for s in per_seed]
        checks.append({"figure": k, "target": f"{op} {target}", "mean": stats[k]["mean"],
                       "holds_on_mean": _holds(stats[k]["mean"], op, target),
                       "holds_on_every_seed": None if None in on_seeds else all(on_seeds)})
    return {"stats": stats, "checks": checks}


def run(folders: list[Path], echo=print) -> dict:
    """The table of every archive folder (one bias level and shortcut each)."""
    out = {}
    for folder in map(Path, folders):
        tables, _ = read_archive(folder)  # refuses seeds of different bias levels
        if not tables:
            raise MorphbiasError(f"{folder} holds no archived seed (seed_K.json): give an archive folder that "
                                 f"mri_line.sh filled")
        per_seed = [seed_figures(folder, name, t) for name, t in tables.items()]
        kinds = {json.dumps(s["synth"], sort_keys=True) for s in per_seed}
        if len(kinds) > 1:
            raise MorphbiasError(f"{folder}: the archived seeds come from different cohorts (synth settings "
                                 f"{sorted(kinds)}); one folder must hold one study")
        res = {"seeds": [s["seed"] for s in per_seed], "bias_level": per_seed[0]["bias_level"],
               "synth": per_seed[0]["synth"], "per_seed": per_seed, **summarise(per_seed)}
        out[str(folder)] = res
        echo(format_summary(folder, res))
    return out


def format_summary(folder: Path, res: dict) -> str:
    synth = res["synth"] or {}
    lines = [f"\n{folder}: bias {res['bias_level']}, {synth.get('appearance', '?')} cohort, "
             f"{synth.get('shortcut', '?')} shortcut, seeds {', '.join(map(str, res['seeds']))}",
             "| figure | mean | min | max | target | on the mean | on every seed |", "|---|---|---|---|---|---|---|"]
    targets = {c["figure"]: c for c in res["checks"]}

    def num(v):
        return "-" if v is None else f"{v:.3f}"

    def yes(v):
        return "-" if v is None else ("yes" if v else "no")

    for k, s in res["stats"].items():
        c = targets.get(k, {})
        lines.append(f"| {k} | {num(s['mean'])} | {num(s['min'])} | {num(s['max'])} | {c.get('target', '')} | "
                     f"{yes(c.get('holds_on_mean'))} | {yes(c.get('holds_on_every_seed'))} |")
    return "\n".join(lines)
