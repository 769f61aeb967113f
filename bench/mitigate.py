"""Mitigation benchmark: the paper's table and the gap closed for every model found in finished run folders.

    python bench/mitigate.py RUN_DIR [RUN_DIR ...] --json bench/results/mitigate.json

Each RUN_DIR needs cohort/ (with the bias column), classify/, mitigate*/ and unbiased/predictions.csv
(what `morphbias-fast run ... --baselines paper,oracle,groupbal,jtt` leaves)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from morphbias_fast.data import load_cohort
from morphbias_fast.report.metrics import COLUMNS, metrics_table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {}
    for run in args.runs:
        cohort = load_cohort(run / "cohort", load_images=False)
        m = metrics_table(run, pd.Series(cohort.bias, index=cohort.ids))
        out[str(run)] = m
        print(f"\n{run}\n| model | " + " | ".join(COLUMNS) + " | gap closed | acc B drop |")
        print("|---" * (len(COLUMNS) + 3) + "|")
        for r in m["rows"]:
            cells = [f"{r[k]:.3f}" if r[k] is not None else "-" for k in COLUMNS]
            extra = [f"{r[k]:.2f}" if r.get(k) is not None else "" for k in ("gap_closed", "acc_B_drop")]
            print(f"| {r['model']} | " + " | ".join(cells + extra) + " |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
