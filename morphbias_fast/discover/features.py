"""Per-subject feature vectors for discovery.

inr        the registration latents (the register stage's): the deformation representation.
pca        intensity PCA of the images, fitted on the train split (the baseline the paper's claim is about).
embedding  the classifier's penultimate layer (the classify stage's model; Domino's usual choice).
autoencoder  a convolutional autoencoder's bottleneck, trained on the train images (autoencoder.py): a
           non-linear image representation we can train here, of the INR latents' width.
clip       a CLIP image encoder's embedding (a generic foundation-model feature), from a local model folder or
           an already-downloaded Hugging Face hub id; nothing is downloaded at run time. Optional extra
           `pip install .[clip]` (transformers).

Each kind is a function (inputs, rows) -> [len(rows), F] float64, registered with @feature; a new kind is one
such function (and `--features` offers it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from sklearn.decomposition import PCA

from morphbias_fast.classify import load_classifier, standardise
from morphbias_fast.data import Cohort
from morphbias_fast.discover.autoencoder import encode, fit_autoencoder
from morphbias_fast.errors import MorphbiasError
from morphbias_fast.runfolder import RunFolder

CLIP_SLICES = 9  # axial slices per 3-D volume, evenly spaced over its middle half: CPU cost, see clip_features
PCA_COMPONENTS = 128  # the latent size of the registration INR, so that inr and pca compete on equal width


@dataclass(frozen=True)
class FeatureInputs:
    run: RunFolder
    cohort: Cohort
    seed: int = 0
    device: torch.device | str = "cpu"
    clip_model: str | None = None


@dataclass(frozen=True)
class FeatureKind:
    fn: Callable[[FeatureInputs, np.ndarray], np.ndarray]
    needs_images: bool
    help: str


FEATURES: dict[str, FeatureKind] = {}


def feature(name: str, help: str, needs_images: bool = True):
    """Register `fn(inputs, rows)` as the feature kind `name`."""
    def register(fn):
        FEATURES[name] = FeatureKind(fn, needs_images, help)
        return fn
    return register


@feature("inr", "registration latents", needs_images=False)
def inr_features(inp: FeatureInputs, rows) -> np.ndarray:
    return inp.run.register.latents_of(inp.cohort.ids[rows]).astype(np.float64)


@feature("pca", "intensity PCA of the images")
def pca_features(inp: FeatureInputs, rows) -> np.ndarray:
    """Intensity PCA scores of cohort images `rows`; the components come from the train split."""
    cohort = inp.cohort
    flat = cohort.images.reshape(len(cohort.images), -1).astype(np.float64)
    train = cohort.index("train")
    n = min(PCA_COMPONENTS, len(train), flat.shape[1])
    pca = PCA(n_components=n, random_state=inp.seed).fit(flat[train])
    return pca.transform(flat[rows])


@feature("embedding", "the classifier's penultimate layer")
def embedding_features(inp: FeatureInputs, rows) -> np.ndarray:
    model = load_classifier(inp.run.classify.model, inp.device)
    x = standardise(inp.cohort.images[rows])
    out = []
    with torch.no_grad():
        for lo in range(0, len(x), 128):
            out.append(model.features(x[lo: lo + 128].to(inp.device)).double().cpu())
    return torch.cat(out).numpy()


_AUTOENCODERS: dict = {}  # (cohort root, seed) -> model: discovery asks for train and val features separately


@feature("autoencoder", "a convolutional autoencoder trained on the train images")
def autoencoder_features(inp: FeatureInputs, rows) -> np.ndarray:
    key = (str(inp.cohort.root), inp.seed, len(inp.cohort.ids))
    if key not in _AUTOENCODERS:
        _AUTOENCODERS.clear()  # one cohort's model at a time
        _AUTOENCODERS[key] = fit_autoencoder(inp.cohort.images[inp.cohort.index("train")], seed=inp.seed,
                                             device=inp.device)
    return encode(_AUTOENCODERS[key], inp.cohort.images[rows], inp.device)


@feature("clip", "a CLIP image encoder (needs --clip-model and `pip install .[clip]`)")
def clip_kind(inp: FeatureInputs, rows) -> np.ndarray:
    return clip_features(inp.clip_model, inp.cohort, rows, inp.device)


def _clip_slices(images: np.ndarray) -> np.ndarray:
    """[N, H, W] -> [N, 1, H, W]; [N, X, Y, Z] -> [N, S, X, Y] (S axial slices from the middle half)."""
    if images.ndim == 3:
        return images[:, None]
    z = images.shape[-1]
    idx = np.unique(np.linspace(z // 4, (3 * z) // 4, CLIP_SLICES).round().astype(int))
    return np.moveaxis(images[..., idx], -1, 1)


def clip_features(model_source: str | None, cohort, rows, device="cpu", batch: int = 32) -> np.ndarray:
    """CLIP image embeddings: each slice scaled to [0, 1] by the cohort's 99.5th-percentile intensity,
    grey to RGB, resized to the encoder's input size, normalised with the model's own mean and std; a 3-D
    subject is the mean over CLIP_SLICES axial slices (all slices of a 2 mm brain would be ~90 ViT passes
    per subject, hours on a CPU)."""
    if not model_source:
        raise MorphbiasError("--features clip needs --clip-model: a local CLIP model folder or an already-"
                             "downloaded Hugging Face hub id (nothing is downloaded at run time)")
    try:  # deferred: transformers is an optional extra and slow to import
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


def load_features(kind: str, inp: FeatureInputs, rows) -> np.ndarray:
    """[len(rows), F] float64 features of the cohort's participants `rows` (`kind`: a key of FEATURES, which
    the stage checks before it loads the cohort)."""
    if FEATURES[kind].needs_images and inp.cohort.images is None:
        raise MorphbiasError(f"--features {kind} needs the cohort images")
    return FEATURES[kind].fn(inp, rows)
