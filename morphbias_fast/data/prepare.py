"""`morphbias-fast prepare`: a real BIDS dataset in, a cohort in our layout out.

Every T1w image (found with pybids) is affinely aligned to the atlas with SimpleITK (Mattes mutual
information, so scanner contrast and intensity scale do not matter; moments initialisation; three
resolutions), resampled onto the atlas grid, and its intensities normalised robustly (divided by the 99th
percentile inside the atlas's brain mask, so one bright voxel or a 1000x scanner scale changes nothing). The
affine of each subject is kept as an ITK transform file, derivatives/prepare/sub-X/anat/
sub-X_from-T1w_to-atlas_xfm.txt, mapping atlas points to the subject's native points: a displacement field on
the atlas grid composes with it to reach native space. Skull stripping is out of scope: give brain-extracted
images, or brain masks with --mask-desc (sub-X_desc-<DESC>_mask.nii.gz beside each T1w), which are applied
before alignment.

The output is written to a temporary folder and renamed when complete."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk

from morphbias_fast.data.template import load_template
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_folder

PERCENTILE = 99.0          # robust intensity scale: this percentile inside the brain mask becomes 1
SHRINK = (4, 2, 1)         # multi-resolution pyramid (x voxel size)
SMOOTH_MM = (2.0, 1.0, 0.0)


@dataclass(frozen=True)
class PrepareConfig:
    atlas: Path | None = None        # atlas T1w image; default: the MNI152 2009 template at `spacing`
    atlas_mask: Path | None = None   # its brain mask; default: the template's (or voxels > 0 of --atlas)
    spacing: float = 2.0             # of the default atlas (mm)
    mask_desc: str | None = None     # BIDS desc of per-subject brain masks to apply before alignment
    iterations: int = 200            # optimiser iterations per resolution
    seed: int = 0                    # of the metric's voxel sampling


def itk_image(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """A float32 SimpleITK image of NIfTI-ordered `data` on `affine`, through a NIfTI file: ITK's own reader
    then does the RAS -> LPS conversion, so the geometry is exactly what ITK would read from disk."""
    with tempfile.TemporaryDirectory() as tmp:
        nib.save(nib.Nifti1Image(data, affine), f"{tmp}/image.nii.gz")
        return sitk.ReadImage(f"{tmp}/image.nii.gz", sitk.sitkFloat32)


def _atlas(cfg: PrepareConfig) -> tuple[sitk.Image, sitk.Image]:
    if cfg.atlas is None:
        tpl = load_template(3, cfg.spacing)
        return itk_image(tpl.image, tpl.affine), itk_image(tpl.mask.astype(np.float32), tpl.affine) > 0.5
    atlas = sitk.ReadImage(str(cfg.atlas), sitk.sitkFloat32)
    if atlas.GetDimension() != 3:
        raise MorphbiasError(f"--atlas {cfg.atlas} must be a 3-D image")
    mask = sitk.ReadImage(str(cfg.atlas_mask), sitk.sitkFloat32) > 0.5 if cfg.atlas_mask else atlas > 0
    return atlas, mask


def align(atlas: sitk.Image, subject: sitk.Image, iterations: int = 200, seed: int = 0) -> sitk.AffineTransform:
    """Affine transform mapping atlas points to subject points (fixed = atlas, moving = subject)."""
    init = sitk.CenteredTransformInitializer(atlas, subject, sitk.AffineTransform(3),
                                             sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.25, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 gradientMagnitudeTolerance=1e-8)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(list(SHRINK))
    reg.SetSmoothingSigmasPerLevel(list(SMOOTH_MM))
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    found = sitk.CompositeTransform(reg.Execute(atlas, subject))  # the optimised copy of `init`, wrapped
    return sitk.AffineTransform(found.GetNthTransform(found.GetNumberOfTransforms() - 1))


def _subjects(bids_dir: Path, mask_desc: str | None) -> list[tuple[str, Path, Path | None]]:
    """(participant_id, T1w path, mask path or None) of every subject's first T1w, via pybids."""
    try:
        import bids  # the optional [bids] extra, slow to import: only here
    except ImportError:
        raise MorphbiasError("prepare reads BIDS datasets with pybids: pip install '.[bids]'") from None
    if not (bids_dir / "dataset_description.json").exists():
        raise MorphbiasError(f"{bids_dir} is not a BIDS dataset (no dataset_description.json)")
    layout = bids.BIDSLayout(str(bids_dir), validate=False)
    out = []
    for sub in layout.get_subjects():
        t1 = layout.get(subject=sub, suffix="T1w", extension=[".nii", ".nii.gz"], return_type="filename")
        if not t1:
            raise MorphbiasError(f"{bids_dir}: sub-{sub} has no T1w image")
        mask = None
        if mask_desc:
            found = layout.get(subject=sub, suffix="mask", desc=mask_desc, extension=[".nii", ".nii.gz"],
                               return_type="filename")
            if not found:
                raise MorphbiasError(f"{bids_dir}: sub-{sub} has no mask with desc-{mask_desc}")
            mask = Path(found[0])
        out.append((f"sub-{sub}", Path(sorted(t1)[0]), mask))
    if not out:
        raise MorphbiasError(f"{bids_dir} has no subjects")
    return out


