"""A copy of a finished run with other latents: what the diagnostics that swap the representation write, so that
`bench probe` and `bench discover` (features inr) measure the new latents against the same classifier."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np


def copy_with_latents(src: Path, out: Path, latents: np.lib.npyio.NpzFile, z: np.ndarray,
                      metrics: dict | None = None) -> None:
    """OUT gets links to SRC's cohort and classify stages and a register stage with SRC's files (model, atlas,
    metrics.json, with `metrics` merged in) and latents.npz holding `z` for `latents`' participants and splits."""
    out.mkdir(parents=True, exist_ok=True)
    for stage in ("cohort", "classify"):
        if not (out / stage).exists() and (src / stage).exists():
            (out / stage).symlink_to((src / stage).resolve())
    reg = out / "register"
    reg.mkdir(exist_ok=True)
    for f in (src / "register").iterdir():
        if f.is_file() and f.name != "latents.npz":
            shutil.copy2(f, reg / f.name)
    np.savez(reg / "latents.npz", participant_id=latents["participant_id"], split=latents["split"],
             z=z.astype(np.float32))
    if metrics:
        merged = {**json.loads((reg / "metrics.json").read_text()), **metrics}
        (reg / "metrics.json").write_text(json.dumps(merged, indent=1))
