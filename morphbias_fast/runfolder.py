"""The run folder: every path a run reads or writes, the readers of the files stages hand each other, and
which stages are done. No other module spells a path inside a run folder.

    RUN/
      cohort/                      the synthetic cohort `run` makes when no COHORT_DIR is given
      classify/                    predictions.csv, model.pt, metrics.json (metrics.json records the cohort)
      register/                    latents.npz, model.pt, metrics.json, atlas_T1w.nii.gz, train_state*.pt
      discover/                    subgroups.csv, summary.json
      mitigate/                    the default strategy: predictions.csv, model.pt, metrics.json, augmentations.png
      mitigate_<strategy>/         every other strategy, the same files
      unbiased/                    a run of its own (cohort/, classify/) + predictions.csv on this run's cohort
      metrics.json, report.html    the report
      seed_<K>/                    one run per seed, under a `--seeds` folder
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from morphbias_fast.data import cohort_exists, load_cohort
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_path

# The strategy whose folder is plain `mitigate/` (and whose report row is "mitigated"); mitigate/strategies.py
# takes its default from here, so the folder rule and the default cannot drift apart.
DEFAULT_STRATEGY = "counterfactual"
PREDICTION_COLUMNS = ("participant_id", "split", "y_true", "prob", "y_pred")
STAGES = ("classify", "register", "discover", "mitigate", "unbiased", "report")


def read_predictions(path: Path) -> pd.DataFrame:
    """A predictions.csv (classify's columns), or a MorphbiasError naming the file."""
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: run `morphbias-fast classify` first")
    preds = pd.read_csv(path, dtype={"participant_id": str})
    missing = set(PREDICTION_COLUMNS) - set(preds.columns)
    if missing:
        raise MorphbiasError(f"{path} lacks columns {', '.join(sorted(missing))}")
    return preds


def write_predictions(path: Path, preds: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        preds.to_csv(tmp, index=False, float_format="%.6f")


def _file(name: str, doc: str = "") -> property:
    """A path property: folder.path / name."""
    return property(lambda self: self.path / name, doc=doc or name)


@dataclass(frozen=True)
class ModelFolder:
    """What a trained classifier leaves: classify/, mitigate*/ and unbiased/classify/."""

    path: Path
    predictions = _file("predictions.csv", "participant_id, split, y_true, prob, y_pred for every participant")
    model = _file("model.pt")
    metrics = _file("metrics.json")
    augmentations = _file("augmentations.png", "train cases above generated images (generating strategies)")

    def read_predictions(self) -> pd.DataFrame:
        return read_predictions(self.predictions)


@dataclass(frozen=True)
class RegisterFolder:
    path: Path
    latents = _file("latents.npz", "participant_id, split, z for every participant")
    model = _file("model.pt", "the network's state dict, arch, dim, latent_dim, shape and INRConfig")
    metrics = _file("metrics.json")
    atlas = _file("atlas_T1w.nii.gz", "a copy of the atlas the network warps")

    def checkpoint(self, rank: int | None = None) -> Path:
        """The training checkpoint (one per rank in a torchrun job)."""
        return self.path / ("train_state.pt" if rank is None else f"train_state_rank{rank}.pt")

    def checkpoints(self) -> list[Path]:
        return sorted(self.path.glob("train_state*.pt"))

    def require(self) -> None:
        for path in (self.model, self.latents):
            if not path.exists():
                raise MorphbiasError(f"{path} is missing: run `morphbias-fast register` first")

    def read_latents(self) -> dict[str, np.ndarray]:
        """participant_id -> latent (float32, as stored)."""
        if not self.latents.exists():
            raise MorphbiasError(f"{self.latents} is missing: run `morphbias-fast register` first")
        try:
            lat = np.load(self.latents)
            return dict(zip(lat["participant_id"].astype(str), lat["z"]))
        except (ValueError, KeyError, OSError) as exc:
            raise MorphbiasError(f"cannot read {self.latents}: {exc} (expected arrays participant_id (str) "
                                 f"and z)") from None

    def latents_of(self, ids) -> np.ndarray:
        """[len(ids), K] latents in the order of `ids`, or a MorphbiasError naming the first missing one."""
        z = self.read_latents()
        missing = [p for p in ids if p not in z]
        if missing:
            raise MorphbiasError(f"{self.latents} has no latent for participant {missing[0]} "
                                 f"({len(missing)} missing)")
        return np.stack([z[p] for p in ids])

    def write_latents(self, ids: np.ndarray, splits: np.ndarray, z: np.ndarray) -> None:
        with atomic_path(self.latents) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, participant_id=ids.astype(str), split=splits.astype(str), z=z)


@dataclass(frozen=True)
class DiscoverFolder:
    path: Path
    subgroups = _file("subgroups.csv", "participant_id, split, subgroup, selected, role for train and val")
    summary = _file("summary.json")

    def read_subgroups(self) -> pd.DataFrame:
        """subgroups.csv indexed by participant_id (split, subgroup, selected, role)."""
        if not self.subgroups.exists():
            raise MorphbiasError(f"{self.subgroups} is missing: run `morphbias-fast discover` first")
        return pd.read_csv(self.subgroups, dtype={"participant_id": str}).set_index("participant_id")


class RunFolder:
    """One run: `RunFolder(path)`. `discover_dir` points discovery's files elsewhere (`--discover-dir`);
    `register_dir` and `classify_dir` read the latents and network, or the classifier's predictions, from
    another folder (a variant's: register/refit.py, classify/heldout.py)."""

    def __init__(self, root, discover_dir=None, register_dir=None, classify_dir=None):
        self.root = Path(root)
        self.classify = ModelFolder(Path(classify_dir) if classify_dir is not None else self.root / "classify")
        self.register = RegisterFolder(Path(register_dir) if register_dir is not None else self.root / "register")
        self.discover = DiscoverFolder(Path(discover_dir) if discover_dir is not None else self.root / "discover")

    def __repr__(self) -> str:
        return f"RunFolder({str(self.root)!r})"

    @property
    def cohort_dir(self) -> Path:
        """Where `run` synthesises the cohort when none is given."""
        return self.root / "cohort"

    def mitigate(self, strategy: str = DEFAULT_STRATEGY) -> ModelFolder:
        return ModelFolder(self.root / ("mitigate" if strategy == DEFAULT_STRATEGY else f"mitigate_{strategy}"))

    def mitigations(self) -> dict[str, ModelFolder]:
        """Report row name -> folder of every mitigation present: "mitigated" (the default), then the
        other strategies in name order."""
        out = {"mitigated": self.mitigate()}
        for d in sorted(self.root.glob("mitigate_*")):
            out[d.name.removeprefix("mitigate_")] = ModelFolder(d)
        return out

    @property
    def unbiased(self) -> "RunFolder":
        """The unbiased reference's own run (its cohort and classifier)."""
        return RunFolder(self.root / "unbiased")

    @property
    def path(self) -> Path:  # what _file's properties join to
        return self.root

    unbiased_predictions = property(lambda self: self.root / "unbiased" / "predictions.csv",
                                    doc="the unbiased reference's predictions on this run's cohort")
    metrics = _file("metrics.json", "the report's table")
    report = _file("report.html")

    def seed(self, seed: int) -> "RunFolder":
        return RunFolder(self.root / f"seed_{seed}")

    def seeds(self) -> list[tuple[int, "RunFolder"]]:
        """(seed, run) of every seed_K folder, by seed."""
        found = [(int(p.name.removeprefix("seed_")), RunFolder(p)) for p in self.root.glob("seed_*")
                 if p.name.removeprefix("seed_").isdigit()]
        return sorted(found, key=lambda t: t[0])

    def model_predictions(self) -> dict[str, Path]:
        """Report row name -> predictions.csv, for the models that exist, in table order."""
        files = {"biased": self.classify.predictions,
                 **{name: f.predictions for name, f in self.mitigations().items()},
                 "unbiased": self.unbiased_predictions}
        return {k: v for k, v in files.items() if v.exists()}

    def model_files(self) -> dict[str, Path]:
        """Report row name -> the classifier (model.pt) behind it, for those that exist."""
        files = {"biased": self.classify.model, **{name: f.model for name, f in self.mitigations().items()},
                 "unbiased": self.unbiased.classify.model}
        return {k: v for k, v in files.items() if v.exists()}

    def stage_records(self) -> dict[str, Path]:
        """Stage name (mitigate: mitigate_STRATEGY) -> the JSON record it wrote, for those that exist."""
        files = {"classify": self.classify.metrics, "register": self.register.metrics,
                 "discover": self.discover.summary,
                 **{"mitigate" if name == "mitigated" else f"mitigate_{name}": f.metrics
                    for name, f in self.mitigations().items()}}
        return {k: v for k, v in files.items() if v.exists()}

    def done(self, stage: str, strategy: str = DEFAULT_STRATEGY) -> bool:
        """Whether `stage` (one of STAGES; mitigate for `strategy`) has written its final file."""
        marker = {"classify": self.classify.predictions, "register": self.register.latents,
                  "discover": self.discover.summary, "mitigate": self.mitigate(strategy).predictions,
                  "unbiased": self.unbiased_predictions, "report": self.report}
        if stage not in marker:
            raise ValueError(f"unknown stage {stage!r} (one of {', '.join(STAGES)})")
        return marker[stage].exists()

    def _check_belongs(self, cohort_dir: Path) -> None:
        """A --cohort for a run that already has predictions must hold exactly the participants they cover."""
        if not self.classify.predictions.exists():
            return
        if not cohort_exists(cohort_dir):
            raise MorphbiasError(f"--cohort {cohort_dir} is not a cohort (no participants.tsv)")
        ours = set(load_cohort(cohort_dir, load_images=False).ids)
        theirs = set(self.classify.read_predictions().participant_id)
        if ours != theirs:
            example = sorted(theirs - ours or ours - theirs)[0]
            raise MorphbiasError(f"--cohort {cohort_dir} does not belong to {self.root}: its classifier was trained "
                                 f"on other participants ({example} is in one and not the other)")

    def resolve_cohort(self, cohort_dir=None) -> Path:
        """The cohort this run belongs to: `cohort_dir` when given, else RUN/cohort (what `run` makes),
        else the cohort the classify stage recorded."""
        if cohort_dir is not None:
            self._check_belongs(Path(cohort_dir))
            return Path(cohort_dir)
        if cohort_exists(self.cohort_dir):
            return self.cohort_dir
        if self.classify.metrics.exists():
            recorded = json.loads(self.classify.metrics.read_text()).get("cohort")
            if recorded:
                return Path(recorded)
        raise MorphbiasError(f"cannot tell which cohort {self.root} was made from: pass --cohort COHORT_DIR")
