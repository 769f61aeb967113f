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
"""
from __future__ import annotations

from pathlib import Path


import numpy as np

from morphbias_fast import mitigate, report
from morphbias_fast.console import say
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


VARIANTS = {
    "counterfactual_worst": (_worst_group, "counterfactual; checkpoint by the worst discovered val group"),
    "counterfactual_uniform": (_uniform, "counterfactual with uniformly weighted copies (the default until item 5)"),
    "counterfactual_transport": (_transport, "counterfactual; each copy is the case's own image moved"),
}


def run(paths: list[Path], variant: str) -> list[dict]:
    """For every finished seed under `paths`: the variant trained (unless there) and the report re-made."""
    fn, help_text = VARIANTS[variant]
    mitigate.strategy(variant, help_text)(fn)
    out = []
    try:
        for path in paths:
            for seed, r in RunFolder(path).seeds() or [(None, RunFolder(path))]:
                if not r.done("unbiased"):
                    continue
                cohort = r.resolve_cohort()
                seed = seed if seed is not None else 0
                if not r.done("mitigate", variant):
                    say(f"{r.root}: {variant}")
                    mitigate.run(r, mitigate.Config(strategy=variant, seed=seed, cohort=cohort))
                out.append(report.run(r, report.Config(cohort, seed=seed)).metrics)
    finally:
        del mitigate.STRATEGIES[variant]
    return out
