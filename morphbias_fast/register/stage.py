"""The `register` stage: train one INR on the train split, fit latents of val/test subjects with the network
frozen, measure, and write RUN/register/{latents.npz, model.pt, metrics.json, atlas_T1w.nii.gz}."""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from morphbias_fast.data import Cohort, load_cohort, read_nifti
from morphbias_fast.data.synth import read_synth_config
from morphbias_fast import gates
from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.files import atomic_path, write_json
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.denoise import curvature_diffusion
from morphbias_fast.register.distributed import Dist, init_distributed, rank_device
from morphbias_fast.register.images import Images
from morphbias_fast.register.quality import split_metrics
from morphbias_fast.register.train import fit_latents, train_inr
from morphbias_fast.runfolder import RegisterFolder, RunFolder


@dataclass(frozen=True)
class Config:
    cohort: Path
    inr: INRConfig = field(default_factory=INRConfig)
    resume: bool = False
    label_column: str = "disease"
    progress: bool = True
    atlas: Path | None = None  # default: the cohort's atlas/atlas_T1w.nii.gz (another must be on its grid)


@dataclass
class Result:
    metrics: dict  # empty on ranks > 0 of a torchrun job

    @property
    def warnings(self) -> list[str]:
        return self.metrics.get("warnings", [])

    def summary(self) -> str:
        lines = []
        for split, m in self.metrics.get("splits", {}).items():
            epe = f", endpoint error {m['epe_mm']:.2f} mm ({100 * m['epe_ratio']:.0f}% of the true displacement)" \
                if "epe_mm" in m else ""
            lines.append(f"{split}: image MSE {m['image_mse']:.2e}{epe}, "
                         f"max folded share {m['folded_fraction_max']:.2%}")
        return "\n".join(lines) + gates.say_all(self.warnings)


@dataclass
class _Inputs:
    cohort: Cohort
    imgs: Images
    mask: np.ndarray
    spacing: np.ndarray
    device: torch.device
    atlas_path: Path


def _load_inputs(cfg: Config) -> _Inputs:
    cohort = load_cohort(cfg.cohort, label_column=cfg.label_column)
    atlas_path = cfg.atlas if cfg.atlas is not None else cohort.atlas_path
    if atlas_path is None:
        raise MorphbiasError(f"{cohort.root}: register needs the atlas at atlas/atlas_T1w.nii.gz (or --atlas)")
    atlas, atlas_affine = read_nifti(atlas_path)
    if atlas.shape != cohort.images.shape[1:]:
        raise MorphbiasError(f"{atlas_path} has shape {atlas.shape}, the images {cohort.images.shape[1:]}: the atlas "
                             f"must be on the cohort's grid")
    mask = read_nifti(cohort.mask_path)[0] > 0.5 if cohort.mask_path else np.ones(atlas.shape, bool)
    device = rank_device(resolve_device(cfg.inr.device))
    spacing = np.sqrt((atlas_affine[:3, :atlas.ndim] ** 2).sum(0))
    images = cohort.images
    if cfg.inr.denoise == "curvature":
        images = curvature_diffusion(images, spacing, progress=cfg.progress)
    return _Inputs(cohort, Images(images, atlas, device), mask, spacing, device, Path(atlas_path))


def _resume_state(files: RegisterFolder, ckpt_path: Path, cfg: Config, device: torch.device) -> dict | None:
    if not cfg.resume:
        return None
    if not ckpt_path.exists():
        raise MorphbiasError(f"--resume: no checkpoint at {ckpt_path}")
    state = torch.load(ckpt_path, map_location=device, weights_only=False)
    if state["config"] != asdict(cfg.inr):
        raise MorphbiasError(f"--resume: {ckpt_path} was written with other settings; rerun with the same ones")
    return state


