"""Mitigation strategies, a registry. Each strategy is a small function that reads what it needs from the
run (through `Inputs`) and returns a training `Plan`: weights of the original train cases, the weighting of
the validation accuracy that picks the checkpoint, and optionally latents to decode into extra training
images. The stage (stage.py) decodes, trains and writes; a strategy never trains or writes.

counterfactual  (default, ours) originals weighted so each discovered group counts the same, + every train
                case with its bias flipped: its latent moved across the discovered split (augment.py),
                weighted like its original
paper           originals + re-balanced set with 3 latent-noise augmentations each, SMOTE to the original
                size (docs/METHOD.md section 4); both halves weighted equally; plain val accuracy
oracle          reweighing with the TRUE bias: w = P(g) P(y) / P(g, y) (needs the cohort's bias column)
groupbal        weights 1 / size of the discovered (subgroup) over the original train set
jtt             Just Train Twice: the biased classifier's train errors up-weighted to the weight of the rest

Every strategy but `paper` picks its checkpoint by accuracy averaged over the discovered val subgroups (the
oracle: over the true val groups), because plain val accuracy rewards the shortcut on a biased val split.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable

import numpy as np
import pandas as pd

from morphbias_fast.data import Cohort
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.mitigate.augment import counterfactual_latents, paper_latents
from morphbias_fast.runfolder import DEFAULT_STRATEGY, RunFolder

DEFAULT = DEFAULT_STRATEGY


@dataclass
class Plan:
    weights: np.ndarray                  # per original train case
    val_weight: np.ndarray | None        # per val case; None = plain val accuracy
    latents: np.ndarray | None = None    # decoded into extra training images (atlas warped by their fields)
    labels: np.ndarray | None = None     # labels of those images
    examples: np.ndarray | None = None   # train cases shown above the generated images in augmentations.png
    caption: str = ""
    warning: str | None = None           # the plan is weaker than the strategy asked for (said, and recorded)
    val_groups: np.ndarray | None = None  # per val case: select the checkpoint by its worst group instead
    generated_weights: np.ndarray | None = None  # relative weight of each generated image (None: all equal)
    # Rows of the train split whose own images are moved to `latents`' anatomy (deform.transport) instead of
    # the atlas being warped: generated images that keep the subject's contrast and noise (real scans).
    transport_from: np.ndarray | None = None


@dataclass
class Inputs:
    """What a strategy may read: the run, its cohort (with images) and the seed."""

    run: RunFolder
    cohort: Cohort
    seed: int = 0
    tr: np.ndarray = field(init=False)
    va: np.ndarray = field(init=False)

    def __post_init__(self):
        self.tr, self.va = self.cohort.index("train"), self.cohort.index("val")

    @cached_property
    def _subgroups(self) -> pd.DataFrame:
        return self.run.discover.read_subgroups()

    def subgroups(self, rows) -> pd.DataFrame:
        """Discovery's rows for the cohort's participants `rows`, or an error naming what is not covered."""
        s = self._subgroups.reindex(self.cohort.ids[rows])
        if s.subgroup.isna().any():
            raise MorphbiasError(f"{self.run.discover.subgroups} does not cover participant "
                                 f"{s.index[s.subgroup.isna().to_numpy()][0]}")
        return s

    def discovered_val_weight(self) -> np.ndarray:
        return balanced_weights(self.subgroups(self.va).subgroup.to_numpy())

    def train_latents(self) -> np.ndarray:
        return self.run.register.latents_of(self.cohort.ids[self.tr])

    def no_generation(self, name: str, exc: Exception, val_weight) -> Plan:
        """Discovery found no usable split (or too small a re-balanced set): nothing to generate from.
        Retrain on the originals and say so."""
        return Plan(np.ones(len(self.tr)), val_weight,
                    warning=f"{name}: {exc} ({self.run.discover.subgroups}); retrained without generated images")


@dataclass(frozen=True)
class Strategy:
    fn: Callable[[Inputs], Plan]
    help: str


STRATEGIES: dict[str, Strategy] = {}


def strategy(name: str, help: str):
    """Register `fn(inputs) -> Plan` as the mitigation strategy `name` (the CLI offers every registered one)."""
    def register(fn):
        STRATEGIES[name] = Strategy(fn, help)
        return fn
    return register


def balanced_weights(groups: np.ndarray) -> np.ndarray:
    """1 / group size, normalised to mean 1: every group counts the same."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inv]
    return w / w.mean()


