"""Would a decision threshold chosen on val repair a mitigation that over-calls one label (issue 14, item 5)?
For each model of finished run folders, the threshold in [0.05, 0.95] (step 0.005) that maximises the worst
accuracy over the discovered val groups (discovery's S_B / S_NB side x label: no true bias label, no test
data), and the test WGA over the true bias x disease cells at 0.5 and at that threshold (evaluation only).

    python bench/diagnostics/val_threshold.py RUN_DIR [RUN_DIR ...] --json OUT.json"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from morphbias_fast.evaluation import cell_metrics
from morphbias_fast.files import write_json
from morphbias_fast.report.metrics import val_discovered
from morphbias_fast.runfolder import RunFolder

GRID = np.round(np.arange(0.05, 0.95 + 1e-9, 0.005), 3)


def at(preds: pd.DataFrame, t: float) -> pd.DataFrame:
    """The predictions with the label called at prob >= t."""
    return preds.assign(y_pred=(preds.prob >= t).astype(int))


def one_run(path: Path) -> dict:
    run = RunFolder(path)
    truth = pd.read_csv(run.resolve_cohort() / "participants.tsv", sep="\t").set_index("participant_id")
    roles = run.discover.read_subgroups()["role"]
    out = {}
    for model, f in run.model_predictions().items():
        preds = pd.read_csv(f)
        scores = [val_discovered(at(preds, t), roles)["val_disc_wga"] for t in GRID]
        t = float(GRID[int(np.argmax(scores))])  # the first (lowest) threshold of the best ones
        test = preds[preds.split == "test"]
        bias = truth.loc[test.participant_id, "bias"].to_numpy()

        def test_wga(threshold: float) -> float:
            return cell_metrics(test.y_true, at(test, threshold).y_pred, bias, n_boot=1)["wga"]

        out[model] = {"threshold": t, "val_worst_discovered": max(scores),
                      "val_worst_discovered_at_0.5": val_discovered(at(preds, 0.5), roles)["val_disc_wga"],
                      "test_wga_at_0.5": test_wga(0.5), "test_wga_at_threshold": test_wga(t)}
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
    write_json(args.json, res)


if __name__ == "__main__":
    main()
