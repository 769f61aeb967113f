"""Mitigation benchmark: the paper's table and the gap closed for every model found in finished run folders
(`morphbias-fast bench mitigate`). A run folder is one seed's run (what `morphbias-fast run ... --baselines
paper,oracle,groupbal,jtt` leaves), or a `--seeds` folder: then every finished seed is tabled and the mean
+- std over seeds (ddof 1) follows, with the gap closed of the seed means."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from morphbias_fast.data import load_cohort
from morphbias_fast.report import COLUMNS, aggregate, metrics_table
from morphbias_fast.runfolder import RunFolder

EXTRA_COLUMNS = ("gap_closed", "acc_B_drop", "gap_closed_of_means")


def one_run(run: RunFolder) -> dict:
    cohort = load_cohort(run.resolve_cohort(), load_images=False)
    return metrics_table(run, pd.Series(cohort.bias, index=cohort.ids))


def format_table(title: str, rows: list[dict]) -> str:
    def cell(r, k, digits):
        v = r.get(k)
        if v is None:
            return ""
        sd = r.get(f"{k}_std")
        return f"{v:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")

    lines = [f"\n{title}\n| model | " + " | ".join(COLUMNS) + " | gap closed | acc B drop | gap closed of means |",
             "|---" * (len(COLUMNS) + 4) + "|"]
    for r in rows:
        cells = [cell(r, k, 3) or "-" for k in COLUMNS] + [cell(r, k, 2) for k in EXTRA_COLUMNS]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def run(paths: list[Path], echo=print) -> dict:
    out = {}
    for path in paths:
        root = RunFolder(path)
        seeds = root.seeds()
        if not seeds:
            out[str(path)] = one_run(root)
            echo(format_table(str(path), out[str(path)]["rows"]))
            continue
        per_seed = {}
        for _, r in seeds:
            if r.done("unbiased"):  # a finished seed
                per_seed[r.root.name] = one_run(r)
                echo(format_table(str(r.root), per_seed[r.root.name]["rows"]))
        agg = aggregate(list(per_seed.values()))
        out[str(path)] = {"seeds": list(per_seed), "per_seed": per_seed, "mean_std": agg}
        echo(format_table(f"{path}: mean ± std over {', '.join(per_seed)}", agg["rows"]))
    return out
