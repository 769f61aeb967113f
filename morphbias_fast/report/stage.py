"""The report stage: RUN/metrics.json (the paper's table on the test split, the gap closed) and
RUN/report.html; and the same over seeds for a `--seeds` folder (mean +- std, gap closed of the seed means)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from morphbias_fast.data import load_cohort
from morphbias_fast.files import write_json
from morphbias_fast.report.metrics import aggregate, metrics_table
from morphbias_fast.report.page import write_report
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
        lines = []
        for r in self.metrics["rows"]:
            gap = r.get("gap_closed")
            lines.append(f"{r['model']:<12} recall NB {r['recall_NB']:.2f}  recall B {r['recall_B']:.2f}  "
                         f"acc B {r['acc_B']:.2f}  acc NB {r['acc_NB']:.2f}"
                         + (f"  gap closed {gap:.2f}" if gap is not None else "")
                         + (f" (of the seed means: {r['gap_closed_of_means']:.2f})"
                            if r.get("gap_closed_of_means") is not None else ""))
        return "\n".join(lines + [f"report: {self.report}"])


def run(run: RunFolder, cfg: Config) -> Result:
    cohort = load_cohort(cfg.cohort, load_images=False)  # the table and figures need the participants only
    metrics = metrics_table(run, pd.Series(cohort.bias, index=cohort.ids))
    metrics.update({"seed": cfg.seed, "cohort": str(cfg.cohort)})
    write_json(run.metrics, metrics)
    write_report(run, metrics, cohort, title=f"morphbias-fast: {run.root.name}")
    return Result(metrics, run.report)


def run_seeds(root: RunFolder, per_seed: list[dict], seeds: list[int]) -> Result:
    """The seed aggregate of runs root.seed(s) whose metrics are `per_seed`."""
    metrics = {**aggregate(per_seed), "seeds": seeds, "per_seed": [str(root.seed(s).root) for s in seeds]}
    write_json(root.metrics, metrics)
    write_report(root, metrics, None, title=f"morphbias-fast: {root.root.name}, mean ± std over seeds {seeds}")
    return Result(metrics, root.report)
