"""The `register` stage: train on the train split, fit latents of val/test subjects with the network frozen,
measure, and write RUN_DIR/register/{latents.npz, model.pt, metrics.json, atlas_T1w.nii.gz}."""
from __future__ import annotations

import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from morphbias_fast.devices import resolve_device
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.io import atomic_path, write_json
from morphbias_fast.register.model import build_model
from morphbias_fast.register.train import (Images, RegisterConfig, decode_displacement, fit_latents, train,
                                           warp_atlas)


def split_metrics(model, imgs: Images, z: torch.Tensor, rows: np.ndarray, cohort, mask: np.ndarray,
                  spacing: np.ndarray, batch: int = 64) -> dict:
    """Image MSE, endpoint error (mm, inside the brain mask) against the true field when the cohort has it,
    and the share of folded voxels as SimpleITK's DisplacementFieldJacobianDeterminant measures it."""
    import SimpleITK as sitk

    from morphbias_fast.data import fields

    ref = sitk.ReadImage(str(cohort.atlas_path))
    mse, epe, true_mag, folded = [], [], [], []
    for lo in range(0, len(rows), batch):
        sel = rows[lo: lo + batch]
        u = decode_displacement(model, z[lo: lo + batch], imgs.shape)
        warped = warp_atlas(imgs, u).reshape(len(sel), -1)
        mse += ((warped - imgs.images[torch.as_tensor(sel, device=imgs.device)]) ** 2).mean(1).tolist()
        for k, r in enumerate(sel):
            u_k = u[k].cpu().numpy()
            itk = fields.to_itk(u_k, ref)
            folded.append(fields.folded_fraction(itk, mask))
            truth_path = cohort.displacement_path(cohort.ids[r])
            if truth_path is not None:
                truth = fields.from_itk(sitk.ReadImage(str(truth_path), sitk.sitkVectorFloat64))
                diff = np.sqrt((((u_k - truth) * spacing.reshape(-1, *[1] * imgs.dim)) ** 2).sum(0))
                mag = np.sqrt(((truth * spacing.reshape(-1, *[1] * imgs.dim)) ** 2).sum(0))
                epe.append(float(diff[mask].mean()))
                true_mag.append(float(mag[mask].mean()))
    out = {"n": int(len(rows)), "image_mse": float(np.mean(mse)), "folded_fraction_max": float(np.max(folded)),
           "folded_fraction_mean": float(np.mean(folded)),
           "subjects_over_0.1pct_folded": int(np.sum(np.array(folded) > 1e-3))}
    if epe:
        out.update({"epe_mm": float(np.mean(epe)), "true_displacement_mm": float(np.mean(true_mag)),
                    "epe_ratio": float(np.mean(epe) / np.mean(true_mag))})
    return out


