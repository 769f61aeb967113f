"""Every model of a run on the counterfactual twins of its synthetic cohort's test subjects: the disease
probability of each subject and of its twin (data/twins.py), for the report's cf_sensitivity and cf_flip_rate."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morphbias_fast.classify import load_classifier, predict_proba, standardise
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.data.twins import counterfactual_twins
from morphbias_fast.devices import resolve_device
from morphbias_fast.runfolder import RunFolder


def twin_probabilities(run: RunFolder, cohort_dir: Path, test_ids: np.ndarray) -> dict | None:
    """model name -> {"ids", "own", "twin"}; None for a cohort synth did not make (no twins exist)."""
    if read_synth_config(cohort_dir) is None:
        return None
    own, twin = counterfactual_twins(cohort_dir, test_ids)
    device = resolve_device("auto")
    x_own, x_twin = standardise(own), standardise(twin)
    out = {}
    for name, path in run.model_files().items():
        model = load_classifier(path, device)
        out[name] = {"ids": np.asarray(test_ids), "own": predict_proba(model, x_own, device),
                     "twin": predict_proba(model, x_twin, device)}
    return out