def _latents(inp: _Inputs, cfg: Config, files: RegisterFolder, dist: Dist, t0: float):
    """(model, latents of every subject [N, K], train info, fit info): train on the train split, then fit
    latents with the network frozen, each rank's share gathered. Our recipe fits every subject, the training
    subjects again too: their training latents are not a converged fit (each is updated only in the steps that
    draw it, about one in 30, while the network moves under it; on an mri cohort they were 60% off the true
    field where a fit to the final network is 37%, bench/RESULTS.md), and fitting all alike puts train and val
    latents, which discovery pools, on one footing. The paper's recipe keeps its training latents, as
    published, and fits only val and test."""
    inr, cohort = cfg.inr, inp.cohort
    ckpt_path = files.checkpoint(dist.rank if dist.active else None)
    state = _resume_state(files, ckpt_path, cfg, inp.device)
    budget = inr.time_budget
    spent = state["elapsed"] if state is not None else 0.0  # a resumed run keeps the budget it had left
    train_deadline = t0 + budget * (1 - inr.fit_share) - spent if budget else None
    tr = cohort.index("train")
    show = cfg.progress and dist.rank == 0
    # training sees only training subjects
    model, z_mine, info_train = train_inr(inp.imgs.subset(tr), len(tr), inr, train_deadline, ckpt_path, state,
                                          show, dist)
    z_all = torch.empty(len(cohort.ids), inr.latent_dim)
    for owned, z in dist.gather((dist.owned(len(tr)), z_mine.cpu())):
        z_all[tr[owned]] = z
    fit = np.arange(len(cohort.ids)) if inr.recipe == "ours" else np.setdiff1d(np.arange(len(cohort.ids)), tr)
    mine = dist.owned(len(fit))
    z_fit, info_fit = fit_latents(model, inp.imgs.subset(fit), mine, inr, t0 + budget - spent if budget else None,
                                  z_all[tr].mean(0), show, global_index=mine, n_total=len(fit), dist=dist)
    for owned, z in dist.gather((mine, z_fit.cpu())):
        z_all[fit[owned]] = z
    return model, z_all, info_train, info_fit


def _write(files: RegisterFolder, inp: _Inputs, cfg: Config, model, z_all: torch.Tensor, metrics: dict) -> None:
    files.write_latents(inp.cohort.ids, inp.cohort.splits, z_all.numpy())
    with atomic_path(files.model) as tmp:
        torch.save({"model": model.state_dict(), "arch": cfg.inr.arch, "dim": inp.imgs.dim,
                    "latent_dim": cfg.inr.latent_dim, "shape": inp.imgs.shape, "config": asdict(cfg.inr)}, tmp)
    with atomic_path(files.atlas) as tmp:
        shutil.copyfile(inp.atlas_path, tmp)
    write_json(files.metrics, metrics)
    for stale in files.checkpoints():
        stale.unlink()  # the run is complete: model.pt and latents.npz hold everything


def similarity_for(cohort_dir: Path) -> str:
    """The similarity `auto` means: mse where every subject is the atlas image warped (a template cohort, the
    atlas is the generator), lncc wherever contrast, gain or bias field differ from the atlas (mri cohorts and
    real scans): mse would pull the field to match intensities, not anatomy (bench/RESULTS.md)."""
    synth = read_synth_config(cohort_dir)
    return "mse" if synth is not None and synth.appearance == "template" else "lncc"


def run(run: RunFolder, cfg: Config) -> Result:
    t0 = time.monotonic()
    if cfg.inr.similarity == "auto":
        cfg = replace(cfg, inr=replace(cfg.inr, similarity=similarity_for(cfg.cohort)))
    inp = _load_inputs(cfg)
    dist = init_distributed(inp.device)
    files = run.register
    files.path.mkdir(parents=True, exist_ok=True)
    model, z_all, info_train, info_fit = _latents(inp, cfg, files, dist, t0)
    seconds = time.monotonic() - t0
    if dist.rank != 0:  # rank 0 measures and writes; the others are done
        dist.finish()
        return Result({})
    metrics = {"config": asdict(cfg.inr), "train": {**info_train}, "fit": {**info_fit}, "seconds_total": seconds,
               "device": str(inp.device), "processes": dist.world, "splits": {}}
    model.eval()
    for split in ("train", "val", "test"):
        rows = inp.cohort.index(split)
        if len(rows):
            metrics["splits"][split] = split_metrics(model, inp.imgs, z_all[rows].to(inp.device), rows, inp.cohort,
                                                     inp.mask, inp.spacing, inp.atlas_path)
    metrics["seconds_with_metrics"] = time.monotonic() - t0
    # both divided by the same atlas percentile in Images, so their ratio is the raw images' to the raw atlas's
    scaled = inp.imgs.images.cpu().numpy().reshape(-1, *inp.imgs.shape)
    metrics["warnings"] = (gates.intensity_scale(scaled, inp.imgs.atlas.cpu().numpy()[0, 0], inp.mask)
                           + gates.registration(metrics))
    _write(files, inp, cfg, model, z_all, metrics)
    dist.finish()
    return Result(metrics)
