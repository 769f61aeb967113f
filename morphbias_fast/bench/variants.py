"""Variants of the default strategy, measured on development seeds (issue 14, item 5; `morphbias-fast bench
variants`). Each variant trains in every finished seed folder as mitigate_<VARIANT> and re-makes that seed's
report, so it is a row beside the default. A variant may use only val data and discovered groups; the test
split and the true bias are read by the report alone, and the choice between variants is made on the report's
val_disc_* columns.

counterfactual_worst    the default's plan, the epoch kept by the worst discovered val group (not their mean)
counterfactual_uniform  the default as it was before the item-5 choice: generated copies weighted uniformly.
                        Copies of a biased set with the bias flipped then carry the reverse bias; the chosen
                        default weighs each copy like its original (group-balanced), as variant
                        `counterfactual_matched` did on the development seeds.
counterfactual_transport  the default's plan with each copy made by moving the case's own image to the new
                        anatomy (deform.transport) instead of warping the atlas: for cohorts whose subjects
                        do not look like the atlas (mri, real scans), where warped atlases would be told apart
                        from real images by their look.

The paper's ablation (its Table 3, issue 17), each from the run's own discovery, checkpoint by plain val
accuracy as the paper's strategy:
paper_rebalance         the originals plus the re-balanced set itself (its cases counted twice), no images made
paper_augment           the originals plus the re-balanced set and its latent-noise copies, decoded; no SMOTE
paper_smote             the originals plus the re-balanced set resampled by SMOTE to the originals' size,
                        decoded; no noise copies
(the full `paper` strategy is both.)
paper_disc_checkpoint   the full `paper` plan with our checkpoint rule: val accuracy with each discovered val
                        group counted the same, instead of plain val accuracy (which, on a biased val split,
                        favours the epoch that uses the shortcut most)

The paper's discovery with the settings it does not publish (issue 17): paper_w<W>_<INIT> runs
`discover --method paper --mixture-weight W --mixture-init INIT` into discover_<VARIANT> and the paper's
mitigation from those subgroups into mitigate_<VARIANT>, for W in {1, 10} and INIT in {kmeans, confusion}. All
four are chosen between on the same val_disc_* columns (the run's own discovered val groups), never on the
true bias or the test split.

The paper's recipe with its training latents fitted again, the network frozen, as val's are (issue 17;
register/refit.py says why): paper_refit_w<W> refits them into register_refit (once for all), runs the
paper's discovery on them at mixture weight W (1 or 10, k-means start) into discover_paper_refit_w<W> and the
paper's mitigation into mitigate_paper_refit_w<W>. paper_refit_heldout_w<W> does the same with the
classifier's train predictions held out (classify/heldout.py, 5 folds, into classify_heldout), which only
the discovery reads. A _checkpoint suffix reuses the variant's discovery with our checkpoint rule (as
paper_disc_checkpoint).
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from morphbias_fast import discover, mitigate, report
from morphbias_fast.classify import heldout_predictions
from morphbias_fast.console import say
from morphbias_fast.data import load_cohort
from morphbias_fast.register import refit_latents
from morphbias_fast.runfolder import RunFolder


def _worst_group(inp: mitigate.Inputs) -> mitigate.Plan:
    plan = mitigate.STRATEGIES[mitigate.DEFAULT].fn(inp)
    plan.val_groups = inp.subgroups(inp.va).subgroup.to_numpy()
    return plan


def _uniform(inp: mitigate.Inputs) -> mitigate.Plan:
    plan = mitigate.STRATEGIES[mitigate.DEFAULT].fn(inp)
    plan.generated_weights = None  # every copy weighs the same
    return plan


def _transport(inp: mitigate.Inputs) -> mitigate.Plan:
    plan = mitigate.STRATEGIES[mitigate.DEFAULT].fn(inp)
    if plan.latents is not None:
        plan.transport_from = np.flatnonzero(inp.subgroups(inp.tr).role.isin(["S_B", "S_NB"]).to_numpy())
    return plan


def _paper_discovered_checkpoint(inp: mitigate.Inputs) -> mitigate.Plan:
    plan = mitigate.STRATEGIES["paper"].fn(inp)
    plan.val_weight = inp.discovered_val_weight()  # each discovered val group counts the same, as ours
    return plan


def _paper_ablation(augment: bool, smote: bool):
    def plan(inp: mitigate.Inputs) -> mitigate.Plan:
        selected = inp.subgroups(inp.tr).selected.to_numpy().astype(bool)
        if not augment and not smote:
            return mitigate.Plan(1.0 + selected, None)
        try:
            Z, y = mitigate.paper_latents(inp.train_latents(), inp.cohort.labels[inp.tr], selected, len(inp.tr),
                                          inp.seed, augment=augment, smote=smote)
        except ValueError as exc:
            return inp.no_generation("paper ablation", exc, None)
        return mitigate.Plan(np.ones(len(inp.tr)), None, Z, y, examples=inp.cohort.images[inp.tr][:6],
                             caption="paper ablation: train cases (top) and generated images (bottom; not paired)")
    return plan


VARIANTS = {
    "counterfactual_worst": (_worst_group, "counterfactual; checkpoint by the worst discovered val group"),
    "counterfactual_uniform": (_uniform, "counterfactual with uniformly weighted copies (the default until item 5)"),
    "counterfactual_transport": (_transport, "counterfactual; each copy is the case's own image moved"),
    "paper_rebalance": (_paper_ablation(False, False), "the paper's ablation: re-balanced set only"),
    "paper_augment": (_paper_ablation(True, False), "the paper's ablation: + latent-noise copies, no SMOTE"),
    "paper_smote": (_paper_ablation(False, True), "the paper's ablation: + SMOTE, no noise copies"),
    "paper_disc_checkpoint": (_paper_discovered_checkpoint,
                              "the paper's mitigation, checkpoint by the discovered val groups (ours)"),
}


# name -> (mixture weight, mixture start) of the paper's discovery
DISCOVERY_VARIANTS = {f"paper_w{w}_{init}": (float(w), init) for w in (1, 10) for init in discover.MIXTURE_INITS}


# name -> (mixture weight, held-out train predictions, the mitigation strategy run from the discovery)
REFIT_VARIANTS = {f"paper_refit{held}_w{w}{rule}": (float(w), held == "_heldout", strategy)
                  for held in ("", "_heldout") for w in (1, 10)
                  for rule, strategy in (("", "paper"), ("_checkpoint", "paper_disc_checkpoint"))}
HELDOUT_FOLDS = 5


def _train_refit(r: RunFolder, variant: str, seed: int, cohort: Path) -> None:
    weight, heldout, strategy = REFIT_VARIANTS[variant]
    name = f"paper_refit{'_heldout' if heldout else ''}_w{weight:g}"
    refit_dir, heldout_dir = r.root / "register_refit", r.root / "classify_heldout"
    found = RunFolder(r.root, discover_dir=r.root / f"discover_{name}", register_dir=refit_dir)
    if not found.register.latents.exists():
        say(f"{r.root}: training latents refit with the network frozen")
        refit_latents(r.register, load_cohort(cohort), found.register)
    if not found.discover.summary.exists():
        reads = found
        if heldout:
            reads = RunFolder(r.root, discover_dir=found.discover.path, register_dir=refit_dir,
                              classify_dir=heldout_dir)
            if not reads.classify.predictions.exists():
                say(f"{r.root}: held-out train predictions ({HELDOUT_FOLDS} folds)")
                heldout_predictions(r.classify, cohort, reads.classify, HELDOUT_FOLDS, seed)
        discover.run(reads, discover.Config(method="paper", out=found.discover.path, seed=seed, cohort=cohort,
                                            mixture_weight=weight))
    with _registered(strategy):
        mitigate.run(found, mitigate.Config(strategy=strategy, seed=seed, cohort=cohort, out=r.mitigate(variant).path))


def _train(r: RunFolder, variant: str, seed: int, cohort: Path) -> None:
    if variant in REFIT_VARIANTS:
        _train_refit(r, variant, seed, cohort)
    elif variant in DISCOVERY_VARIANTS:
        weight, init = DISCOVERY_VARIANTS[variant]
        found = RunFolder(r.root, discover_dir=r.root / f"discover_{variant}")
        if not found.discover.summary.exists():
            discover.run(r, discover.Config(method="paper", out=found.discover.path, seed=seed, cohort=cohort,
                                            mixture_weight=weight, mixture_init=init))
        mitigate.run(found, mitigate.Config(strategy="paper", seed=seed, cohort=cohort, out=r.mitigate(variant).path))
    else:
        mitigate.run(r, mitigate.Config(strategy=variant, seed=seed, cohort=cohort))


def recorded_seed(r: RunFolder) -> int:
    """The seed a single-run folder (`run --seed K`, no seed_K folders) was made with, as its report records
    it; a variant must train with its run's seed, or its row differs from the others by more than the variant."""
    return int(json.loads(r.metrics.read_text()).get("seed", 0)) if r.metrics.exists() else 0


@contextlib.contextmanager
def _registered(name: str):
    """While inside, a VARIANTS entry `name` is a mitigation strategy (other names: nothing to do)."""
    if name not in VARIANTS:
        yield
        return
    fn, help_text = VARIANTS[name]
    mitigate.strategy(name, help_text)(fn)
    try:
        yield
    finally:
        del mitigate.STRATEGIES[name]


def run(paths: list[Path], variant: str) -> list[dict]:
    """For every finished seed under `paths`: the variant trained (unless there) and the report re-made."""
    out = []
    with _registered(variant):
        for path in paths:
            for seed, r in RunFolder(path).seeds() or [(None, RunFolder(path))]:
                if not r.done("unbiased"):
                    continue
                cohort = r.resolve_cohort()
                seed = seed if seed is not None else recorded_seed(r)
                if not r.done("mitigate", variant):
                    say(f"{r.root}: {variant}")
                    _train(r, variant, seed, cohort)
                out.append(report.run(r, report.Config(cohort, seed=seed)).metrics)
    return out
