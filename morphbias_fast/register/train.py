"""Training the registration INR over a cohort, fitting latents of new subjects, metrics, checkpoints.

Loss per step (B subjects x P points): similarity(subject(x), atlas(x + u(x, z))) + alpha * mean|u|
+ beta * mean(z^2) + gamma * mean |log det(I + du/dx)| + fold_weight * mean relu(fold_margin - det), the
determinant from the forward-mode Jacobian of the model (voxel units). Batches are a pure function of (seed, step), so a
resumed run sees the same batches as an uninterrupted one.
"""
from __future__ import annotations

import math
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from morphbias_fast.data.deform import warp
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.io import atomic_path
from morphbias_fast.register.model import build_model

DET_EPS = 1e-3


@dataclass(frozen=True)
class RegisterConfig:
    arch: str = "hashgrid"
    latent_dim: int = 128
    steps: int | None = None          # training steps (None: until the time budget)
    time_budget: float | None = 240.0  # seconds for the whole stage; latent fitting gets fit_share of it
    fit_share: float = 0.25
    fit_steps: int = 300               # latent-fitting steps for new subjects (cut short by the budget)
    batch_subjects: int = 32
    points: int = 256                  # 256 beat 1024 per subject at equal time: 4x the steps (bench/RESULTS.md)
    lr_encoding: float = 1e-2
    lr_network: float = 5e-3           # hash-grid MLP, FiLM and output layers
    lr_siren: float = 1e-4             # SIREN's network (the paper's 1e-5 barely moves in a 300 s budget)
    lr_latent: float = 1e-2
    lr_fit: float = 5e-2               # latent fitting of new subjects (starts from the mean training latent)
    alpha: float = 1e-5                # mean |u| (voxels); larger values shrink the fields (bench/RESULTS.md)
    beta: float = 1e-4                 # mean z^2
    gamma: float = 1e-3                # mean |log det(I + du/dx)|
    fold_weight: float = 10.0          # mean relu(fold_margin - det): keeps det away from 0 (folds)
    fold_margin: float = 0.1
    similarity: str = "mse"
    seed: int = 0
    device: str = "auto"
    checkpoint_every: float = 120.0    # seconds

    def __post_init__(self):
        if self.arch not in ("hashgrid", "siren"):
            raise MorphbiasError(f"--arch must be hashgrid or siren, got {self.arch!r}")
        if self.similarity not in ("mse", "ncc"):
            raise MorphbiasError(f"--similarity must be mse or ncc, got {self.similarity!r}")
        if self.steps is None and self.time_budget is None:
            raise MorphbiasError("give --steps or --time-budget")
        if self.steps is not None and self.steps < 1:
            raise MorphbiasError(f"--steps must be at least 1, got {self.steps}")
        if self.time_budget is not None and self.time_budget <= 0:
            raise MorphbiasError(f"--time-budget must be positive, got {self.time_budget}")


