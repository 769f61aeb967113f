"""New training latents (decoded into images by register.Decoder):

paper_latents      docs/METHOD.md section 4: PCA (95%) of the train latents, Gaussian noise on the half of the
                   components with the lowest mutual information with the label, 3 per re-balanced case, then
                   SMOTE (imbalanced-learn) to the size of the original train set, equal per label.
counterfactual_latents   ours: move every train latent across the discovered split, along the mean difference
                   between the two sides within each label, so its bias flips and its label stays; the union
                   with the originals has the bias independent of the label.
"""
from __future__ import annotations

import numpy as np
from imblearn.over_sampling import SMOTE
from sklearn.decomposition import PCA
from sklearn.feature_selection import mutual_info_classif

from morphbias_fast.discover import side_delta

PAPER_AUGMENTATIONS = 3
NOISE_SCALE = 0.5  # noise SD per component, as a share of that component's SD (ours: the paper gives none)


def paper_latents(Z: np.ndarray, y: np.ndarray, selected: np.ndarray, n_target: int, seed: int = 0,
                  augment: bool = True, smote: bool = True):
    """(latents, labels) of the augmented + SMOTE-resampled re-balanced set, n_target in all. The paper's
    ablation (its Table 3) drops one step: augment=False keeps the re-balanced latents without noise copies,
    smote=False returns the pool as it is (its own size; each image then counts once, where the paper does not
    say how it weighed a half it did not resize)."""
    rng = np.random.default_rng(seed)
    pca = PCA(0.95, random_state=seed).fit(Z)
    C = pca.transform(Z)
    mi = mutual_info_classif(C, y, random_state=seed)
    low = np.argsort(mi)[: max(1, C.shape[1] // 2)]
    base, yb = C[selected], y[selected]
    pool, ypool = base, yb
    if augment:
        aug = np.repeat(base, PAPER_AUGMENTATIONS, axis=0)
        aug[:, low] += rng.normal(0.0, 1.0, (len(aug), len(low))) * (NOISE_SCALE * C[:, low].std(0))
        pool, ypool = np.concatenate([base, aug]), np.concatenate([yb, np.repeat(yb, PAPER_AUGMENTATIONS)])
    if not smote:
        if len(pool) == 0:
            raise ValueError("the re-balanced set is empty")
        return pca.inverse_transform(pool), ypool
    per_class = {c: max(n_target // 2, int((ypool == c).sum())) for c in (0, 1)}
    k = int(min(5, min((ypool == c).sum() for c in (0, 1)) - 1))
    if k < 1:
        raise ValueError("the re-balanced set needs at least two cases of each label for SMOTE")
    res, yres = SMOTE(sampling_strategy=per_class, k_neighbors=k, random_state=seed).fit_resample(pool, ypool)
    return pca.inverse_transform(res), yres


def counterfactual_latents(Z: np.ndarray, y: np.ndarray, side: np.ndarray):
    """(latents, labels): each case with a side (1 = S_B, 0 = S_NB; -1 = none, left out) moved to the other
    side by side_delta."""
    delta = side_delta(Z, y, side)
    keep = side >= 0
    moved = Z[keep] + np.where(side[keep, None] == 1, -delta, delta)
    return moved, y[keep]
