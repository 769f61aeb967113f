"""Detection benchmark: precision / recall / AMI of the re-balanced set on finished runs, for every feature
kind and method over several discovery seeds, and the seconds discovery takes (`morphbias-fast bench
discover`), with the held-out split check (gates.split_errors: its p and whether it fired). Each run needs
its synthetic cohort (the truth), the classify and the register stage."""
from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from morphbias_fast import discover, gates
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.runfolder import RunFolder


def _row(run: RunFolder, feats: str, method: str, seed: int, split: str, s: dict, v: dict, wall: float) -> dict:
    cfg = read_synth_config(run.cohort_dir)
    return {"run": str(run.root), "bias_level": cfg.bias_level if cfg else None, "features": feats,
            "method": method, "seed": seed, "split": split, "precision": v.get("precision"),
            "recall": v.get("recall"), "ami": v.get("ami"), "selected": v["selected"], "n": v["n"],
            "discover_seconds": v["seconds"], "feature_seconds": v["feature_seconds"], "wall_seconds": wall,
            "backend": s["backend"], "split_check_p": (s.get("split_check") or {}).get("p"),
            "split_check_fired": bool(gates.split_check(s.get("split_check")))}


def format_row(r: dict) -> str:
    precision = r["precision"] if r["precision"] is None else round(r["precision"], 3)
    return (f"{Path(r['run']).name:12s} {r['features']:9s} {r['method']:8s} seed {r['seed']} {r['split']:5s} "
            f"precision {precision} recall {r['recall']:.3f} AMI {r['ami']:.3f} selected {r['selected']:4d} "
            f"[{r['discover_seconds']:.1f} s + features {r['feature_seconds']:.1f} s]"
            + (" SPLIT CHECK FIRED" if r["split_check_fired"] else ""))


def run(runs: list[Path], seeds: int, features: list[str], methods: list[str], echo=print) -> dict:
    """Discovery on every run x feature kind x method x seed, written to a temporary folder (the runs'
    own discover folders are left alone)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in runs:
            r = RunFolder(path)
            for feats in features:
                for method in methods:
                    for seed in range(seeds):
                        t0 = time.perf_counter()
                        cfg = discover.Config(features=feats, method=method, out=Path(tmp) / r.root.name, seed=seed,
                                              cohort=r.cohort_dir)
                        s = discover.run(r, cfg).summary_json
                        wall = time.perf_counter() - t0
                        for split, v in s["splits"].items():
                            rows.append(_row(r, feats, method, seed, split, s, v, wall))
                            echo(format_row(rows[-1]))
    return {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "rows": rows}
