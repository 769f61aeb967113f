"""Per-subject feature vectors for discovery.

inr        the registration latents (RUN_DIR/register/latents.npz): the deformation representation.
pca        intensity PCA of the images, fitted on the train split (the baseline the paper's claim is about).
embedding  the classifier's penultimate layer (RUN_DIR/classify/model.pt; Domino's usual choice).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morphbias_fast.errors import MorphbiasError

FEATURES = ("inr", "pca", "embedding")
PCA_COMPONENTS = 128  # the latent size of the registration INR, so that inr and pca compete on equal width


def inr_features(run_dir: Path, ids) -> np.ndarray:
    path = Path(run_dir) / "register" / "latents.npz"
    if not path.exists():
        raise MorphbiasError(f"{path} is missing: run `morphbias-fast register` first (or choose other --features)")
    try:
        lat = np.load(path)
        z = dict(zip(lat["participant_id"].astype(str), lat["z"]))
    except (ValueError, KeyError, OSError) as exc:
        raise MorphbiasError(f"cannot read {path}: {exc} (expected arrays participant_id (str) and z)") from None
    missing = [p for p in ids if p not in z]
    if missing:
        raise MorphbiasError(f"{path} has no latent for participant {missing[0]} ({len(missing)} missing)")
    return np.stack([z[p] for p in ids]).astype(np.float64)


def pca_features(cohort, rows, seed: int = 0) -> np.ndarray:
    """Intensity PCA scores of cohort images `rows`; the components come from the train split."""
    from sklearn.decomposition import PCA

    flat = cohort.images.reshape(len(cohort.images), -1).astype(np.float64)
    train = cohort.index("train")
    n = min(PCA_COMPONENTS, len(train), flat.shape[1])
    pca = PCA(n_components=n, random_state=seed).fit(flat[train])
    return pca.transform(flat[rows])


def embedding_features(run_dir: Path, cohort, rows, device: str = "cpu") -> np.ndarray:
    import torch

    from morphbias_fast.classify.train import load_classifier, standardise

    model = load_classifier(Path(run_dir) / "classify" / "model.pt", device)
    x = standardise(cohort.images[rows])
    out = []
    with torch.no_grad():
        for lo in range(0, len(x), 128):
            out.append(model.features(x[lo: lo + 128].to(device)).double().cpu())
    return torch.cat(out).numpy()


def load_features(kind: str, run_dir: Path, cohort, rows, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """[len(rows), F] float64 features of the cohort's participants `rows`."""
    if kind == "inr":
        return inr_features(run_dir, cohort.ids[rows])
    if cohort.images is None:
        raise MorphbiasError(f"--features {kind} needs the cohort images")
    if kind == "pca":
        return pca_features(cohort, rows, seed)
    if kind == "embedding":
        return embedding_features(run_dir, cohort, rows, device)
    raise MorphbiasError(f"--features must be one of {', '.join(FEATURES)}, got {kind!r}")
