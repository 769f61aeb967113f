"""Training and prediction of the CNN, shared by classify, mitigate and the unbiased reference.

Images are standardised one by one (zero mean, unit variance), so the classifier sees shape, not scanner
gain. Model selection keeps the epoch with the best validation accuracy (ties: lower validation loss).
Before each validation pass the BatchNorm statistics are recomputed on training images with the epoch's
final weights: the running averages lag the weights, and with them the validation accuracy of a model whose
training loss fell smoothly jumped between 0.50 (one class for everything) and 0.80 from epoch to epoch,
so the epoch kept was chance (bench/RESULTS.md). A fixed random subset of BN_STATS_IMAGES training images is
enough for these averages (the deepest layer still averages ~10^4 values per channel) and costs a quarter of a
forward pass over the 1000-image default train set per epoch.
Deterministic for a seed on the CPU at a given torch thread count (seeded shuffling, deterministic torch
algorithms). Another thread count sums in another order and, over 30 epochs, trains another model: on the 0.7
seed 3 cohort one thread and two gave test recall NB 0.816 and 0.808 (bench/RESULTS.md, issue 17). So each
record of a training run keeps its thread count (`config_record`)."""
from __future__ import annotations

import contextlib
import copy
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from morphbias_fast.classify.model import CNN
from morphbias_fast.devices import resolve_device

BN_STATS_IMAGES = 256


# A field list with defaults; `duplicates` pairs it by shape with the other config dataclasses
# (gridconfig, synth, classify.train, discover.mixture): alike in form only, nothing to share.
@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "auto"


def config_record(cfg: TrainConfig) -> dict:
    """The training settings as a JSON record, with the torch thread count that shaped the result."""
    return {**asdict(cfg), "torch_threads": torch.get_num_threads()}


def standardise(images: np.ndarray) -> torch.Tensor:
    """[N, *spatial] -> [N, 1, *spatial] float32, each image with zero mean and unit variance."""
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    flat = x.reshape(len(x), -1)
    x = (x - flat.mean(1).view(-1, *[1] * (x.dim() - 1))) / flat.std(1).clamp_min(1e-6).view(-1, *[1] * (x.dim() - 1))
    return x.unsqueeze(1)


@contextlib.contextmanager
def _deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)


def predict_proba(model: CNN, x: torch.Tensor, device: torch.device, batch: int = 128) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            out.append(F.softmax(model(x[lo: lo + batch].to(device)), dim=1)[:, 1].cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, dtype=np.float32)


def recalibrate_batchnorm(model: CNN, x: torch.Tensor, device: torch.device, batch: int = 128) -> None:
    """Set every BatchNorm layer's running mean and variance to their average over the batches of `x`
    under the model's current weights (momentum None: an equal-weight average, not an exponential one)."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for lo in range(0, len(x), batch):
            if len(x) - lo >= 2:  # train-mode BatchNorm needs two samples
                model(x[lo: lo + batch].to(device))
    for m, mom in zip(norms, momenta):
        m.momentum = mom


def val_score(p_val: np.ndarray, y_val: np.ndarray, val_weight: np.ndarray | None = None,
              val_groups: np.ndarray | None = None) -> float:
    """Validation accuracy as model selection sees it: the accuracy of the worst of `val_groups` when given,
    else the accuracy weighted by `val_weight` (None: plain)."""
    correct = (p_val >= 0.5) == y_val
    if val_groups is not None:
        return float(min(correct[val_groups == g].mean() for g in np.unique(val_groups)))
    return float(np.average(correct, weights=val_weight))


def fit(x_train: torch.Tensor, y_train: np.ndarray, x_val: torch.Tensor, y_val: np.ndarray, cfg: TrainConfig,
        sample_weight: np.ndarray | None = None, progress: bool = True, val_weight: np.ndarray | None = None,
        epoch_hook: Callable[[CNN, int], None] | None = None, val_groups: np.ndarray | None = None):
    """Train a CNN from scratch; returns (model at the selected epoch, history list of dicts).
    The epoch kept has the best val_score (ties: lower val loss): weighted by `val_weight` (e.g.
    group-balanced), or the worst of `val_groups`.
    `epoch_hook(model, epoch)` sees the model after each epoch's updates, before its BatchNorm statistics are
    recomputed (the batchnorm benchmark compares the two); it must not change the model."""
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CNN(dim=x_train.dim() - 2).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    y_t = torch.as_tensor(y_train, dtype=torch.long)
    w_t = torch.as_tensor(sample_weight if sample_weight is not None else np.ones(len(y_train)), dtype=torch.float32)
    y_v = torch.as_tensor(y_val, dtype=torch.long)
    stats_rows = torch.randperm(len(y_t), generator=torch.Generator().manual_seed(cfg.seed + 1))[:BN_STATS_IMAGES]
    best, best_key, history = None, None, []
    bar = tqdm(range(cfg.epochs), desc="classify", unit="epoch", disable=not progress)
    with _deterministic():
        for epoch in bar:
            model.train()
            perm = torch.randperm(len(y_t), generator=gen)
            total = 0.0
            for lo in range(0, len(perm), cfg.batch_size):
                idx = perm[lo: lo + cfg.batch_size]
                if len(idx) < 2:  # BatchNorm needs two samples
                    continue
                logits = model(x_train[idx].to(device))
                loss = (F.cross_entropy(logits, y_t[idx].to(device), reduction="none") * w_t[idx].to(device)).sum()
                loss = loss / w_t[idx].sum().to(device)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            sched.step()
            if epoch_hook is not None:
                epoch_hook(model, epoch)
            recalibrate_batchnorm(model, x_train[stats_rows], device)
            p_val = predict_proba(model, x_val, device)
            val_loss = float(F.binary_cross_entropy(torch.as_tensor(p_val).clamp(1e-6, 1 - 1e-6), y_v.float()))
            val_acc = val_score(p_val, y_val, val_weight, val_groups)
            history.append({"epoch": epoch + 1, "train_loss": total / len(y_t), "val_loss": val_loss,
                            "val_acc": val_acc})
            key = (val_acc, -val_loss)
            if best_key is None or key > best_key:
                best_key, best = key, copy.deepcopy(model.state_dict())
            bar.set_postfix(val_acc=f"{val_acc:.3f}", best=f"{best_key[0]:.3f}")
    model.load_state_dict(best)
    return model, history
