"""Configuration of the hash-grid encoding (names and defaults as tiny-cuda-nn's ``HashGrid``).

Shared by the compiled kernels (morphbias_fast.ops) and the pure-PyTorch reference
(morphbias_fast.reference), so both read one validated description of the grid.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

INTERPOLATIONS = ("linear", "smoothstep")


# A field list with defaults; `duplicates` pairs it by shape with the other config dataclasses
# (gridconfig, synth, classify.train, discover.mixture): alike in form only, nothing to share.
@dataclass(frozen=True)
class HashGridConfig:
    n_input_dims: int = 3
    n_levels: int = 16
    n_features_per_level: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 2.0
    interpolation: str = "linear"

    def __post_init__(self) -> None:
        def need(ok: bool, msg: str) -> None:
            if not ok:
                raise ValueError(msg)

        for name in ("n_input_dims", "n_levels", "n_features_per_level", "log2_hashmap_size", "base_resolution"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        need(self.n_input_dims in (2, 3), f"n_input_dims must be 2 or 3, got {self.n_input_dims}")
        need(1 <= self.n_levels <= 32, f"n_levels must be in 1..32, got {self.n_levels}")
        need(self.n_features_per_level in (1, 2, 4, 8),
             f"n_features_per_level must be 1, 2, 4 or 8, got {self.n_features_per_level}")
        need(10 <= self.log2_hashmap_size <= 24, f"log2_hashmap_size must be in 10..24, got {self.log2_hashmap_size}")
        need(self.base_resolution >= 2, f"base_resolution must be >= 2, got {self.base_resolution}")
        need(isinstance(self.per_level_scale, (int, float)) and math.isfinite(self.per_level_scale)
             and self.per_level_scale > 1, f"per_level_scale must be a finite number > 1, got {self.per_level_scale!r}")
        need(self.interpolation in INTERPOLATIONS,
             f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")

    @property
    def interpolation_code(self) -> int:
        return INTERPOLATIONS.index(self.interpolation)

    @property
    def n_output_dims(self) -> int:
        return self.n_levels * self.n_features_per_level