def oracle_weights(group: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Reweighing: w = P(g) P(y) / P(g, y), under which group and label are independent."""
    group, y = np.asarray(group).astype(int), np.asarray(y).astype(int)
    n = len(y)
    pg = np.bincount(group)[group] / n
    py = np.bincount(y)[y] / n
    gy = group * 2 + y
    return pg * py / (np.bincount(gy)[gy] / n)


@strategy("counterfactual", "add every train case decoded with its bias flipped (ours)")
def counterfactual(inp: Inputs) -> Plan:
    s = inp.subgroups(inp.tr)
    side = np.select([s.role == "S_B", s.role == "S_NB"], [1, 0], -1)
    val_weight = inp.discovered_val_weight()
    latents = inp.train_latents()  # outside the try: a missing file is an error, not a weak plan
    try:
        Z, y = counterfactual_latents(latents, inp.cohort.labels[inp.tr], side)
    except ValueError as exc:
        return inp.no_generation("counterfactual", exc, val_weight)
    # The originals are weighted so that each discovered group counts the same (groupbal), and each copy like
    # the original it was made from, so both halves of the training set have the bias independent of the
    # label. (Copies weighted uniformly carry the reverse bias, P(bias | disease) = 1 - level, and reversed
    # the shortcut on development seeds: bench/RESULTS.md, "the choice for item 5".)
    weights = balanced_weights(s.subgroup.to_numpy())
    return Plan(weights, val_weight, Z, y, generated_weights=weights[side >= 0],
                examples=inp.cohort.images[inp.tr][side >= 0][:6],
                caption="counterfactual: train cases (top) and generated images (bottom; same case, bias flipped)")


@strategy("paper", "latent noise + SMOTE on the re-balanced set (the paper's)")
def paper(inp: Inputs) -> Plan:
    s = inp.subgroups(inp.tr)
    latents = inp.train_latents()
    try:
        Z, y = paper_latents(latents, inp.cohort.labels[inp.tr], s.selected.to_numpy().astype(bool), len(inp.tr),
                             inp.seed)
    except ValueError as exc:
        return inp.no_generation("paper", exc, None)
    return Plan(np.ones(len(inp.tr)), None, Z, y, examples=inp.cohort.images[inp.tr][:6],
                caption="paper: train cases (top) and generated images (bottom; not paired)")


@strategy("oracle", "reweighing with the true bias (needs the bias column)")
def oracle(inp: Inputs) -> Plan:
    bias, y = inp.cohort.bias, inp.cohort.labels
    if bias is None:
        raise MorphbiasError(f"--strategy oracle needs a bias column in {inp.cohort.root / 'participants.tsv'}")
    return Plan(oracle_weights(bias[inp.tr], y[inp.tr]), balanced_weights(bias[inp.va] * 2 + y[inp.va]))


@strategy("groupbal", "the discovered groups weighted equally")
def groupbal(inp: Inputs) -> Plan:
    return Plan(balanced_weights(inp.subgroups(inp.tr).subgroup.to_numpy()), inp.discovered_val_weight())


@strategy("jtt", "up-weight the first model's train errors (Just Train Twice)")
def jtt(inp: Inputs) -> Plan:
    preds = inp.run.classify.read_predictions().set_index("participant_id").reindex(inp.cohort.ids[inp.tr])
    err = preds.y_pred.to_numpy() != preds.y_true.to_numpy()
    if not err.any():
        raise MorphbiasError("jtt: the biased classifier makes no train errors to up-weight")
    # errors weigh as much as all the rest
    return Plan(np.where(err, (~err).sum() / err.sum(), 1.0), inp.discovered_val_weight())
