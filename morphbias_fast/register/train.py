"""Training the registration INR over a cohort's training subjects, and fitting latents with the network
frozen. Batches are a pure function of (seed, step), so a resumed run sees the same batches as an
uninterrupted one, and a torchrun job the same as one process."""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from morphbias_fast.files import atomic_path
from morphbias_fast.register.config import INRConfig
from morphbias_fast.register.distributed import Dist
from morphbias_fast.register.images import Images
from morphbias_fast.register.loss import loss_terms
from morphbias_fast.register.model import build_model


def step_generator(seed: int, step: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2**63))


def draw_points(imgs: Images, n: int, cfg: INRConfig, gen: torch.Generator, points: int | None = None):
    """Where n subjects are sampled this step: flat voxel indices [n, P] (ours) or continuous voxel positions
    [n, P, D] from the paper's N(0, coord_std) (recipe paper); drawn for all n at once (see sample_indices)."""
    points = cfg.points if points is None else points
    if cfg.recipe == "paper":
        return imgs.sample_positions(n, points, gen, cfg.coord_std)
    return imgs.sample_indices(n, points, gen)


def make_optimizer(model, latents: torch.nn.Parameter, cfg: INRConfig) -> torch.optim.Optimizer:
    enc = [p for n, p in model.named_parameters() if n.startswith("encoding.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoding.")]
    lr_net = cfg.lr_network if cfg.arch == "hashgrid" else cfg.lr_siren
    groups = [{"params": rest, "lr": lr_net, "weight_decay": cfg.weight_decay},
              {"params": [latents], "lr": cfg.lr_latent, "weight_decay": 0.0}]
    if enc:
        groups.append({"params": enc, "lr": cfg.lr_encoding, "weight_decay": 0.0})
    for g in groups:
        g["base_lr"] = g["lr"]
    # The paper's AdamW (decoupled decay) only where a decay is asked for: ours stays plain Adam.
    return torch.optim.AdamW(groups) if cfg.weight_decay else torch.optim.Adam(groups)


def set_learning_rate(opt: torch.optim.Optimizer, cfg: INRConfig, step: int, n_subjects: int) -> None:
    """lr = base * lr_decay^epochs, epochs = step * batch / n_subjects: a function of the step alone, so a
    resumed run continues the schedule exactly (the paper's ExponentialLR, applied per step)."""
    if cfg.lr_decay == 1.0:
        return
    factor = cfg.lr_decay ** (step * min(cfg.batch_subjects, n_subjects) / n_subjects)
    for g in opt.param_groups:
        g["lr"] = g["base_lr"] * factor


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


class _Trainer:
    """The state of one training run: network, this rank's latents, optimiser, step and clock."""

    def __init__(self, imgs: Images, n_subjects: int, cfg: INRConfig, resume: dict | None, dist: Dist):
        torch.manual_seed(cfg.seed)
        self.imgs, self.n_subjects, self.cfg, self.dist = imgs, n_subjects, cfg, dist
        self.model = build_model(cfg.arch, imgs.dim, cfg.latent_dim).to(imgs.device)
        owned = torch.as_tensor(dist.owned(n_subjects))
        self.local = torch.full((n_subjects,), -1, dtype=torch.long)
        self.local[owned] = torch.arange(len(owned))
        init = torch.randn(n_subjects, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed)).mul_(0.01)
        self.latents = torch.nn.Parameter(init[owned].to(imgs.device))
        self.net = self.model
        if dist.active:
            device_ids = [imgs.device.index] if imgs.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=device_ids)
            self.latents.register_hook(lambda g: g / dist.world)
        self.opt = make_optimizer(self.model, self.latents, cfg)
        self.step, elapsed = 0, 0.0
        if resume is not None:
            self.model.load_state_dict(resume["model"])
            with torch.no_grad():
                self.latents.copy_(resume["latents"])
            self.opt.load_state_dict(resume["optimizer"])
            self.step, elapsed = resume["step"], resume["elapsed"]
        self.start = time.monotonic() - elapsed

    def one_step(self) -> dict:
        """One optimiser step on the batch of this step. Distributed runs compute exactly the single-process
        gradient: each rank's loss is weighted by (its subjects in the batch) * world / batch, DDP averages the
        network gradient over ranks, and latent gradients (local, not averaged) are divided by world."""
        cfg, dist = self.cfg, self.dist
        gen = step_generator(cfg.seed, self.step, 0)
        subjects = torch.randperm(self.n_subjects, generator=gen)[: cfg.batch_subjects]
        flat = draw_points(self.imgs, len(subjects), cfg, gen)
        mine = torch.nonzero(subjects % dist.world == dist.rank).flatten()
        weight = len(mine) * dist.world / len(subjects)
        if len(mine) == 0:  # nothing of ours in this batch: a zero-weight pass keeps the ranks in step
            mine = torch.zeros(1, dtype=torch.long)
        sel = subjects[mine]
        terms = loss_terms(self.net, self.imgs, self.latents[self.local[sel].to(self.imgs.device)], sel, flat[mine],
                           cfg)
        self.opt.zero_grad(set_to_none=True)
        (terms["total"] * weight).backward()
        set_learning_rate(self.opt, cfg, self.step, self.n_subjects)
        self.opt.step()
        self.step += 1
        return terms

    def state(self) -> dict:
        return {"model": self.model.state_dict(), "latents": self.latents.detach().cpu(),
                "optimizer": self.opt.state_dict(), "step": self.step, "elapsed": time.monotonic() - self.start,
                "config": asdict(self.cfg), "phase": "train"}