def run_register(cohort_dir, run_dir, cfg: RegisterConfig, resume: bool = False, progress: bool = True,
                 label_column: str = "disease") -> dict:
    from morphbias_fast.data import load_cohort
    from morphbias_fast.data.cohort import read_nifti

    t0 = time.monotonic()
    cohort = load_cohort(cohort_dir, label_column=label_column)
    if cohort.atlas_path is None:
        raise MorphbiasError(f"{cohort.root}: register needs the atlas at atlas/atlas_T1w.nii.gz")
    atlas, atlas_affine = read_nifti(cohort.atlas_path)
    if atlas.shape != cohort.images.shape[1:]:
        raise MorphbiasError(f"{cohort.atlas_path} has shape {atlas.shape}, the images {cohort.images.shape[1:]}")
    mask_path = cohort.root / "atlas" / "atlas_mask.nii.gz"
    mask = read_nifti(mask_path)[0] > 0.5 if mask_path.exists() else np.ones(atlas.shape, bool)
    device = resolve_device(cfg.device)
    imgs = Images(cohort.images, atlas, device)
    spacing = np.sqrt((atlas_affine[:3, :atlas.ndim] ** 2).sum(0))

    dist = _init_distributed(device)
    out = Path(run_dir) / "register"
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / ("train_state.pt" if not dist.active else f"train_state_rank{dist.rank}.pt")
    state = None
    if resume:
        if not ckpt_path.exists():
            raise MorphbiasError(f"--resume: no checkpoint at {ckpt_path}")
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        if state["config"] != asdict(cfg):
            raise MorphbiasError(f"--resume: {ckpt_path} was written with other settings; rerun with the same ones")
    budget = cfg.time_budget
    spent = state["elapsed"] if state is not None else 0.0  # a resumed run keeps the budget it had left
    train_deadline = t0 + budget * (1 - cfg.fit_share) - spent if budget else None
    tr = cohort.index("train")
    rest = np.setdiff1d(np.arange(len(cohort.ids)), tr)
    train_imgs = imgs.subset(tr)  # training sees only training subjects
    show = progress and dist.rank == 0
    model, z_mine, info_train = train(train_imgs, len(tr), cfg, train_deadline, ckpt_path, state, show, dist)
    z_train = torch.empty(len(tr), cfg.latent_dim)
    for owned, z in _gather(dist, (dist.owned(len(tr)), z_mine.cpu())):
        z_train[owned] = z
    fit_deadline = t0 + budget if budget else None
    fit_imgs = imgs.subset(rest)
    mine = dist.owned(len(rest))
    z_fit, info_fit = fit_latents(model, fit_imgs, mine, cfg, fit_deadline, z_train.mean(0), show,
                                  global_index=mine, n_total=len(rest))
    z_rest = torch.empty(len(rest), cfg.latent_dim)
    for owned, z in _gather(dist, (mine, z_fit.cpu())):
        z_rest[owned] = z
    seconds = time.monotonic() - t0
    if dist.rank != 0:  # rank 0 measures and writes; the others are done
        _finish_distributed(dist)
        return {}

    z_all = torch.empty(len(cohort.ids), cfg.latent_dim)
    z_all[tr] = z_train
    z_all[rest] = z_rest
    metrics = {"config": asdict(cfg), "train": {**info_train}, "fit": {**info_fit}, "seconds_total": seconds,
               "device": str(device), "processes": dist.world, "splits": {}}
    model.eval()
    for split in ("train", "val", "test"):
        rows = cohort.index(split)
        if len(rows):
            m = split_metrics(model, imgs, z_all[rows].to(device), rows, cohort, mask, spacing)
            metrics["splits"][split] = m
    metrics["seconds_with_metrics"] = time.monotonic() - t0

    with atomic_path(out / "latents.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, participant_id=cohort.ids.astype(str), split=cohort.splits.astype(str), z=z_all.numpy())
    with atomic_path(out / "model.pt") as tmp:
        torch.save({"model": model.state_dict(), "arch": cfg.arch, "dim": imgs.dim, "latent_dim": cfg.latent_dim,
                    "shape": imgs.shape, "config": asdict(cfg)}, tmp)
    with atomic_path(out / "atlas_T1w.nii.gz") as tmp:
        shutil.copyfile(cohort.atlas_path, tmp)
    write_json(out / "metrics.json", metrics)
    for stale in out.glob("train_state*.pt"):
        stale.unlink()  # the run is complete: model.pt and latents.npz hold everything
    _finish_distributed(dist)
    return metrics


def _init_distributed(device: torch.device):
    """A Dist for this process: torchrun sets WORLD_SIZE/RANK; gloo on the CPU, NCCL on GPUs."""
    import os

    from morphbias_fast.register.train import Dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as tdist

    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Dist(rank=tdist.get_rank(), world=tdist.get_world_size())


def _gather(dist, obj) -> list:
    if not dist.active:
        return [obj]
    import torch.distributed as tdist

    out = [None] * dist.world
    tdist.all_gather_object(out, obj)
    return out


def _finish_distributed(dist) -> None:
    if dist.active:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()


def load_registration(run_dir, device: str = "cpu"):
    """(model, latents dict participant_id -> z tensor, checkpoint dict) of a finished register stage."""
    reg = Path(run_dir) / "register"
    for name in ("model.pt", "latents.npz"):
        if not (reg / name).exists():
            raise MorphbiasError(f"{reg / name} is missing: run `morphbias-fast register` first")
    ckpt = torch.load(reg / "model.pt", map_location=device, weights_only=False)
    model = build_model(ckpt["arch"], ckpt["dim"], ckpt["latent_dim"]).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    lat = np.load(reg / "latents.npz")
    z = {pid: torch.as_tensor(v, device=device) for pid, v in zip(lat["participant_id"], lat["z"])}
    return model, z, ckpt
