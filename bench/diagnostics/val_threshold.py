"""Would a decision threshold chosen on val repair a mitigation that over-calls one label (issue 14, item 5)?
For each model of finished run folders, the threshold in [0.05, 0.95] (step 0.005) that maximises the worst
accuracy over the discovered val groups (discovery's S_B / S_NB side x label: no true bias label, no test
data), and the test WGA over the true bias x disease cells at 0.5 and at that threshold (evaluation only).

    python bench/diagnostics/val_threshold.py RUN_DIR [RUN_DIR ...] --json OUT.json"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

MODELS = ("classify", "mitigate", "mitigate_oracle", "mitigate_groupbal", "mitigate_paper", "mitigate_jtt")
GRID = np.round(np.arange(0.05, 0.95 + 1e-9, 0.005), 3)


def worst_cell(prob: pd.Series, y: pd.Series, key: pd.Series, t: float) -> float:
    """The lowest accuracy over the groups of `key` when predicting 1 at prob >= t."""
    right = (prob >= t).astype(int) == y
    return float(right.groupby(key).mean().min())


def one_run(run: Path) -> dict:
    truth = pd.read_csv(run / "cohort" / "participants.tsv", sep="\t").set_index("participant_id")
    roles = pd.read_csv(run / "discover" / "subgroups.csv").set_index("participant_id")["role"]
    out = {}
    for m in MODELS:
        f = run / m / "predictions.csv"
        if not f.exists():
            continue
        p = pd.read_csv(f).set_index("participant_id")
        val = p[p.split == "val"].join(roles)
        val = val[val.role.isin(["S_B", "S_NB"])]
        vkey = val.role + "_" + val.y_true.astype(str)
        scores = [worst_cell(val.prob, val.y_true, vkey, t) for t in GRID]
        t = float(GRID[int(np.argmax(scores))])  # the first (lowest) threshold of the best ones
        test = p[p.split == "test"].join(truth["bias"])
        tkey = test.bias.astype(str) + "_" + test.y_true.astype(str)
        out[m] = {"threshold": t, "val_worst_discovered": max(scores),
                  "val_worst_discovered_at_0.5": worst_cell(val.prob, val.y_true, vkey, 0.5),
                  "test_wga_at_0.5": worst_cell(test.prob, test.y_true, tkey, 0.5),
                  "test_wga_at_threshold": worst_cell(test.prob, test.y_true, tkey, t)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    res = {str(r): one_run(r) for r in args.runs}
    for r, models in res.items():
        for m, v in models.items():
            print(f"{r} {m}: t {v['threshold']:.3f}, test WGA {v['test_wga_at_0.5']:.3f} -> "
                  f"{v['test_wga_at_threshold']:.3f}")
    tmp = args.json.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1, allow_nan=False))
    tmp.replace(args.json)


if __name__ == "__main__":
    main()
