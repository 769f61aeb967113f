"""Are two run folders the same result? (`morphbias-fast bench same-run A B`): the evidence that a change of
code that should not change behaviour (a refactor) did not. metrics.json is compared number by number and
string by string (with each folder's own path written as RUN), and every stage's predictions, the latents and
the subgroups file for exact equality of their contents."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from morphbias_fast.runfolder import RunFolder


def _norm(v, root: str):
    if isinstance(v, dict):
        return {k: _norm(x, root) for k, x in v.items()}
    if isinstance(v, list):
        return [_norm(x, root) for x in v]
    if isinstance(v, str):
        return v.replace(root, "RUN")
    return v


def _diff(a, b, where: str, out: list, counts: dict) -> None:
    """Every place where a and b differ; counts the numbers compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'B' if k not in a else 'A'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", out, counts)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out, counts)
    else:
        if isinstance(a, (int, float)) and not isinstance(a, bool):
            counts["numbers"] += 1
            if isinstance(b, float) and isinstance(a, float) and math.isnan(a) and math.isnan(b):
                return
        if a != b:
            out.append(f"{where}: {a!r} != {b!r}")


def _same_frame(pa, pb) -> bool | None:
    if not pa.exists() and not pb.exists():
        return None
    if not (pa.exists() and pb.exists()):
        return False
    a, b = (pd.read_csv(p, dtype={"participant_id": str}) for p in (pa, pb))
    return a.shape == b.shape and a.equals(b)


def compare(a: RunFolder, b: RunFolder) -> dict:
    ma = _norm(json.loads(a.metrics.read_text()), str(a.root))
    mb = _norm(json.loads(b.metrics.read_text()), str(b.root))
    diffs, counts = [], {"numbers": 0}
    _diff(ma, mb, "metrics", diffs, counts)
    files = {f"predictions of {name}": _same_frame(p, b.root / p.relative_to(a.root))
             for name, p in a.model_predictions().items()}
    files["discovered subgroups"] = _same_frame(a.discover.subgroups, b.discover.subgroups)
    za, zb = np.load(a.register.latents), np.load(b.register.latents)
    files["registration latents"] = bool((za["participant_id"] == zb["participant_id"]).all()
                                         and np.array_equal(za["z"], zb["z"]))
    same = not diffs and all(v is not False for v in files.values())
    return {"a": str(a.root), "b": str(b.root), "same": same, "numbers_compared": counts["numbers"],
            "metrics_differences": diffs, "files_equal": files}
