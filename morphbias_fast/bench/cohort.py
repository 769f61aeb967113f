"""`morphbias-fast bench cohort`: what a synthetic cohort costs and how exact it is (issue 15): the time synth
takes at the default size, SimpleITK's reproduction of each subject's warped tissue maps from its stored field
(correlation with our noiseless rendering; SimpleITK is the independent implementation of ITK's field
convention), a figure with the atlas beside one subject per site, and which similarity puts its optimum at
the true field: each subject's loss against the atlas warped by s x its true field, s in SCALES, for mse and
lncc (the registration's default per appearance rests on this)."""
from __future__ import annotations

import time
from pathlib import Path

import matplotlib
import numpy as np
import SimpleITK as sitk

import torch

from morphbias_fast.data import appearance, fields, load_cohort, read_nifti
from morphbias_fast.data.synth import Generator, SynthConfig, read_synth_config, synthesize
from morphbias_fast.data.template import load_tissues
from morphbias_fast.files import atomic_path
from morphbias_fast.register import Images, patch_offsets, similarity

SCALES = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5)

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


def similarity_optimum(cohort: Path, n: int = 50) -> dict:
    """For mse and lncc: the share of the first n subjects whose loss over s x true field (s in SCALES) is
    smallest at s = 1, and the mean of the best s."""
    c = load_cohort(cohort)
    imgs = Images(c.images[:n], read_nifti(c.atlas_path)[0], torch.device("cpu"))
    brain = torch.as_tensor(np.flatnonzero(imgs.atlas.numpy().ravel() > 0.1))[None]
    vox, off = imgs.coords(brain), patch_offsets(imgs.dim)
    best = {"mse": [], "lncc": []}
    for row, pid in enumerate(c.ids[:n]):
        u = torch.as_tensor(fields.from_itk(sitk.ReadImage(str(c.displacement_path(pid)), sitk.sitkVectorFloat64)),
                            dtype=torch.float32).reshape(imgs.dim, -1)[:, brain[0]].T[None]
        subject = torch.tensor([row])
        loss = {"mse": [similarity("mse", imgs.images[row][brain], imgs.atlas_at(vox, s * u)).item()
                        for s in SCALES],
                "lncc": [similarity("lncc", imgs.patches(subject, vox, off),
                                    imgs.atlas_at(vox[:, :, None] + off, s * u[:, :, None])).item() for s in SCALES]}
        for k, v in loss.items():
            best[k].append(SCALES[int(np.argmin(v))])
    return {k: {"share_best_at_truth": float(np.mean(np.array(v) == 1.0)), "mean_best_scale": float(np.mean(v)),
                "subjects": len(v)} for k, v in best.items()}


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
            "figure": str(out_dir / "sites.png"), "scales": list(SCALES),
            "similarity_optimum": similarity_optimum(out_dir / "cohort")}
