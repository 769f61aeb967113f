"""The autoencoder baseline of discovery: it learns (reconstruction error falls well below the untrained
network's), its features have the INR latents' width, and the same seed gives the same features."""
import numpy as np
import torch

from morphbias_fast.classify import standardise
from morphbias_fast.discover.autoencoder import LATENT, AutoEncoder, encode, fit_autoencoder


def _blobs(n, rng):
    """Images of one Gaussian blob each at a random place: 2 numbers explain every image."""
    yy, xx = np.mgrid[:20, :27]
    c = rng.uniform(5, 15, (n, 2))
    return np.exp(-((yy - c[:, :1, None]) ** 2 + (xx - c[:, 1:, None]) ** 2) / 8.0).astype(np.float32)


def _error(model, images):
    x = standardise(images)
    with torch.no_grad():
        return float(((model(x)[1] - model.pad(x)) ** 2).mean())


def test_autoencoder_learns_and_is_seeded():
    images = _blobs(96, np.random.default_rng(0))
    torch.manual_seed(0)
    before = _error(AutoEncoder(images.shape[1:]).eval(), images)
    model = fit_autoencoder(images, seed=3, epochs=30, progress=False)
    # a standardised image has variance 1 over the unpadded grid: the untrained decoder's error is about that;
    # a third of it means the bottleneck carries the blob's position
    assert _error(model, images) < before / 3
    feats = encode(model, images[:5])
    assert feats.shape == (5, LATENT) and feats.dtype == np.float64
    again = encode(fit_autoencoder(images, seed=3, epochs=30, progress=False), images[:5])
    np.testing.assert_array_equal(feats, again)
