"""Mitigation benchmark: the paper's table and the gap closed for every model found in finished run folders.

    python bench/mitigate.py RUN_DIR [RUN_DIR ...] --json bench/results/mitigate.json

A RUN_DIR is either one seed's folder (cohort/ with the bias column, classify/, mitigate*/,
unbiased/predictions.csv: what `morphbias-fast run ... --baselines paper,oracle,groupbal,jtt` leaves), or the
folder of `morphbias-fast run --seeds ...` (seed_*/ folders): then every seed is tabled and the mean +- std
over seeds (ddof 1) follows, with the gap closed of the seed means."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from morphbias_fast.data import load_cohort
from morphbias_fast.report.metrics import COLUMNS, aggregate, metrics_table


def one_run(run: Path) -> dict:
    cohort = load_cohort(run / "cohort", load_images=False)
    return metrics_table(run, pd.Series(cohort.bias, index=cohort.ids))


def print_table(title: str, rows: list[dict]) -> None:
    extra_cols = ("gap_closed", "acc_B_drop", "gap_closed_of_means")

    def cell(r, k, digits):
        v = r.get(k)
        if v is None:
            return ""
        sd = r.get(f"{k}_std")
        return f"{v:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

    print(f"\n{title}\n| model | " + " | ".join(COLUMNS) + " | gap closed | acc B drop | gap closed of means |")
    print("|---" * (len(COLUMNS) + 4) + "|")
    for r in rows:
        cells = [cell(r, k, 3) or "-" for k in COLUMNS] + [cell(r, k, 2) for k in extra_cols]
        print(f"| {r['model']} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    out = {}
    for run in args.runs:
        seeds = sorted(run.glob("seed_*"), key=lambda p: int(p.name.removeprefix("seed_")))
        if not seeds:
            out[str(run)] = one_run(run)
            print_table(str(run), out[str(run)]["rows"])
            continue
        per_seed = {}
        for s in seeds:
            if (s / "unbiased" / "predictions.csv").exists():  # a finished seed
                per_seed[s.name] = one_run(s)
                print_table(str(s), per_seed[s.name]["rows"])
        agg = aggregate(list(per_seed.values()))
        out[str(run)] = {"seeds": list(per_seed), "per_seed": per_seed, "mean_std": agg}
        print_table(f"{run}: mean ± std over {', '.join(per_seed)}", agg["rows"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
