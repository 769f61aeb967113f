"""Detection benchmark: precision / recall / AMI of the re-balanced set on finished runs, for every feature
kind and method, over several seeds; and the seconds discovery takes. Usage:

    python bench/discover.py RUN_DIR [RUN_DIR ...] --seeds 5 --json bench/results/discover.json

Each RUN_DIR needs cohort/ (a synthetic cohort: the truth), classify/ and register/."""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from morphbias_fast.discover.stage import run_discover


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--features", default="inr,pca,embedding")
    ap.add_argument("--methods", default="shortcut,paper")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for run in args.runs:
        bias_level = json.loads((run / "cohort" / "dataset_description.json").read_text()).get("Name", "")
        for feats in args.features.split(","):
            for method in args.methods.split(","):
                for seed in range(args.seeds):
                    t0 = time.perf_counter()
                    s = run_discover(run, features=feats, method=method, backend="auto",
                                     out_dir=Path("/tmp/bench_discover") / run.name, seed=seed,
                                     cohort_dir=run / "cohort")
                    wall = time.perf_counter() - t0
                    for split, v in s["splits"].items():
                        rows.append({"run": str(run), "cohort": bias_level, "features": feats, "method": method,
                                     "seed": seed, "split": split, "precision": v.get("precision"),
                                     "recall": v.get("recall"), "ami": v.get("ami"), "selected": v["selected"],
                                     "n": v["n"], "discover_seconds": v["seconds"],
                                     "feature_seconds": v["feature_seconds"], "wall_seconds": wall,
                                     "backend": s["backend"]})
                        r = rows[-1]
                        print(f"{run.name:12s} {feats:9s} {method:8s} seed {seed} {split:5s} "
                              f"precision {r['precision'] if r['precision'] is None else round(r['precision'], 3)} "
                              f"recall {r['recall']:.3f} AMI {r['ami']:.3f} selected {r['selected']:4d} "
                              f"[{r['discover_seconds']:.1f} s + features {r['feature_seconds']:.1f} s]", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": f"{platform.processor() or platform.machine()}, "
                                                    f"{__import__('os').cpu_count()} cores", "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
