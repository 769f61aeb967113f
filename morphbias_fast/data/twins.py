"""Counterfactual twins of a synthetic cohort: each subject rendered again with its bias flipped and everything
else (subject modes, disease coefficient, bias coefficient) equal. A classifier that uses the bias as disease
evidence changes its output between a subject and its twin; one that does not, does not.

The twins are re-rendered from the cohort's SynthConfig (dataset_description.json), which fixes the modes, the
participants' coefficients and (mri) each subject's site, contrast, bias field and noise; the participants
table is drawn again from it and must agree with the cohort's participants.tsv, so an edited cohort is refused
rather than given twins of other subjects."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from morphbias_fast.data.cohort import load_cohort
from morphbias_fast.data.synth import Generator, read_synth_config
from morphbias_fast.errors import MorphbiasError


def _check_participants(cohort_dir: Path, drawn) -> None:
    stored = load_cohort(cohort_dir, load_images=False).participants
    same = (len(stored) == len(drawn) and (stored.participant_id.to_numpy() == drawn.participant_id.to_numpy()).all()
            and (stored.bias.to_numpy() == drawn.bias.to_numpy()).all()
            and (stored.disease.to_numpy() == drawn.disease.to_numpy()).all())
    if not same:
        raise MorphbiasError(f"{cohort_dir / 'participants.tsv'} does not match the cohort its SynthConfig makes: "
                             f"counterfactual twins need an unedited synthetic cohort")


def counterfactual_twins(cohort_dir, ids, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(the subjects as synth renders them, their twins with the bias flipped), each [len(ids), *shape] float32."""
    cohort_dir = Path(cohort_dir)
    cfg = read_synth_config(cohort_dir)
    if cfg is None:
        raise MorphbiasError(f"{cohort_dir} was not made by `morphbias-fast synth`: counterfactual twins need the "
                             f"generator's settings")
    gen = Generator(cfg)
    _check_participants(cohort_dir, gen.participants)
    rows = pd.Index(gen.participants["participant_id"]).get_indexer(list(ids))
    if (rows < 0).any():
        raise MorphbiasError(f"{cohort_dir} has no participant {list(ids)[int(np.argmax(rows < 0))]}")
    flipped = 1 - gen.participants["bias"].to_numpy()[rows]
    out = [], []
    for lo in range(0, len(rows), batch):
        part = rows[lo: lo + batch]
        for k, bias in enumerate((None, flipped[lo: lo + batch])):
            out[k].append(gen.render(part, bias)[1].astype(np.float32))
    empty = np.zeros((0, *gen.tpl.image.shape), np.float32)
    return tuple(np.concatenate(o) if o else empty for o in out)
