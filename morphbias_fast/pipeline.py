"""`morphbias-fast run`: the stages in order, each skipped when the run folder says it is done, and the seed
loop. With a synthetic cohort the unbiased reference is trained too."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from morphbias_fast import classify, discover, mitigate, register, report, unbiased
from morphbias_fast.console import say
from morphbias_fast.data import cohort_exists, load_cohort
from morphbias_fast.data.synth import SynthConfig, read_synth_config, synthesize
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.runfolder import RunFolder


# The method's three parts, each ours or the paper's: --recipe sets all three, --arch/--discovery/--mitigation
# one each (the factorial table). Discovery and mitigation are named by their stage's method and strategy.
RECIPES = {"ours": ("hashgrid", "ours", "ours"), "paper": ("siren", "paper", "paper")}
DISCOVERY = {"ours": "shortcut", "paper": "paper"}
MITIGATION = {"ours": mitigate.DEFAULT, "paper": "paper"}


def recipe_parts(recipe: str, arch: str | None = None, discovery: str | None = None,
                 mitigation: str | None = None) -> dict:
    """Settings' arch, discovery and mitigation for a recipe, with any part overridden (ours | paper)."""
    base = RECIPES[recipe]
    return {"arch": arch or base[0], "discovery": DISCOVERY[discovery or base[1]],
            "mitigation": MITIGATION[mitigation or base[2]]}


@dataclass(frozen=True)
class Settings:
    """What `run` was asked for; every stage's Config is built from these."""

    cohort: Path | None = None
    bias_level: float = 0.9
    dim: int = 2
    appearance: str = "template"
    shortcut: str = "morphology"
    subject_effect: str = "independent"
    n_train: int = 1000
    n_val: int = 500
    n_test: int = 500
    baselines: tuple[str, ...] = ()
    time_budget: float = 240.0        # registration
    steps: int | None = None          # registration training steps instead of the budget
    epochs: int = 30                  # every classifier
    device: str = "auto"
    atlas: Path | None = None         # registration atlas instead of the cohort's
    # The method's three parts, each ours or the paper's (`run --recipe`, --arch, --discovery, --mitigation):
    arch: str = "hashgrid"            # representation: hashgrid | siren
    discovery: str = "shortcut"       # discover.METHODS: shortcut (ours) | paper
    mitigation: str = mitigate.DEFAULT  # the strategy of the run's "mitigated" row: counterfactual | paper | ...


@dataclass(frozen=True)
class Step:
    name: str          # the stage (RunFolder.done's key)
    message: str
    call: Callable[[RunFolder, Path, int], object]
    strategy: str = mitigate.DEFAULT


def steps(s: Settings, synthetic: bool) -> list[Step]:
    """The stages of one run, in order; each call gets (run, cohort, seed)."""
    # The representation is trained as its authors do: siren with the paper's recipe, hashgrid with ours.
    inr = {"steps": s.steps, "time_budget": None if s.steps else s.time_budget, "device": s.device}
    inr_recipe = "paper" if s.arch == "siren" else "ours"
    dev = {"epochs": s.epochs, "device": s.device}
    out = [
        Step("classify", "classify: the biased classifier",
             lambda run, c, seed: classify.run(run, classify.Config(c, train=classify.TrainConfig(seed=seed, **dev)))),
        Step("register", "register: one INR for the cohort",
             lambda run, c, seed: register.run(run, register.Config(
                 c, register.INRConfig.for_recipe(inr_recipe, seed=seed, **inr),
                 resume=run.register.checkpoint().exists(), atlas=s.atlas))),
        Step("discover", "discover: where the classifier fails",
             lambda run, c, seed: discover.run(run, discover.Config(seed=seed, cohort=c, device=s.device,
                                                                    method=s.discovery))),
        # The run's own mitigation writes RUN/mitigate (the report's "mitigated" row) whatever its strategy.
        Step("mitigate", f"mitigate: {s.mitigation}", lambda run, c, seed: mitigate.run(
            run, mitigate.Config(strategy=s.mitigation, seed=seed, cohort=c, out=run.mitigate().path, **dev))),
    ]
    for name in s.baselines:
        out.append(Step("mitigate", f"mitigate: {name}", lambda run, c, seed, name=name: mitigate.run(
            run, mitigate.Config(strategy=name, seed=seed, cohort=c, **dev)), strategy=name))
    if synthetic:
        out.append(Step("unbiased", "unbiased reference",
                        lambda run, c, seed: unbiased.run(run, unbiased.Config(c, seed=seed, **dev))))
    return out


def _cohort(run: RunFolder, s: Settings, seed: int) -> Path:
    """The given cohort, or the run's synthetic one (made now unless it is there); it must have the bias."""
    cohort = s.cohort
    if cohort is None:
        cohort = run.cohort_dir
        if not cohort_exists(cohort):
            say(f"synth: bias level {s.bias_level}, {s.dim}-D, {s.appearance}, seed {seed}")
            synthesize(cohort, SynthConfig(bias_level=s.bias_level, dim=s.dim, seed=seed, appearance=s.appearance,
                                           shortcut=s.shortcut, subject_effect=s.subject_effect, n_train=s.n_train,
                                           n_val=s.n_val, n_test=s.n_test), overwrite=True)
    if "bias" not in load_cohort(cohort, load_images=False).participants:
        # Checked before the long stages: the report's table is per value of this attribute.
        raise MorphbiasError(f"{cohort / 'participants.tsv'} has no 'bias' column: `run` reports per group, "
                             f"so it needs the 0/1 attribute to check (run the stages one by one without it)")
    return cohort


def run_one(run_dir: Path, s: Settings, seed: int) -> report.Result:
    """One seed's run in `run_dir`: every stage not yet done, then the report."""
    run = RunFolder(run_dir)
    run.root.mkdir(parents=True, exist_ok=True)
    cohort = _cohort(run, s, seed)
    for step in steps(s, synthetic=read_synth_config(cohort) is not None):
        if not run.done(step.name, step.strategy):
            resuming = step.name == "register" and run.register.checkpoint().exists()
            say(step.message + (" (resuming)" if resuming else ""))
            step.call(run, cohort, seed)
    return report.run(run, report.Config(cohort, seed=seed))


def run_pipeline(out: Path, s: Settings, seeds: list[int], seed_folders: bool = True) -> report.Result:
    """One run per seed in OUT/seed_K with the mean +- std in OUT (`--seeds`, even with one seed, so that
    it adds a seed to a multi-seed OUT); or, with seed_folders=False (`--seed`), the one seed's run in OUT."""
    root = RunFolder(out)
    if not seed_folders:
        if len(seeds) != 1:
            raise ValueError("a run in OUT itself takes exactly one seed")
        return run_one(root.root, s, seeds[0])
    per_seed = []
    for seed in seeds:
        say(f"seed {seed}")
        per_seed.append(run_one(root.seed(seed).root, s, seed).metrics)
    return report.run_seeds(root, per_seed, seeds)