class Images:
    """The cohort's images and the atlas as tensors on one device, with the point sampler."""

    def __init__(self, images: np.ndarray, atlas: np.ndarray, device: torch.device):
        self.shape = tuple(atlas.shape)
        self.dim = atlas.ndim
        scale = float(np.percentile(atlas, 99.5)) or 1.0  # intensities to ~[0, 1]; the same for all images
        self.atlas = torch.as_tensor(atlas / scale, dtype=torch.float32, device=device)[None, None]
        self.images = torch.as_tensor(images / scale, dtype=torch.float32, device=device).reshape(len(images), -1)
        self.n_vox = self.images.shape[1]
        self.extent = torch.tensor([max(n - 1, 1) for n in self.shape], dtype=torch.float32, device=device)
        strides = np.cumprod((self.shape[1:] + (1,))[::-1])[::-1].copy()
        self.strides = torch.as_tensor(strides, device=device)
        self.device = device

    def subset(self, rows) -> "Images":
        """The same atlas and grid with only the images of `rows` (a shallow copy)."""
        out = Images.__new__(Images)
        out.__dict__.update(self.__dict__)
        out.images = self.images[torch.as_tensor(rows, device=self.device)]
        return out

    def coords(self, flat_idx: torch.Tensor) -> torch.Tensor:
        """Flat voxel indices [...] -> voxel coordinates [..., D] (float, array-axis order)."""
        return torch.stack([(flat_idx // s) % n for s, n in zip(self.strides.tolist(), self.shape)], -1).float()

    def sample_indices(self, n: int, points: int, gen: torch.Generator) -> torch.Tensor:
        """Flat voxel indices [n, points], drawn for a whole batch at once so that every process of a
        distributed run draws the same ones and each keeps its own rows."""
        return torch.randint(0, self.n_vox, (n, points), generator=gen)

    def sample(self, subjects: torch.Tensor, flat: torch.Tensor):
        """(x in [0,1]^D [B, P, D], voxel coords [B, P, D], subject intensities [B, P])."""
        flat = flat.to(self.device)
        vox = self.coords(flat)
        return vox / self.extent, vox, torch.gather(self.images[subjects.to(self.device)], 1, flat)

    def atlas_at(self, vox: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Atlas intensities at vox + u ([B, P, D] voxel units) -> [B, P]."""
        pos = vox + u
        norm = 2 * pos / self.extent - 1
        grid = norm.flip(-1).view(pos.shape[0], pos.shape[1], *[1] * (self.dim - 1), self.dim)
        out = F.grid_sample(self.atlas.expand(pos.shape[0], *self.atlas.shape[1:]), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=True)
        return out.view(pos.shape[0], pos.shape[1])


def _similarity(kind: str, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if kind == "mse":
        return ((a - b) ** 2).mean()
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    ncc = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
    return (1 - ncc).mean()


def loss_terms(model, imgs: Images, z: torch.Tensor, subjects: torch.Tensor, flat: torch.Tensor,
               cfg: RegisterConfig) -> dict:
    """Loss terms for subjects (rows of imgs) with latents z at the flat voxel indices `flat` [B, P]; every
    term is a mean over subjects of per-subject means (all subjects have P points)."""
    x, vox, target = imgs.sample(subjects, flat)
    with_jac = cfg.gamma > 0 or cfg.fold_weight > 0
    u, J = model(x, z, with_jacobian=with_jac)
    terms = {"sim": _similarity(cfg.similarity, target, imgs.atlas_at(vox, u)),
             "disp": u.abs().mean(), "latent": (z ** 2).mean()}
    total = terms["sim"] + cfg.alpha * terms["disp"] + cfg.beta * terms["latent"]
    if with_jac:
        det = det_identity_plus(J / imgs.extent)  # du/dx -> du/d(voxel): divide column d by (n_d - 1)
        terms["jac"] = torch.log(det.clamp_min(DET_EPS)).abs().mean()
        terms["fold"] = F.relu(cfg.fold_margin - det).mean()
        total = total + cfg.gamma * terms["jac"] + cfg.fold_weight * terms["fold"]
    terms["total"] = total
    return terms


def det_identity_plus(J: torch.Tensor) -> torch.Tensor:
    """det(I + J) for J [..., D, D] with D = 2 or 3, written out (batched LU is slow for tiny matrices)."""
    A = J + torch.eye(J.shape[-1], dtype=J.dtype, device=J.device)
    if J.shape[-1] == 2:
        return A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
    return (A[..., 0, 0] * (A[..., 1, 1] * A[..., 2, 2] - A[..., 1, 2] * A[..., 2, 1])
            - A[..., 0, 1] * (A[..., 1, 0] * A[..., 2, 2] - A[..., 1, 2] * A[..., 2, 0])
            + A[..., 0, 2] * (A[..., 1, 0] * A[..., 2, 1] - A[..., 1, 1] * A[..., 2, 0]))


def _step_generator(seed: int, step: int, salt: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + salt) % (2**63))


def make_optimizer(model, latents: torch.nn.Parameter, cfg: RegisterConfig) -> torch.optim.Optimizer:
    enc = [p for n, p in model.named_parameters() if n.startswith("encoding.")]
    rest = [p for n, p in model.named_parameters() if not n.startswith("encoding.")]
    lr_net = cfg.lr_network if cfg.arch == "hashgrid" else cfg.lr_siren
    groups = [{"params": rest, "lr": lr_net}, {"params": [latents], "lr": cfg.lr_latent}]
    if enc:
        groups.append({"params": enc, "lr": cfg.lr_encoding})
    return torch.optim.Adam(groups)


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


@dataclass(frozen=True)
class Dist:
    """This process's place in a torchrun job (rank 0 of 1 when run alone). Subject i belongs to rank
    i % world: that rank keeps its latent and computes its loss terms."""

    rank: int = 0
    world: int = 1

    @property
    def active(self) -> bool:
        return self.world > 1

    def owned(self, n: int) -> np.ndarray:
        return np.arange(n)[self.rank:: self.world]

    def all_continue(self, mine: bool) -> bool:
        """Every rank stops at the same step: continue only while all want to."""
        if not self.active:
            return mine
        import torch.distributed as dist

        flag = torch.tensor([1 if mine else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())


def train(imgs: Images, n_subjects: int, cfg: RegisterConfig, deadline: float | None, ckpt_path: Path | None = None,
          resume: dict | None = None, progress: bool = True, dist: Dist = Dist()):
    """Train the network and the latents of the training subjects this rank owns.
    Returns (model, latents of dist.owned(n_subjects), info).

    Distributed runs compute exactly the single-process gradient: each rank's loss is weighted by
    (its subjects in the batch) * world / batch, DistributedDataParallel averages the network gradient over
    ranks, and latent gradients (local, not averaged) are divided by world."""
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, imgs.dim, cfg.latent_dim).to(imgs.device)
    owned = torch.as_tensor(dist.owned(n_subjects))
    local = torch.full((n_subjects,), -1, dtype=torch.long)
    local[owned] = torch.arange(len(owned))
    init = torch.randn(n_subjects, cfg.latent_dim, generator=torch.Generator().manual_seed(cfg.seed)).mul_(0.01)
    latents = torch.nn.Parameter(init[owned].to(imgs.device))
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[imgs.device.index] if imgs.device.type == "cuda" else None)
        latents.register_hook(lambda g: g / dist.world)
    opt = make_optimizer(model, latents, cfg)
    step, elapsed = 0, 0.0
    if resume is not None:
        model.load_state_dict(resume["model"])
        with torch.no_grad():
            latents.copy_(resume["latents"])
        opt.load_state_dict(resume["optimizer"])
        step, elapsed = resume["step"], resume["elapsed"]
    start = time.monotonic() - elapsed
    last_ckpt = time.monotonic()
    interrupted = {"flag": False}

    def on_sigint(signum, frame):  # finish the step, write a checkpoint, then stop
        interrupted["flag"] = True

    old = signal.signal(signal.SIGINT, on_sigint) if ckpt_path is not None else None
    bar = tqdm(total=cfg.steps, initial=step, desc=f"register ({cfg.arch})", unit="step", disable=not progress)

    def state():
        return {"model": model.state_dict(), "latents": latents.detach().cpu(), "optimizer": opt.state_dict(),
                "step": step, "elapsed": time.monotonic() - start, "config": asdict(cfg), "phase": "train"}

    try:
        while dist.all_continue((cfg.steps is None or step < cfg.steps)
                                and (deadline is None or time.monotonic() < deadline)):
            gen = _step_generator(cfg.seed, step, 0)
            subjects = torch.randperm(n_subjects, generator=gen)[: cfg.batch_subjects]
            flat = imgs.sample_indices(len(subjects), cfg.points, gen)
            mine = torch.nonzero(subjects % dist.world == dist.rank).flatten()
            weight = len(mine) * dist.world / len(subjects)
            if len(mine) == 0:  # nothing of ours in this batch: a zero-weight pass keeps the ranks in step
                mine = torch.zeros(1, dtype=torch.long)
            sel = subjects[mine]
            terms = loss_terms(net, imgs, latents[local[sel].to(imgs.device)], sel, flat[mine], cfg)
            opt.zero_grad(set_to_none=True)
            (terms["total"] * weight).backward()
            opt.step()
            step += 1
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(sim=f"{terms['sim'].item():.2e}")
            if ckpt_path is not None and (interrupted["flag"] or time.monotonic() - last_ckpt > cfg.checkpoint_every):
                save_checkpoint(ckpt_path, state())
                last_ckpt = time.monotonic()
                if interrupted["flag"]:
                    raise KeyboardInterrupt
    finally:
        bar.close()
        if old is not None:
            signal.signal(signal.SIGINT, old)
    if ckpt_path is not None:
        save_checkpoint(ckpt_path, state())
    return model, latents.detach(), {"steps": step, "seconds": time.monotonic() - start}


def fit_latents(model, imgs: Images, subjects: np.ndarray, cfg: RegisterConfig, deadline: float | None,
                init: torch.Tensor, progress: bool = True, global_index: np.ndarray | None = None,
                n_total: int | None = None) -> tuple[torch.Tensor, dict]:
    """Latents of new subjects with the network frozen, all subjects in parallel (batches of subjects).
    They start at `init` (the mean training latent: the cohort's typical deformation) rather than near zero,
    so the few steps a time budget leaves are spent on what differs between subjects."""
    from tqdm import tqdm

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    idx = torch.as_tensor(subjects)
    # Points are drawn for all n_total new subjects of the job (global_index: ours among them), so a
    # distributed run fits each subject on the same points as a single process.
    global_index = np.arange(len(idx)) if global_index is None else global_index
    n_total = len(idx) if n_total is None else n_total
    z = torch.nn.Parameter(init.detach().to(imgs.device).expand(len(idx), cfg.latent_dim).clone())
    opt = torch.optim.Adam([z], lr=cfg.lr_fit)
    start, step = time.monotonic(), 0
    batch = max(cfg.batch_subjects * 4, 1)
    n_batches = math.ceil(len(idx) / batch)
    points = max(cfg.points // 2, 1)
    bar = tqdm(total=cfg.fit_steps, desc="fit latents", unit="step", disable=not progress)
    while step < cfg.fit_steps and (deadline is None or time.monotonic() < deadline):
        gen = _step_generator(cfg.seed, step, 1)
        flat = imgs.sample_indices(n_total, points, gen)[torch.as_tensor(global_index)]
        opt.zero_grad(set_to_none=True)
        for b in range(n_batches):  # every subject once per step
            sel = torch.arange(b * batch, min(len(idx), (b + 1) * batch))
            terms = loss_terms(model, imgs, z[sel.to(imgs.device)], idx[sel], flat[sel], cfg)
            # A sum over subjects of per-subject losses: each latent's gradient does not depend on grouping.
            (terms["total"] * len(sel)).backward()
        opt.step()
        step += 1
        bar.update(1)
    bar.close()
    for p in model.parameters():
        p.requires_grad_(True)
    return z.detach(), {"steps": step, "seconds": time.monotonic() - start}


@torch.no_grad()
def decode_displacement(model, z: torch.Tensor, shape: tuple, chunk: int = 65536) -> torch.Tensor:
    """u [B, D, *shape] in voxel units on the full grid for latents z [B, K]."""
    device = z.device
    grids = torch.meshgrid(*[torch.arange(n, device=device, dtype=torch.float32) for n in shape], indexing="ij")
    vox = torch.stack(grids, -1).reshape(-1, len(shape))
    x = vox / torch.tensor([max(n - 1, 1) for n in shape], device=device)
    out = []
    for lo in range(0, x.shape[0], chunk):
        xs = x[lo: lo + chunk]
        u, _ = model(xs.expand(len(z), *xs.shape), z)
        out.append(u)
    u = torch.cat(out, 1)  # [B, V, D]
    return u.permute(0, 2, 1).reshape(len(z), len(shape), *shape)


@torch.no_grad()
def warp_atlas(imgs: Images, u: torch.Tensor) -> torch.Tensor:
    return warp(imgs.atlas, u)[:, 0]
