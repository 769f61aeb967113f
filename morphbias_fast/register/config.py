"""The registration INR's hyperparameters (`INRConfig`): architecture, loss weights, learning rates, budget.
Stored in the checkpoint, model.pt and metrics.json; a resumed run must use the same ones."""
from __future__ import annotations

from dataclasses import dataclass

from morphbias_fast.errors import MorphbiasError


@dataclass(frozen=True)
class INRConfig:
    arch: str = "hashgrid"
    latent_dim: int = 128
    steps: int | None = None          # training steps (None: until the time budget)
    time_budget: float | None = 240.0  # seconds for the whole stage; latent fitting gets fit_share of it
    fit_share: float = 0.25
    fit_steps: int = 300               # latent-fitting steps for new subjects (cut short by the budget)
    batch_subjects: int = 32
    points: int = 256                  # 256 beat 1024 per subject at equal time: 4x the steps (bench/RESULTS.md)
    lr_encoding: float = 1e-2
    lr_network: float = 5e-3           # hash-grid MLP, FiLM and output layers
    lr_siren: float = 1e-4             # SIREN's network (the paper's 1e-5 barely moves in a 300 s budget)
    lr_latent: float = 1e-2
    lr_fit: float = 5e-2               # latent fitting of new subjects (starts from the mean training latent)
    alpha: float = 1e-5                # mean |u| (voxels); larger values shrink the fields (bench/RESULTS.md)
    beta: float = 1e-4                 # mean z^2
    gamma: float = 1e-3                # mean |log det(I + du/dx)|
    fold_weight: float = 10.0          # mean relu(fold_margin - det): keeps det away from 0 (folds)
    fold_margin: float = 0.1
    similarity: str = "auto"           # auto: mse on template cohorts, lncc otherwise (register/stage.py)
    seed: int = 0
    device: str = "auto"
    checkpoint_every: float = 120.0    # seconds

    def __post_init__(self):
        if self.arch not in ("hashgrid", "siren"):
            raise MorphbiasError(f"--arch must be hashgrid or siren, got {self.arch!r}")
        if self.similarity not in ("auto", "mse", "ncc", "lncc"):
            raise MorphbiasError(f"--similarity must be auto, mse, ncc or lncc, got {self.similarity!r}")
        if self.steps is None and self.time_budget is None:
            raise MorphbiasError("give --steps or --time-budget")
        if self.steps is not None and self.steps < 1:
            raise MorphbiasError(f"--steps must be at least 1, got {self.steps}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise MorphbiasError(f"--time-budget must be positive, got {self.time_budget}")


