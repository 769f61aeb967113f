"""The cohort reader every stage uses: a BIDS-style folder of NIfTI images and participants.tsv.

Any problem stops the stage before a result is written, with a one-line MorphbiasError that names the file,
participant or column at fault.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from morphbias_fast.errors import MorphbiasError

SPLITS = ("train", "val", "test")


@dataclass
class Cohort:
    root: Path
    participants: pd.DataFrame   # participant_id, split, the label column, and whatever else the TSV has
    label_column: str
    images: np.ndarray | None    # [N, *shape] float32, in participants order
    affine: np.ndarray | None    # 4x4 of the first image

    @property
    def ids(self) -> np.ndarray:
        return self.participants["participant_id"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.participants[self.label_column].to_numpy().astype(np.int64)

    @property
    def splits(self) -> np.ndarray:
        return self.participants["split"].to_numpy()

    @property
    def bias(self) -> np.ndarray | None:
        return self.participants["bias"].to_numpy().astype(np.int64) if "bias" in self.participants else None

    def index(self, split: str) -> np.ndarray:
        return np.flatnonzero(self.splits == split)

    def image_path(self, pid: str) -> Path:
        return _image_path(self.root, pid)

    def displacement_path(self, pid: str) -> Path | None:
        p = self.root / "derivatives" / "synth" / pid / "anat" / f"{pid}_desc-displacement_xfm.nii.gz"
        return p if p.exists() else None

    @property
    def atlas_path(self) -> Path | None:
        p = self.root / "atlas" / "atlas_T1w.nii.gz"
        return p if p.exists() else None

    @property
    def mask_path(self) -> Path | None:
        p = self.root / "atlas" / "atlas_mask.nii.gz"
        return p if p.exists() else None


def cohort_exists(root) -> bool:
    """Whether `root` holds a cohort (its participants.tsv); what a resumed run checks before synthesising."""
    return (Path(root) / "participants.tsv").exists()


def _image_path(root: Path, pid: str) -> Path:
    anat = root / pid / "anat"
    for ext in (".nii.gz", ".nii"):
        p = anat / f"{pid}_T1w{ext}"
        if p.exists():
            return p
    return anat / f"{pid}_T1w.nii.gz"


def read_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data as float32, affine), or a MorphbiasError naming the file. A single-slice volume (how a 2-D cohort
    is stored: BIDS requires 3-D anatomy) comes back as its 2-D slice."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj, dtype=np.float32)
    except Exception as exc:  # nibabel raises several types for truncated/corrupt files
        raise MorphbiasError(f"cannot read {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    if not np.isfinite(data).all():
        raise MorphbiasError(f"{path} contains NaN or infinite voxels")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[..., 0]
    return data, img.affine


def _assign_splits(df: pd.DataFrame, label_column: str) -> pd.Series:
    """Stratified 50/25/25 train/val/test split, fixed by a seed, for cohorts without a split column."""
    rng = np.random.default_rng(0)
    split = pd.Series("train", index=df.index, dtype=object)
    for _, grp in df.groupby(label_column):
        idx = rng.permutation(grp.index.to_numpy())
        n = len(idx)
        split[idx[n // 2: n // 2 + n // 4]] = "val"
        split[idx[n // 2 + n // 4:]] = "test"
    return split


def load_cohort(root, label_column: str = "disease", load_images: bool = True) -> Cohort:
    root = Path(root)
    tsv = root / "participants.tsv"
    if not root.is_dir():
        raise MorphbiasError(f"cohort folder {root} does not exist")
    if not tsv.is_file():
        raise MorphbiasError(f"{tsv} is missing (a cohort needs participants.tsv)")
    try:
        df = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str})
    except Exception as exc:
        raise MorphbiasError(f"cannot read {tsv}: {exc}".splitlines()[0]) from None
    if "participant_id" not in df:
        raise MorphbiasError(f"{tsv} has no participant_id column")
    if len(df) == 0:
        raise MorphbiasError(f"{tsv} lists no participants")
    if label_column not in df:
        raise MorphbiasError(f"{tsv} has no label column {label_column!r} (choose one with --label-column; "
                             f"columns: {', '.join(df.columns)})")
    if df[label_column].isna().any() or not set(df[label_column].unique()) <= {0, 1}:
        raise MorphbiasError(f"label column {label_column!r} in {tsv} must hold only 0 and 1")
    dup = df["participant_id"][df["participant_id"].duplicated()]
    if len(dup):
        raise MorphbiasError(f"participant {dup.iloc[0]} is listed twice in {tsv}")
    if "split" not in df:
        df["split"] = _assign_splits(df, label_column)
    elif not set(df["split"].unique()) <= set(SPLITS):
        raise MorphbiasError(f"column 'split' in {tsv} must hold only {', '.join(SPLITS)}")
    df = df.reset_index(drop=True)

    for pid in df["participant_id"]:
        if not _image_path(root, pid).exists():
            raise MorphbiasError(f"participant {pid} has no image ({_image_path(root, pid)} is missing)")
    images = affine = None
    if load_images:
        arrays = []
        for pid in df["participant_id"]:
            path = _image_path(root, pid)
            data, aff = read_nifti(path)
            if arrays and data.shape != arrays[0].shape:
                raise MorphbiasError(f"{path} has shape {data.shape}, but the cohort's images have shape "
                                     f"{arrays[0].shape}")
            if affine is None:
                affine = aff
            arrays.append(data)
        images = np.stack(arrays)
    return Cohort(root, df, label_column, images, affine)
