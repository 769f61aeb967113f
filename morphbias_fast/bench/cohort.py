"""`morphbias-fast bench cohort`: what a synthetic cohort costs and how exact it is (issue 15): the time synth
takes at the default size, SimpleITK's reproduction of each subject's warped tissue maps from its stored field
(correlation with our noiseless rendering; SimpleITK is the independent implementation of ITK's field
convention), and a figure with the atlas beside one subject per site."""
from __future__ import annotations

import time
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

from morphbias_fast.data import appearance, fields
from morphbias_fast.data.synth import Generator, SynthConfig, read_synth_config, synthesize
from morphbias_fast.data.template import load_tissues
from morphbias_fast.files import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)


def _itk_maps(cohort: Path, cfg: SynthConfig) -> tuple[sitk.Image, list[sitk.Image]]:
    ref = fields.read_grid(cohort / "atlas" / "atlas_T1w.nii.gz", sitk.sitkFloat64)
    maps = []
    for p in load_tissues(cfg.dim, cfg.spacing):
        img = sitk.GetImageFromArray(p.T.astype(np.float64))  # numpy [x, y(, z)] -> ITK's reversed index order
        img.CopyInformation(ref)
        maps.append(img)
    return ref, maps


def tissue_agreement(cohort: Path, rows) -> np.ndarray:
    """Per subject (positions `rows` of participants.tsv): the correlation between the noiseless rendering of
    the tissue maps warped by SimpleITK with the stored field and of the same maps warped by our generator."""
    cohort = Path(cohort)
    cfg = read_synth_config(cohort)
    gen = Generator(cfg)
    ref, maps = _itk_maps(cohort, cfg)
    out = []
    for row in rows:
        pid = gen.participants.participant_id.iloc[row]
        disp = sitk.ReadImage(str(cohort / "derivatives" / "synth" / pid / "anat" /
                                  f"{pid}_desc-displacement_xfm.nii.gz"), sitk.sitkVectorFloat64)
        tx = sitk.DisplacementFieldTransform(disp)
        theirs = np.stack([sitk.GetArrayFromImage(sitk.Resample(m, ref, tx, sitk.sitkLinear, 0.0)).T for m in maps])
        ours = gen.warped_tissues(gen.render(np.array([row]))[0])[0]
        out.append(np.corrcoef(appearance.noiseless(theirs[None]).ravel(),
                               appearance.noiseless(ours[None]).ravel())[0, 1])
    return np.array(out)


def site_figure(cohort: Path, path: Path) -> None:
    """The atlas and the first subject of each site (the middle axial slice in 3-D), as a PNG."""
    gen = Generator(read_synth_config(cohort))
    df = gen.participants
    sites = sorted(df.site.unique()) if "site" in df else [None]
    fig, axes = plt.subplots(1, 1 + len(sites), figsize=(3 * (1 + len(sites)), 3.4))
    panels = [("atlas (MNI152 T1)", gen.tpl.image)]
    for s in sites:
        row = int(np.flatnonzero(df.site == s)[0]) if s is not None else 0
        panels.append((f"site {s}: {df.participant_id.iloc[row]}", gen.render(np.array([row]))[1][0]))
    for ax, (title, img) in zip(axes, panels):
        sl = img if img.ndim == 2 else img[:, :, img.shape[2] // 2]
        ax.imshow(np.rot90(sl), cmap="gray")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)


def run(out_dir: Path, appearance_name: str = "mri", seed: int = 0, check: int | None = None) -> dict:
    """Synthesize a default-size cohort in OUT_DIR/cohort (timed), check `check` subjects (all when None) with
    SimpleITK, and draw OUT_DIR/sites.png."""
    out_dir = Path(out_dir)
    cfg = SynthConfig(appearance=appearance_name, seed=seed)
    t0 = time.perf_counter()
    synthesize(out_dir / "cohort", cfg, overwrite=True)
    seconds = time.perf_counter() - t0
    n = cfg.n_train + cfg.n_val + cfg.n_test
    r = tissue_agreement(out_dir / "cohort", range(n if check is None else min(check, n)))
    site_figure(out_dir / "cohort", out_dir / "sites.png")
    return {"appearance": appearance_name, "seed": seed, "subjects": n, "synth_seconds": seconds,
            "tissue_r_min": float(r.min()), "tissue_r_mean": float(r.mean()), "subjects_checked": len(r),
            "figure": str(out_dir / "sites.png")}
