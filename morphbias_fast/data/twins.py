"""Counterfactual twins of a synthetic cohort: each subject rendered again with its bias flipped and everything
else (subject modes, disease coefficient, bias coefficient) equal. A classifier that uses the bias as disease
evidence changes its output between a subject and its twin; one that does not, does not.

The twins are re-rendered from the cohort's SynthConfig (dataset_description.json), which fixes the modes and
the participants' coefficients; the participants table is drawn again from it and must agree with the
cohort's participants.tsv, so an edited cohort is refused rather than given twins of other subjects."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from morphbias_fast.data.cohort import load_cohort
from morphbias_fast.data.synth import build_modes, coefficients, draw_participants, read_synth_config, render
from morphbias_fast.data.template import load_template
from morphbias_fast.errors import MorphbiasError


def _participants(cohort_dir: Path, cfg) -> pd.DataFrame:
    drawn = draw_participants(cfg, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[1]))
    stored = load_cohort(cohort_dir, load_images=False).participants
    same = (len(stored) == len(drawn) and (stored.participant_id.to_numpy() == drawn.participant_id.to_numpy()).all()
            and (stored.bias.to_numpy() == drawn.bias.to_numpy()).all()
            and (stored.disease.to_numpy() == drawn.disease.to_numpy()).all())
    if not same:
        raise MorphbiasError(f"{cohort_dir / 'participants.tsv'} does not match the cohort its SynthConfig makes: "
                             f"counterfactual twins need an unedited synthetic cohort")
    return drawn.set_index("participant_id", drop=False)


def counterfactual_twins(cohort_dir, ids, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """(the subjects as synth renders them, their twins with the bias flipped), each [len(ids), *shape] float32."""
    cohort_dir = Path(cohort_dir)
    cfg = read_synth_config(cohort_dir)
    if cfg is None:
        raise MorphbiasError(f"{cohort_dir} was not made by `morphbias-fast synth`: counterfactual twins need the "
                             f"generator's settings")
    parts = _participants(cohort_dir, cfg).loc[list(ids)]
    tpl = load_template(cfg.dim, cfg.spacing)
    modes = build_modes(cfg, tpl, np.random.default_rng(np.random.SeedSequence(cfg.seed).spawn(2)[0]))
    atlas = torch.from_numpy(tpl.image)[None, None]
    own, twin = coefficients(parts, cfg), coefficients(parts, cfg, bias=1 - parts["bias"].to_numpy())
    out = [], []
    for lo in range(0, len(parts), batch):
        for k, c in enumerate((own, twin)):
            out[k].append(render(c[lo: lo + batch], modes, atlas, cfg)[1].astype(np.float32))
    empty = np.zeros((0, *tpl.image.shape), np.float32)
    return tuple(np.concatenate(o) if o else empty for o in out)
