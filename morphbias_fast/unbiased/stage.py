"""The unbiased reference: a classifier trained on a bias-0.5 cohort of the same seed and size as the run's
synthetic cohort (its own run in RUN/unbiased), evaluated on the run's cohort. Its recall in cases without
the bias is the top of the report's gap. Each step resumes: a cohort or classifier already there is kept."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from morphbias_fast import classify
from morphbias_fast.console import say
from morphbias_fast.data import cohort_exists, load_cohort
from morphbias_fast.data.synth import read_synth_config, synthesize
from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.runfolder import RunFolder, write_predictions


# The stage contract (Config, Result.summary) has the shape of classify's; `duplicates` pairs them by shape.
@dataclass(frozen=True)
class Config:
    cohort: Path   # the run's synthetic cohort
    seed: int = 0
    epochs: int = 30
    device: str = "auto"
    progress: bool = True


@dataclass
class Result:
    predictions: pd.DataFrame
    path: Path

    def summary(self) -> str:
        return "unbiased reference: " + classify.accuracy_summary(self.predictions, self.path)


def run(run: RunFolder, cfg: Config) -> Result:
    synth_cfg = read_synth_config(cfg.cohort)
    if synth_cfg is None:
        raise MorphbiasError(f"{cfg.cohort} was not made by `morphbias-fast synth`: the unbiased reference "
                             f"needs a synthetic cohort to re-draw at bias level 0.5")
    ref = run.unbiased
    if not cohort_exists(ref.cohort_dir):
        say("unbiased reference: synthesising a bias-0.5 cohort")
        synthesize(ref.cohort_dir, replace(synth_cfg, bias_level=0.5), overwrite=True, progress=cfg.progress)
    if not ref.done("classify"):
        say("unbiased reference: training the classifier")
        train = classify.TrainConfig(seed=cfg.seed, epochs=cfg.epochs, device=cfg.device)
        classify.run(ref, classify.Config(cohort=ref.cohort_dir, train=train, progress=cfg.progress))
    device = resolve_device(cfg.device)
    model = classify.load_classifier(ref.classify.model, device)
    cohort = load_cohort(cfg.cohort)
    prob = classify.predict_proba(model, classify.standardise(cohort.images), device)
    preds = classify.predictions_frame(cohort, prob)
    write_predictions(run.unbiased_predictions, preds)
    return Result(preds, run.unbiased_predictions)
