"""New training images from latents: decode with the frozen registration INR and warp the atlas.

paper_latents      METHOD.md section 4: PCA (95%) of the train latents, Gaussian noise on the half of the
                   components with the lowest mutual information with the label, 3 per re-balanced case, then
                   SMOTE (imbalanced-learn) to the size of the original train set, equal per label.
counterfactual_latents   ours: move every train latent across the discovered split, along the mean difference
                   between the two sides within each label, so its bias flips and its label stays; the union
                   with the originals has the bias independent of the label.
"""
from __future__ import annotations

import numpy as np
import torch

PAPER_AUGMENTATIONS = 3
NOISE_SCALE = 0.5  # noise SD per component, as a share of that component's SD (ours: the paper gives none)


def decode_images(model, atlas: np.ndarray, Z: np.ndarray, batch: int = 64, progress: bool = True) -> np.ndarray:
    """Atlas warped by the decoded field of each latent: [len(Z), *atlas.shape] float32."""
    from tqdm import tqdm

    from morphbias_fast.data.deform import warp
    from morphbias_fast.register.train import decode_displacement

    device = next(model.parameters()).device
    a = torch.as_tensor(np.asarray(atlas, dtype=np.float32), device=device)[None, None]
    out = []
    with torch.no_grad():
        for lo in tqdm(range(0, len(Z), batch), desc="decode", unit="batch", disable=not progress):
            z = torch.as_tensor(np.asarray(Z[lo: lo + batch], dtype=np.float32), device=device)
            u = decode_displacement(model, z, tuple(atlas.shape))
            out.append(warp(a, u)[:, 0].cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, *atlas.shape), np.float32)


def paper_latents(Z: np.ndarray, y: np.ndarray, selected: np.ndarray, n_target: int, seed: int = 0):
    """(latents, labels) of the augmented + SMOTE-resampled re-balanced set, n_target in all."""
    from imblearn.over_sampling import SMOTE
    from sklearn.decomposition import PCA
    from sklearn.feature_selection import mutual_info_classif

    rng = np.random.default_rng(seed)
    pca = PCA(0.95, random_state=seed).fit(Z)
    C = pca.transform(Z)
    mi = mutual_info_classif(C, y, random_state=seed)
    low = np.argsort(mi)[: max(1, C.shape[1] // 2)]
    base, yb = C[selected], y[selected]
    aug = np.repeat(base, PAPER_AUGMENTATIONS, axis=0)
    aug[:, low] += rng.normal(0.0, 1.0, (len(aug), len(low))) * (NOISE_SCALE * C[:, low].std(0))
    pool, ypool = np.concatenate([base, aug]), np.concatenate([yb, np.repeat(yb, PAPER_AUGMENTATIONS)])
    per_class = {c: max(n_target // 2, int((ypool == c).sum())) for c in (0, 1)}
    k = int(min(5, min((ypool == c).sum() for c in (0, 1)) - 1))
    if k < 1:
        raise ValueError("the re-balanced set needs at least two cases of each label for SMOTE")
    res, yres = SMOTE(sampling_strategy=per_class, k_neighbors=k, random_state=seed).fit_resample(pool, ypool)
    return pca.inverse_transform(res), yres


def side_delta(Z: np.ndarray, y: np.ndarray, side: np.ndarray) -> np.ndarray:
    """Mean latent of side 1 minus side 0, within each label (so the disease cancels), averaged over the
    labels that have at least two cases on each side: the discovered bias direction."""
    deltas = []
    for c in (0, 1):
        hi, lo = (side == 1) & (y == c), (side == 0) & (y == c)
        if hi.sum() >= 2 and lo.sum() >= 2:
            deltas.append(Z[hi].mean(0) - Z[lo].mean(0))
    if not deltas:
        raise ValueError("no label has two cases on each side of the discovered split")
    return np.mean(deltas, axis=0)


def counterfactual_latents(Z: np.ndarray, y: np.ndarray, side: np.ndarray):
    """(latents, labels): each case with a side (1 = S_B, 0 = S_NB; -1 = none, left out) moved to the other
    side by side_delta."""
    delta = side_delta(Z, y, side)
    keep = side >= 0
    moved = Z[keep] + np.where(side[keep, None] == 1, -delta, delta)
    return moved, y[keep]
