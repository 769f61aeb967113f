"""Would registering tissue segmentations instead of the scans recover the bias on the mri cohort (issue 15,
"what it would take")? Writes a copy of a cohort whose images are each scan's estimated tissue segmentation,
rendered as one image, and whose atlas is the MNI152 tissue maps rendered the same way; register it with mse
(the images now share a contrast) and measure detection on it (bench/RESULTS.md).

    python bench/diagnostics/segmentation_cohort.py COHORT_DIR OUT_DIR [--splits train,val]

Per subject, nothing from the generator: SimpleITK's N4 bias-field correction (its field fitted inside an
Otsu mask of the scan), then a four-class Gaussian mixture (scikit-learn) of the corrected intensities, its
classes ordered by mean (background, CSF, grey, white); the image is sum_k p_k * level_k with levels 0, 1/3,
2/3, 1 (the values of the cohort's noiseless rendering, appearance.noiseless). participants.tsv, the true
fields and the atlas mask are copied unchanged, so the copy keeps every subject's ids, splits, labels and true
displacement."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy.special import softmax
from scipy.stats import norm
from sklearn.mixture import GaussianMixture
from tqdm import tqdm

from morphbias_fast.data import load_cohort
from morphbias_fast.data.appearance import noiseless
from morphbias_fast.data.cohort import _image_path
from morphbias_fast.data.template import load_tissues

LEVELS = np.array([0.0, 1 / 3, 2 / 3, 1.0])  # background, CSF, grey, white: the noiseless rendering's values


def n4_correct(scan: np.ndarray) -> np.ndarray:
    """SimpleITK's N4 bias-field correction, its field fitted inside an Otsu mask of the bright tissue."""
    img = sitk.GetImageFromArray(scan.astype(np.float32))
    mask = sitk.OtsuThreshold(img, 0, 1, 200)  # below the threshold 0, above 1: the brain's bright tissue
    return sitk.GetArrayFromImage(sitk.N4BiasFieldCorrection(img, mask))


def tissue_log_likelihood(image: np.ndarray, seed: int = 0) -> np.ndarray:
    """[*shape, 4] log p(intensity, class) of a four-class Gaussian mixture fitted to every voxel, classes
    ordered by mean (background, CSF, grey, white)."""
    v = image.reshape(-1, 1).astype(np.float64)
    gmm = GaussianMixture(4, random_state=seed).fit(v)
    order = np.argsort(gmm.means_.ravel())
    mean, sd = gmm.means_.ravel()[order], np.sqrt(gmm.covariances_.ravel()[order])  # 1-D "full" covariances
    return (norm.logpdf(v, mean, sd) + np.log(gmm.weights_[order])).reshape(*image.shape, 4)


def segment(scan: np.ndarray, seed: int = 0) -> np.ndarray:
    """A 2-D or 3-D scan -> its soft tissue rendering: N4, then the mixture's posteriors weighted by LEVELS."""
    return (softmax(tissue_log_likelihood(n4_correct(scan), seed), axis=-1) @ LEVELS).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cohort", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--splits", default="train,val,test",
                    help="keep only these splits (detection needs train and val; a subject takes about 1 s)")
    ap.add_argument("--wait", default=None, help="before each subject, run this shell command and wait while it "
                                                 "succeeds (to yield the CPU to a time-budgeted job)")
    args = ap.parse_args()
    cohort = load_cohort(args.cohort, load_images=False)
    keep = cohort.participants[cohort.participants["split"].isin(args.splits.split(","))]
    top = args.cohort.resolve()  # subject folders at the top are written below; derivatives (true fields) copied
    shutil.copytree(args.cohort, args.out, dirs_exist_ok=True,
                    ignore=lambda d, names: [n for n in names if n.startswith("sub-")] if Path(d).resolve() == top
                    else [])
    keep.to_csv(args.out / "participants.tsv", sep="\t", index=False)
    for pid in tqdm(keep["participant_id"], desc="segment"):
        while args.wait and subprocess.run(args.wait, shell=True).returncode == 0:
            time.sleep(15)
        (args.out / pid / "anat").mkdir(parents=True, exist_ok=True)
        src = nib.load(str(_image_path(args.cohort, pid)))
        data = np.asarray(src.dataobj, dtype=np.float32)
        seg = segment(data[..., 0] if data.ndim == 3 and data.shape[2] == 1 else data).reshape(data.shape)
        nib.save(nib.Nifti1Image(seg, src.affine, src.header), str(_image_path(args.out, pid)))
    atlas = nib.load(str(args.cohort / "atlas" / "atlas_T1w.nii.gz"))
    shape = atlas.shape
    tissues = load_tissues(dim=2 if len(shape) == 2 or shape[2] == 1 else 3)
    rendered = noiseless(tissues[None])[0].reshape(shape).astype(np.float32)
    nib.save(nib.Nifti1Image(rendered, atlas.affine, atlas.header), str(args.out / "atlas" / "atlas_T1w.nii.gz"))


if __name__ == "__main__":
    main()
