"""Device choice shared by every stage (`--device auto|cpu|cuda`)."""
from __future__ import annotations

import torch

from morphbias_fast.errors import MorphbiasError


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise MorphbiasError("--device cuda was asked for, but torch sees no GPU")
    if device not in ("cpu", "cuda"):
        raise MorphbiasError(f"--device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)
