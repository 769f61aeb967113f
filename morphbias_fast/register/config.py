"""The registration INR's hyperparameters (`INRConfig`): architecture, loss weights, learning rates, budget.
Stored in the checkpoint, model.pt and metrics.json; a resumed run must use the same ones."""
from __future__ import annotations

from dataclasses import dataclass

from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError


RECIPES = ("ours", "paper")
# The paper's registration on a CPU. Its published schedule (one subject and 16,384 coordinates a step, lr 1e-5)
# is a million steps on a GPU; in the 240 s budget here it takes ~700 steps and learns no deformation (endpoint
# error 100%, bias probe 0.51). The same 16,384 points a step spread over 32 subjects, with SIREN's lr 1e-4 and the
# latents' 1e-2, train there: 48% endpoint error, bias probe 0.96 (bench/RESULTS.md, "The published training
# schedule does not train on this CPU"). Architecture, loss, latent size and everything after registration stay.
PAPER_CPU_SCHEDULE = dict(batch_subjects=32, points=512, lr_siren=1e-4, lr_latent=1e-2)
PAPER_SCHEDULES = ("auto", "published", "cpu")
LNCC_RADIUS = 2  # lncc window: 5x5 (x5) voxels, 10 mm at 2 mm; on one mri cohort 1 and 5 were worse, 3 a little
# better (bench/RESULTS.md, "What limits detection on the mri cohort")


@dataclass(frozen=True)
class INRConfig:
    arch: str = "hashgrid"
    # How the INR is trained. ours: voxels sampled uniformly, mean z^2 and Jacobian terms, Adam. paper: the
    # published recipe (docs/METHOD.md): coordinates ~ N(0, coord_std) in [-1, 1] (the subject image
    # interpolated there), L2 + alpha * mean |phi - x| in [-1, 1] units + beta * std(z), AdamW with weight decay
    # on the network and the learning rate times lr_decay per epoch. INRConfig.paper() sets its numbers.
    recipe: str = "ours"
    latent_dim: int = 128
    steps: int | None = None          # training steps (None: until the time budget)
    time_budget: float | None = 240.0  # seconds for the whole stage; latent fitting gets fit_share of it
    fit_share: float = 0.25
    fit_steps: int = 300               # latent-fitting steps, every subject (planned to fit the budget)
    batch_subjects: int = 32
    points: int = 256                  # 256 beat 1024 per subject at equal time: 4x the steps (bench/RESULTS.md)
    lr_encoding: float = 1e-2
    lr_network: float = 5e-3           # hash-grid MLP, FiLM and output layers
    lr_siren: float = 1e-4             # SIREN's network (the paper's 1e-5 barely moves in a 300 s budget)
    lr_latent: float = 1e-2
    lr_fit: float = 5e-2               # latent fitting, decayed to 0 (starts from the mean training latent)
    alpha: float = 1e-5                # mean |u| (voxels); larger values shrink the fields (bench/RESULTS.md)
    beta: float = 1e-4                 # mean z^2
    gamma: float = 1e-3                # mean |log det(I + du/dx)|
    fold_weight: float = 10.0          # mean relu(fold_margin - det): keeps det away from 0 (folds)
    fold_margin: float = 0.1
    similarity: str = "auto"           # auto: mse on template cohorts, lncc otherwise (register/stage.py)
    lncc_radius: int = LNCC_RADIUS     # lncc window: 2r+1 voxels a side
    denoise: str = "none"              # curvature: denoise the scans before registration (register/denoise.py)
    weight_decay: float = 0.0         # AdamW's, on the network (paper recipe)
    lr_decay: float = 1.0              # learning-rate factor per epoch (an epoch: every training subject once)
    coord_std: float = 0.4             # paper recipe: std of the sampled coordinates in [-1, 1]
    seed: int = 0
    device: str = "auto"
    checkpoint_every: float = 120.0    # seconds

    @classmethod
    def paper(cls, schedule: str = "auto", **overrides) -> "INRConfig":
        """The paper's registration (docs/METHOD.md section 2): SIREN + FiLM, latent 256 drawn from N(0, 0.01),
        16,384 coordinates from one subject per step, AdamW lr 1e-5 with weight decay 1.0, ExponentialLR 0.999
        per epoch, alpha 0.01. Where the paper is silent: beta (ours, 1e-4), the latents' learning rate (the
        same optimiser, so 1e-5), and the fitting of new subjects (ours: all at once from the mean training
        latent, lr_fit). No Jacobian terms: the paper has none.

        schedule: "published" as above; "cpu" replaces the batch and learning rates by PAPER_CPU_SCHEDULE, the
        only schedule that trains in a CPU budget; "auto" (default) is "published" when the run's device
        resolves to a GPU and "cpu" otherwise. The chosen numbers are the config's, so metrics.json records
        them. Explicit overrides win over either schedule."""
        if schedule not in PAPER_SCHEDULES:
            raise MorphbiasError(f"the paper's schedule must be one of {', '.join(PAPER_SCHEDULES)}, got {schedule!r}")
        if schedule == "auto":
            on_gpu = resolve_device(overrides.get("device", "auto")).type == "cuda"
            schedule = "published" if on_gpu else "cpu"
        paper = dict(arch="siren", recipe="paper", latent_dim=256, batch_subjects=1, points=16384, lr_siren=1e-5,
                     lr_latent=1e-5, alpha=0.01, beta=1e-4, gamma=0.0, fold_weight=0.0, similarity="mse",
                     weight_decay=1.0, lr_decay=0.999, coord_std=0.4)
        if schedule == "cpu":
            paper.update(PAPER_CPU_SCHEDULE)
        return cls(**{**paper, **overrides})

    @classmethod
    def for_recipe(cls, recipe: str, **overrides) -> "INRConfig":
        """INRConfig.paper(**overrides) for "paper", INRConfig(**overrides) for "ours"."""
        if recipe not in RECIPES:
            raise MorphbiasError(f"--recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
        return cls.paper(**overrides) if recipe == "paper" else cls(**overrides)

    def __post_init__(self):
        if self.recipe not in RECIPES:
            raise MorphbiasError(f"--recipe must be one of {', '.join(RECIPES)}, got {self.recipe!r}")
        if not 0 < self.lr_decay <= 1:
            raise MorphbiasError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.arch not in ("hashgrid", "siren"):
            raise MorphbiasError(f"--arch must be hashgrid or siren, got {self.arch!r}")
        if self.similarity not in ("auto", "mse", "ncc", "lncc"):
            raise MorphbiasError(f"--similarity must be auto, mse, ncc or lncc, got {self.similarity!r}")
        if self.denoise not in ("none", "curvature"):
            raise MorphbiasError(f"--denoise must be none or curvature, got {self.denoise!r}")
        if self.lncc_radius < 1:
            raise MorphbiasError(f"--lncc-radius must be at least 1, got {self.lncc_radius}")
        if self.steps is None and self.time_budget is None:
            raise MorphbiasError("give --steps or --time-budget")
        if self.fit_steps < 1:
            raise MorphbiasError(f"--fit-steps must be at least 1 (every latent comes from the fit), "
                                 f"got {self.fit_steps}")
        if self.steps is not None and self.steps < 1:
            raise MorphbiasError(f"--steps must be at least 1, got {self.steps}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise MorphbiasError(f"--time-budget must be positive, got {self.time_budget}")


