"""Checkpoint selection for the default strategy (issue 14, item 5), measured on development seeds: the
counterfactual plan unchanged, but the epoch kept by the worst discovered val group instead of the mean over
them (`morphbias-fast bench selection`). It trains in each finished seed folder as mitigate_<VARIANT> and
re-makes that seed's report, so the variant is a row beside the default. Uses only val data and discovered
groups; the test split and the true bias are read by the report alone."""
from __future__ import annotations

from pathlib import Path

from morphbias_fast import mitigate, report
from morphbias_fast.console import say
from morphbias_fast.runfolder import RunFolder

VARIANT = "counterfactual_worst"


def _worst_group_plan(inp: mitigate.Inputs) -> mitigate.Plan:
    plan = mitigate.STRATEGIES[mitigate.DEFAULT].fn(inp)
    plan.val_groups = inp.subgroups(inp.va).subgroup.to_numpy()
    return plan


def run(paths: list[Path]) -> list[dict]:
    """For every finished seed under `paths`: the variant trained (unless there) and the report re-made."""
    mitigate.strategy(VARIANT, "counterfactual; checkpoint by the worst discovered val group")(_worst_group_plan)
    out = []
    try:
        for path in paths:
            for seed, r in RunFolder(path).seeds() or [(None, RunFolder(path))]:
                if not r.done("unbiased"):
                    continue
                cohort = r.resolve_cohort()
                seed = seed if seed is not None else 0
                if not r.done("mitigate", VARIANT):
                    say(f"{r.root}: {VARIANT}")
                    mitigate.run(r, mitigate.Config(strategy=VARIANT, seed=seed, cohort=cohort))
                out.append(report.run(r, report.Config(cohort, seed=seed)).metrics)
    finally:
        del mitigate.STRATEGIES[VARIANT]
    return out
