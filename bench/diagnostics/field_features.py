"""Detection from the deformation fields themselves instead of the latents: a copy of a run whose "latents" are
PCA(128) scores of a per-voxel map of each subject's field, so that `bench probe` and `bench discover` (features
inr) measure how much of the bias that map carries (bench/RESULTS.md, issue 15).

    python bench/diagnostics/field_features.py RUN_DIR OUT_DIR --source true|decoded [--map logdet|field]

source  true: the cohort's stored true fields (what a perfect registration would give);
        decoded: the fields the run's network draws from its latents.
map     logdet: log det(I + du/dx) at every brain voxel (local volume change; central differences);
        field: the displacement itself at every brain voxel.
The PCA is fitted on the training subjects, with 128 components (the latent width). OUT_DIR gets links to
RUN_DIR's cohort and classify stages and a register stage with the scores as latents.npz."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from sklearn.decomposition import PCA

from run_copy import copy_with_latents

from morphbias_fast.data import fields, load_cohort, read_nifti
from morphbias_fast.register.decode import Decoder
from morphbias_fast.runfolder import RunFolder

COMPONENTS = 128
DET_FLOOR = 1e-3  # a folded voxel's determinant is clipped here before the log


def log_det(u: np.ndarray) -> np.ndarray:
    """[S, D, *grid] voxel-unit fields -> [S, *grid] log det(I + du/dx), central differences (2-D or 3-D)."""
    D = u.shape[1]
    J = np.stack([np.stack(np.gradient(u[:, i], axis=tuple(range(1, D + 1))), 1) for i in range(D)], 1)
    J = np.moveaxis(J, (1, 2), (-2, -1)) + np.eye(D)
    return np.log(np.clip(np.linalg.det(J), DET_FLOOR, None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--source", choices=("true", "decoded"), required=True)
    ap.add_argument("--map", choices=("logdet", "field"), default="logdet")
    args = ap.parse_args()
    run = RunFolder(args.run)
    cohort = load_cohort(run.resolve_cohort(), load_images=False)
    mask = read_nifti(cohort.mask_path)[0] > 0.5
    lat = np.load(run.register.latents, allow_pickle=True)
    ids = list(lat["participant_id"])
    if args.source == "true":
        u = np.stack([fields.from_itk(sitk.ReadImage(str(cohort.displacement_path(p)), sitk.sitkVectorFloat64))
                      for p in ids])
    else:
        dec = Decoder.load(run.register)
        with torch.no_grad():
            u = np.concatenate([dec.fields(torch.as_tensor(lat["z"][i:i + 100], dtype=torch.float32)).numpy()
                                for i in range(0, len(ids), 100)])
    X = log_det(u)[:, mask] if args.map == "logdet" else u[:, :, mask].reshape(len(u), -1)
    Z = PCA(COMPONENTS, random_state=0).fit(X[lat["split"] == "train"]).transform(X)
    copy_with_latents(args.run, args.out, lat, Z)

if __name__ == "__main__":
    main()