def _participants(bids_dir: Path, ids: list[str], label_column: str) -> pd.DataFrame:
    tsv = bids_dir / "participants.tsv"
    if not tsv.exists():
        raise MorphbiasError(f"{tsv} is missing: prepare needs the label column {label_column!r} there")
    df = pd.read_csv(tsv, sep="\t", dtype={"participant_id": str})
    if label_column not in df:
        raise MorphbiasError(f"{tsv} has no column {label_column!r} (choose one with --label-column)")
    missing = sorted(set(ids) - set(df.participant_id))
    if missing:
        raise MorphbiasError(f"{tsv} does not list {missing[0]}")
    return df.set_index("participant_id").loc[ids].reset_index()


def _normalise(img: np.ndarray, mask: np.ndarray, path: Path) -> np.ndarray:
    inside = img[mask]
    scale = np.percentile(inside, PERCENTILE) if inside.size else 0.0
    if not scale > 0:
        raise MorphbiasError(f"{path}: no signal inside the atlas brain mask after alignment")
    return np.clip(img / scale, 0, None).astype(np.float32)


def prepare(bids_dir, out_dir, cfg: PrepareConfig = PrepareConfig(), label_column: str = "disease",
            overwrite: bool = False, progress: bool = True) -> Path:
    """Write the cohort (module doc) to out_dir; returns it."""
    from tqdm import tqdm

    bids_dir, out_dir = Path(bids_dir), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise MorphbiasError(f"{out_dir} exists and is not empty (use --overwrite to replace it)")
    subjects = _subjects(bids_dir, cfg.mask_desc)
    df = _participants(bids_dir, [s[0] for s in subjects], label_column)
    atlas, atlas_mask = _atlas(cfg)
    mask_np = sitk.GetArrayFromImage(atlas_mask).T.astype(bool)
    with atomic_folder(out_dir) as tmp:
        (tmp / "atlas").mkdir()
        sitk.WriteImage(atlas, str(tmp / "atlas" / "atlas_T1w.nii.gz"), useCompression=True)
        sitk.WriteImage(sitk.Cast(atlas_mask, sitk.sitkUInt8), str(tmp / "atlas" / "atlas_mask.nii.gz"),
                        useCompression=True)
        grid_affine = nib.load(str(tmp / "atlas" / "atlas_T1w.nii.gz")).affine
        for pid, t1, mask in tqdm(subjects, desc="prepare", unit="subject", disable=not progress):
            moving = sitk.ReadImage(str(t1), sitk.sitkFloat32)
            if mask is not None:
                moving = moving * sitk.Cast(sitk.ReadImage(str(mask), sitk.sitkFloat32) > 0.5, sitk.sitkFloat32)
            tx = align(atlas, moving, cfg.iterations, cfg.seed)
            on_grid = sitk.GetArrayFromImage(sitk.Resample(moving, atlas, tx, sitk.sitkLinear, 0.0)).T
            anat = tmp / pid / "anat"
            anat.mkdir(parents=True)
            nib.save(nib.Nifti1Image(_normalise(on_grid, mask_np, t1), grid_affine), str(anat / f"{pid}_T1w.nii.gz"))
            xfm = tmp / "derivatives" / "prepare" / pid / "anat"
            xfm.mkdir(parents=True)
            sitk.WriteTransform(tx, str(xfm / f"{pid}_from-T1w_to-atlas_xfm.txt"))
        df.to_csv(tmp / "participants.tsv", sep="\t", index=False)
        desc = {"Name": f"{bids_dir.name}, aligned to the atlas by morphbias-fast prepare", "BIDSVersion": "1.9.0",
                "DatasetType": "derivative", "GeneratedBy": [{"Name": "morphbias-fast prepare"}],
                "PrepareConfig": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
                "Source": str(bids_dir.resolve())}
        (tmp / "dataset_description.json").write_text(json.dumps(desc, indent=2) + "\n")
    return out_dir


def read_affine(cohort_dir, pid: str) -> sitk.Transform:
    """The affine prepare found for `pid`: atlas points -> the subject's native points."""
    path = Path(cohort_dir) / "derivatives" / "prepare" / pid / "anat" / f"{pid}_from-T1w_to-atlas_xfm.txt"
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: {cohort_dir} was not made by `morphbias-fast prepare`")
    return sitk.ReadTransform(str(path))
