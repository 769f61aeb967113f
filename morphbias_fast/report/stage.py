"""The report stage: RUN/metrics.json (the paper's table on the test split, the gap closed) and
RUN/report.html; and the same over seeds for a `--seeds` folder (mean +- std, gap closed of the seed means)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from morphbias_fast.data import Cohort, load_cohort
from morphbias_fast.files import write_json
from morphbias_fast.report.metrics import aggregate, metrics_table
from morphbias_fast.report.page import write_report
from morphbias_fast.report.twins import twin_probabilities
from morphbias_fast.runfolder import RunFolder


@dataclass(frozen=True)
class Config:
    cohort: Path       # the run's cohort; needs the bias column
    seed: int = 0


@dataclass
class Result:
    metrics: dict
    report: Path

    def summary(self) -> str:
        def cell(r, k, fmt="{:.2f}"):
            return fmt.format(r[k]) if r.get(k) is not None else "-"

        lines = [f"{'model':<12}{'WGA':>6}{'WGA gap closed':>16}{'shortcut':>10}{'cf sens.':>10}{'recall NB':>11}"
                 f"{'acc B':>7}{'recall-NB gap closed (unbounded)':>34}"]
        for r in self.metrics["rows"]:
            gap = cell(r, "gap_closed") + (f" (of means {r['gap_closed_of_means']:.2f})"
                                           if r.get("gap_closed_of_means") is not None else "")
            wgap = cell(r, "wga_gap_closed") + (f" ({r['wga_gap_closed_of_means']:.2f})"
                                                if r.get("wga_gap_closed_of_means") is not None else "")
            lines.append(f"{r['model']:<12}{cell(r, 'wga'):>6}{wgap:>16}{cell(r, 'shortcut_effect', '{:+.2f}'):>10}"
                         f"{cell(r, 'cf_sensitivity', '{:+.2f}'):>10}{cell(r, 'recall_NB'):>11}{cell(r, 'acc_B'):>7}"
                         f"{gap:>34}")
        flagged = [f"warning: {stage}: {w}" for stage, ws in self.warnings.items() for w in ws]
        return "\n".join(lines + flagged + [f"report: {self.report}"])

    @property
    def warnings(self) -> dict[str, list[str]]:
        """{stage: findings}; for a seed aggregate, {seed_K/stage: findings}."""
        return self.metrics.get("warnings", {})


def table(run: RunFolder, cohort_dir: Path) -> tuple[dict, Cohort]:
    """(the run's table of models on the test split, twins included on synthetic cohorts; its cohort, read
    without images: the table and figures need the participants only)."""
    cohort = load_cohort(cohort_dir, load_images=False)
    twins = twin_probabilities(run, cohort_dir, cohort.ids[cohort.index("test")])
    return metrics_table(run, pd.Series(cohort.bias, index=cohort.ids), twins), cohort


def stage_warnings(run: RunFolder) -> dict[str, list[str]]:
    """The quality gates' findings (gates.py) each stage recorded, by stage; stages without any left out."""
    out = {}
    for stage, path in run.stage_records().items():
        found = json.loads(path.read_text()).get("warnings") or []
        if found:
            out[stage] = found
    return out


def run(run: RunFolder, cfg: Config) -> Result:
    metrics, cohort = table(run, cfg.cohort)
    metrics.update({"seed": cfg.seed, "cohort": str(cfg.cohort), "warnings": stage_warnings(run)})
    write_json(run.metrics, metrics)
    write_report(run, metrics, cohort, title=f"morphbias-fast: {run.root.name}")
    return Result(metrics, run.report)


def run_seeds(root: RunFolder, per_seed: list[dict], seeds: list[int]) -> Result:
    """The seed aggregate of runs root.seed(s) whose metrics are `per_seed`."""
    metrics = {**aggregate(per_seed), "seeds": seeds, "per_seed": [str(root.seed(s).root) for s in seeds],
               "warnings": {f"seed_{s}/{stage}": w for s, m in zip(seeds, per_seed)
                            for stage, w in m.get("warnings", {}).items()}}
    write_json(root.metrics, metrics)
    write_report(root, metrics, None, title=f"morphbias-fast: {root.root.name}, mean ± std over seeds {seeds}")
    return Result(metrics, root.report)
