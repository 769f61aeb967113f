"""`morphbias-fast run`: synth -> classify -> register -> discover -> mitigate -> report, in one folder.

Each stage is skipped when its output is already there, so a rerun after Ctrl-C resumes (register resumes
from its own checkpoint). With a synthetic cohort the unbiased reference classifier is trained on a
bias-0.5 cohort of the same seed and size and evaluated on this cohort's test split."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
import pandas as pd

from morphbias_fast.errors import MorphbiasError
from morphbias_fast.io import atomic_path, write_json


def _say(msg: str) -> None:
    click.echo(click.style(f"[morphbias-fast] {msg}", fg="cyan"), err=True)


def _synth_config(cohort_dir: Path):
    """The SynthConfig a cohort was made with, or None for a cohort that synth did not write."""
    from morphbias_fast.data.synth import SynthConfig

    desc = cohort_dir / "dataset_description.json"
    if not desc.exists():
        return None
    cfg = json.loads(desc.read_text()).get("SynthConfig")
    return SynthConfig(**cfg) if cfg else None


def unbiased_reference(run_dir: Path, cohort_dir: Path, seed: int) -> None:
    """RUN/unbiased/{cohort, classify}; then RUN/unbiased/predictions.csv on the main cohort."""
    from morphbias_fast.classify import TrainConfig, predict_proba, run_classify
    from morphbias_fast.classify.train import (
        load_classifier,
        predictions_frame,
        standardise,
    )
    from morphbias_fast.data import load_cohort
    from morphbias_fast.data.synth import synthesize
    from morphbias_fast.devices import resolve_device

    out = run_dir / "unbiased" / "predictions.csv"
    if out.exists():
        return
    cfg = _synth_config(cohort_dir)
    ucohort = run_dir / "unbiased" / "cohort"
    if not (ucohort / "participants.tsv").exists():
        _say("unbiased reference: synthesising a bias-0.5 cohort")
        synthesize(ucohort, replace(cfg, bias_level=0.5), overwrite=True)
    if not (run_dir / "unbiased" / "classify" / "predictions.csv").exists():
        _say("unbiased reference: training the classifier")
        run_classify(ucohort, run_dir / "unbiased", cfg=TrainConfig(seed=seed))
    device = resolve_device("auto")
    model = load_classifier(run_dir / "unbiased" / "classify" / "model.pt", device)
    cohort = load_cohort(cohort_dir)
    prob = predict_proba(model, standardise(cohort.images), device)
    with atomic_path(out) as tmp:
        predictions_frame(cohort, prob).to_csv(tmp, index=False, float_format="%.6f")


def run_one(run_dir: Path, cohort_dir: Path | None, bias_level: float, dim: int, seed: int,
            baselines: tuple[str, ...], register_budget: float, register_steps: int | None = None) -> dict:
    from morphbias_fast.classify import TrainConfig, run_classify
    from morphbias_fast.data import load_cohort
    from morphbias_fast.data.synth import SynthConfig, synthesize
    from morphbias_fast.discover.stage import run_discover
    from morphbias_fast.mitigate.stage import default_out, run_mitigate
    from morphbias_fast.register import RegisterConfig, run_register
    from morphbias_fast.report.html import write_report
    from morphbias_fast.report.metrics import metrics_table

    run_dir.mkdir(parents=True, exist_ok=True)
    if cohort_dir is None:
        cohort_dir = run_dir / "cohort"
        if not (cohort_dir / "participants.tsv").exists():
            _say(f"synth: bias level {bias_level}, {dim}-D, seed {seed}")
            synthesize(cohort_dir, SynthConfig(bias_level=bias_level, dim=dim, seed=seed), overwrite=True)
    if "bias" not in load_cohort(cohort_dir, load_images=False).participants:
        # Checked before the long stages: the report's table is per value of this attribute.
        raise MorphbiasError(f"{cohort_dir / 'participants.tsv'} has no 'bias' column: `run` reports per group, "
                             f"so it needs the 0/1 attribute to check (run the stages one by one without it)")
    if not (run_dir / "classify" / "predictions.csv").exists():
        _say("classify: the biased classifier")
        run_classify(cohort_dir, run_dir, cfg=TrainConfig(seed=seed))
    if not (run_dir / "register" / "latents.npz").exists():
        resume = (run_dir / "register" / "train_state.pt").exists()
        _say("register: one INR for the cohort" + (" (resuming)" if resume else ""))
        cfg = RegisterConfig(seed=seed, steps=register_steps,
                             time_budget=None if register_steps else register_budget)
        run_register(cohort_dir, run_dir, cfg, resume=resume)
    if not (run_dir / "discover" / "summary.json").exists():
        _say("discover: where the classifier fails")
        run_discover(run_dir, seed=seed, cohort_dir=cohort_dir)
    for strategy in ("counterfactual", *baselines):
        if not (default_out(run_dir, strategy) / "predictions.csv").exists():
            _say(f"mitigate: {strategy}")
            run_mitigate(run_dir, strategy=strategy, seed=seed, cohort_dir=cohort_dir)
    cohort = load_cohort(cohort_dir)
    if _synth_config(cohort_dir) is not None:
        unbiased_reference(run_dir, cohort_dir, seed)
    metrics = metrics_table(run_dir, pd.Series(cohort.bias, index=cohort.ids))
    metrics.update({"seed": seed, "cohort": str(cohort_dir)})
    write_json(run_dir / "metrics.json", metrics)
    write_report(run_dir, metrics, cohort, title=f"morphbias-fast: {run_dir.name}")
    return metrics


def run_pipeline(out: Path, cohort_dir: Path | None, bias_level: float, dim: int, seeds: list[int],
                 baselines: tuple[str, ...] = (), register_budget: float = 240.0,
                 register_steps: int | None = None, seed_folders: bool = True) -> dict:
    """One run per seed in OUT/seed_K with the mean +- std in OUT (`--seeds`, even with one seed, so that
    it adds a seed to a multi-seed OUT); or, with seed_folders=False (`--seed`), the one seed's run in OUT."""
    from morphbias_fast.report.html import write_report
    from morphbias_fast.report.metrics import aggregate

    out = Path(out)
    if not seed_folders:
        if len(seeds) != 1:
            raise ValueError("a run in OUT itself takes exactly one seed")
        return run_one(out, cohort_dir, bias_level, dim, seeds[0], baselines, register_budget, register_steps)
    per_seed = []
    for s in seeds:
        _say(f"seed {s}")
        per_seed.append(run_one(out / f"seed_{s}", cohort_dir, bias_level, dim, s, baselines, register_budget,
                                register_steps))
    metrics = {**aggregate(per_seed), "seeds": seeds, "per_seed": [str(out / f"seed_{s}") for s in seeds]}
    write_json(out / "metrics.json", metrics)
    write_report(out, metrics, None, title=f"morphbias-fast: {out.name}, mean ± std over seeds {seeds}")
    return metrics
