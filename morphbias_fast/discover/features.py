"""Per-subject feature vectors for discovery.

inr        the registration latents (RUN_DIR/register/latents.npz): the deformation representation.
pca        intensity PCA of the images, fitted on the train split (the baseline the paper's claim is about).
embedding  the classifier's penultimate layer (RUN_DIR/classify/model.pt; Domino's usual choice).
clip       a CLIP image encoder's embedding (a generic foundation-model feature), from a local model folder or
           an already-downloaded Hugging Face hub id; nothing is downloaded at run time. Optional extra
           `pip install .[clip]` (transformers).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from morphbias_fast.errors import MorphbiasError

FEATURES = ("inr", "pca", "embedding", "clip")
CLIP_SLICES = 9  # axial slices per 3-D volume, evenly spaced over its middle half: CPU cost, see clip_features
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


def _clip_slices(images: np.ndarray) -> np.ndarray:
    """[N, H, W] -> [N, 1, H, W]; [N, X, Y, Z] -> [N, S, X, Y] (S axial slices from the middle half)."""
    if images.ndim == 3:
        return images[:, None]
    z = images.shape[-1]
    idx = np.unique(np.linspace(z // 4, (3 * z) // 4, CLIP_SLICES).round().astype(int))
    return np.moveaxis(images[..., idx], -1, 1)


def clip_features(model_source: str | None, cohort, rows, device: str = "cpu", batch: int = 32) -> np.ndarray:
    """CLIP image embeddings: each slice scaled to [0, 1] by the cohort's 99.5th-percentile intensity,
    grey to RGB, resized to the encoder's input size, normalised with the model's own mean and std; a 3-D
    subject is the mean over CLIP_SLICES axial slices (all slices of a 2 mm brain would be ~90 ViT passes
    per subject, hours on a CPU)."""
    if not model_source:
        raise MorphbiasError("--features clip needs --clip-model: a local CLIP model folder or an already-"
                             "downloaded Hugging Face hub id (nothing is downloaded at run time)")
    try:
        import torch
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
    except Exception as exc:  # noqa: BLE001 - any failure here means the optional extra is not usable
        raise MorphbiasError(f"--features clip needs the optional extra: pip install '.[clip]' ({exc})") from None
    try:
        model = CLIPVisionModelWithProjection.from_pretrained(model_source, local_files_only=True).to(device).eval()
    except (OSError, ValueError) as exc:
        raise MorphbiasError(f"--clip-model {model_source}: cannot load a CLIP vision model from it ({exc})") from None
    try:  # the model's own preprocessing constants when its folder has them, else CLIP's published ones
        proc = CLIPImageProcessor.from_pretrained(model_source, local_files_only=True)
    except (OSError, ValueError):
        proc = CLIPImageProcessor()
    size = model.config.image_size
    mean = torch.tensor(proc.image_mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std = torch.tensor(proc.image_std, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    scale = float(np.percentile(cohort.images, 99.5)) or 1.0
    slices = _clip_slices(cohort.images[rows])  # [N, S, H, W]
    n, s = slices.shape[:2]
    flat = torch.as_tensor(np.ascontiguousarray(slices.reshape(n * s, 1, *slices.shape[2:])), dtype=torch.float32)
    out = []
    with torch.no_grad():
        for lo in range(0, len(flat), batch):
            x = (flat[lo: lo + batch].to(device) / scale).clamp(0, 1)
            x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            x = (x.expand(-1, 3, -1, -1) - mean) / std
            out.append(model(pixel_values=x).image_embeds.double().cpu())
    return torch.cat(out).reshape(n, s, -1).mean(1).numpy()


def load_features(kind: str, run_dir: Path, cohort, rows, seed: int = 0, device: str = "cpu",
                  clip_model: str | None = None) -> np.ndarray:
    """[len(rows), F] float64 features of the cohort's participants `rows`."""
    if kind == "inr":
        return inr_features(run_dir, cohort.ids[rows])
    if cohort.images is None:
        raise MorphbiasError(f"--features {kind} needs the cohort images")
    if kind == "pca":
        return pca_features(cohort, rows, seed)
    if kind == "embedding":
        return embedding_features(run_dir, cohort, rows, device)
    if kind == "clip":
        return clip_features(clip_model, cohort, rows, device)
    raise MorphbiasError(f"--features must be one of {', '.join(FEATURES)}, got {kind!r}")