def train_inr(imgs: Images, n_subjects: int, cfg: INRConfig, deadline: float | None,
              ckpt_path: Path | None = None, resume: dict | None = None, progress: bool = True, dist: Dist = Dist()):
    """Train the network and the latents of the training subjects this rank owns.
    Returns (model, latents of dist.owned(n_subjects), info). With `ckpt_path`, a checkpoint is written every
    cfg.checkpoint_every seconds, at the end, and on Ctrl-C (after the step, then KeyboardInterrupt)."""
    t = _Trainer(imgs, n_subjects, cfg, resume, dist)
    last_ckpt = time.monotonic()
    interrupted = {"flag": False}

    def on_sigint(signum, frame):  # finish the step, write a checkpoint, then stop
        interrupted["flag"] = True

    old = signal.signal(signal.SIGINT, on_sigint) if ckpt_path is not None else None
    bar = tqdm(total=cfg.steps, initial=t.step, desc=f"register ({cfg.arch})", unit="step", disable=not progress)
    try:
        while dist.all_continue((cfg.steps is None or t.step < cfg.steps)
                                and (deadline is None or time.monotonic() < deadline)):
            terms = t.one_step()
            bar.update(1)
            if t.step % 20 == 0:
                bar.set_postfix(sim=f"{terms['sim'].item():.2e}")
            if ckpt_path is not None and (interrupted["flag"] or time.monotonic() - last_ckpt > cfg.checkpoint_every):
                save_checkpoint(ckpt_path, t.state())
                last_ckpt = time.monotonic()
                if interrupted["flag"]:
                    raise KeyboardInterrupt
    finally:
        bar.close()
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if ckpt_path is not None:
        save_checkpoint(ckpt_path, t.state())
    return t.model, t.latents.detach(), {"steps": t.step, "seconds": time.monotonic() - t.start}


FIT_ADAM_EPS = 1e-4


def fit_horizon(cfg: INRConfig, step_seconds: float, seconds_left: float | None) -> int:
    """How many fitting steps to plan: cfg.fit_steps, or as many as the time left allows at the measured
    seconds per step (5% kept back, as a step can run slower than the one measured)."""
    if seconds_left is None:
        return cfg.fit_steps
    return int(min(cfg.fit_steps, 2 + max(0.0, 0.95 * seconds_left) // max(step_seconds, 1e-9)))


def fit_latents(model, imgs: Images, subjects: np.ndarray, cfg: INRConfig, deadline: float | None,
                init: torch.Tensor, progress: bool = True, global_index: np.ndarray | None = None,
                n_total: int | None = None, dist: Dist | None = None) -> tuple[torch.Tensor, dict]:
    """Latents of subjects with the network frozen, all subjects in parallel (batches of subjects).
    They start at `init` (the mean training latent: the cohort's typical deformation) rather than near zero,
    so the few steps a time budget leaves are spent on what differs between subjects. The learning rate falls
    from lr_fit to 0 along a half cosine over the planned steps, so that the fit ends converged: at a constant
    rate Adam ends still moving, its last steps' point draws decide the latents (the endpoint error on mri
    cohorts was 46% instead of 39%, and one process and two parted a thousandfold more than their networks;
    bench/RESULTS.md). With a deadline the plan is the number of steps that fit, measured on the second step
    (the first pays for allocations) and agreed by every process of a distributed run."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    idx = torch.as_tensor(subjects)
    # Points are drawn for all n_total subjects of the job (global_index: ours among them), so a
    # distributed run fits each subject on the same points as a single process.
    global_index = np.arange(len(idx)) if global_index is None else global_index
    n_total = len(idx) if n_total is None else n_total
    z = torch.nn.Parameter(init.detach().to(imgs.device).expand(len(idx), cfg.latent_dim).clone())
    # eps 1e-4, not Adam's 1e-8: a latent component whose gradient is ~0 would otherwise take a full-size step
    # decided by rounding noise (one process and two parted 13x more at 1e-8; bench/RESULTS.md)
    opt = torch.optim.Adam([z], lr=cfg.lr_fit, eps=FIT_ADAM_EPS)
    start, step, horizon = time.monotonic(), 0, cfg.fit_steps
    batch = max(cfg.batch_subjects * 4, 1)
    n_batches = math.ceil(len(idx) / batch)
    points = max(cfg.points // 2, 1)
    bar = tqdm(total=cfg.fit_steps, desc="fit latents", unit="step", disable=not progress)
    while step < horizon and (deadline is None or time.monotonic() < deadline):
        t_step = time.monotonic()
        gen = step_generator(cfg.seed, step, 1)
        flat = draw_points(imgs, n_total, cfg, gen, points)[torch.as_tensor(global_index)]
        opt.zero_grad(set_to_none=True)
        for b in range(n_batches):  # every subject once per step
            sel = torch.arange(b * batch, min(len(idx), (b + 1) * batch))
            terms = loss_terms(model, imgs, z[sel.to(imgs.device)], idx[sel], flat[sel], cfg)
            # A sum over subjects of per-subject losses: each latent's gradient does not depend on grouping.
            (terms["total"] * len(sel)).backward()
        for g in opt.param_groups:
            g["lr"] = cfg.lr_fit * 0.5 * (1 + math.cos(math.pi * step / horizon))
        opt.step()
        step += 1
        if step == 2 and deadline is not None:
            now = time.monotonic()
            mine = fit_horizon(cfg, now - t_step, deadline - now)
            horizon = min(dist.gather(mine)) if dist is not None else mine
            bar.total = horizon
        bar.update(1)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    return z.detach(), {"steps": step, "planned_steps": horizon, "seconds": time.monotonic() - start}
