"""Where the bias lies in the spectrum of the true deformations (issue 17): for each synthetic cohort, PCA of
the train subjects' true displacement fields (derivatives/synth, what a perfect registration would recover)
and the rank, AUC and variance share of the component that separates the bias best within the disease classes
(paper_discovery_steps.bias_spectrum). A bias beyond the fourth component is out of reach of the paper's
PCA(latents, 4) however good the registration.

    python bench/diagnostics/field_spectrum.py COHORT_DIR [COHORT_DIR ...] [--components 20] [--json PATH]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import nibabel as nib
import numpy as np
from sklearn.decomposition import PCA

from morphbias_fast.data import load_cohort
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import write_json


def _steps_module():
    spec = importlib.util.spec_from_file_location("paper_discovery_steps",
                                                  Path(__file__).with_name("paper_discovery_steps.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def field_spectrum(cohort_dir: Path, components: int = 20, seed: int = 0) -> dict:
    cfg = read_synth_config(cohort_dir)
    if cfg is None:
        raise MorphbiasError(f"{cohort_dir}: needs a synthetic cohort (its true displacements and bias)")
    cohort = load_cohort(cohort_dir, load_images=False)
    part = cohort.participants.set_index("participant_id")
    ids = cohort.ids[cohort.index("train")]
    X = np.stack([np.asarray(nib.load(cohort_dir / "derivatives" / "synth" / i / "anat" /
                                      f"{i}_desc-displacement_xfm.nii.gz").dataobj, dtype=np.float32).ravel()
                  for i in ids])
    pca = PCA(min(components, *X.shape), random_state=seed).fit(X)
    y, bias = (part.loc[ids, c].to_numpy().astype(int) for c in ("disease", "bias"))
    out = {"cohort": str(cohort_dir), "subject_effect": cfg.subject_effect, "bias_level": cfg.bias_level,
           "n": len(ids), "variance_share": [float(v) for v in pca.explained_variance_ratio_]}
    res = _steps_module().bias_spectrum(pca.transform(X), y, bias)
    res["bias_pc_variance_share"] = out["variance_share"][res["bias_pc_rank"] - 1]  # of all the variance
    return {**out, **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cohorts", nargs="+", type=Path)
    ap.add_argument("--components", type=int, default=20)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    rows = []
    for c in a.cohorts:
        rows.append(field_spectrum(c, a.components))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "variance_share"}))
    if a.json:
        write_json(a.json, {"components": a.components, "rows": rows})


if __name__ == "__main__":
    main()
