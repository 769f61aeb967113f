"""The image-representation baseline we can train here (`discover --features autoencoder`): a convolutional
autoencoder fitted on the cohort's train images (each standardised as the classifier sees it), whose bottleneck
is the feature. Its width is the registration INR's latent size, so the two representations compete on equal
width; unlike PCA it is non-linear, unlike CLIP it needs no downloaded weights."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from morphbias_fast.classify import standardise

LATENT = 128      # = INRConfig.latent_dim
EPOCHS = 40       # the reconstruction loss flattens by about 30 epochs on the 1000-subject 2-D cohort
BATCH = 32
LR = 1e-3
DEPTH = 3         # stride-2 stages: the input is zero-padded to a multiple of 2**DEPTH


class AutoEncoder(nn.Module):
    def __init__(self, shape: tuple[int, ...], latent: int = LATENT):
        super().__init__()
        dim = len(shape)
        conv, convt = (nn.Conv2d, nn.ConvTranspose2d) if dim == 2 else (nn.Conv3d, nn.ConvTranspose3d)
        self.padded = tuple(-(-n // 2 ** DEPTH) * 2 ** DEPTH for n in shape)
        self.shape = tuple(shape)
        self.inner = (64, *[n // 2 ** DEPTH for n in self.padded])
        width = int(np.prod(self.inner))
        self.encoder = nn.Sequential(conv(1, 16, 4, 2, 1), nn.ReLU(), conv(16, 32, 4, 2, 1), nn.ReLU(),
                                     conv(32, 64, 4, 2, 1), nn.ReLU(), nn.Flatten(), nn.Linear(width, latent))
        self.decoder = nn.Sequential(nn.Linear(latent, width), nn.Unflatten(1, self.inner), nn.ReLU(),
                                     convt(64, 32, 4, 2, 1), nn.ReLU(), convt(32, 16, 4, 2, 1), nn.ReLU(),
                                     convt(16, 1, 4, 2, 1))

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        extra = []
        for n, p in zip(reversed(self.shape), reversed(self.padded)):
            extra += [0, p - n]
        return nn.functional.pad(x, extra)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(bottleneck [B, latent], reconstruction of the padded input)."""
        z = self.encoder(self.pad(x))
        return z, self.decoder(z)


def fit_autoencoder(train_images: np.ndarray, seed: int = 0, device="cpu", epochs: int = EPOCHS,
                    progress: bool = True) -> AutoEncoder:
    """An AutoEncoder trained to reconstruct the standardised `train_images` [N, *shape] (mean squared error,
    Adam), seeded."""
    torch.manual_seed(seed)
    x = standardise(train_images)
    model = AutoEncoder(tuple(train_images.shape[1:])).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(epochs), desc="autoencoder", unit="epoch", disable=not progress):
        for idx in torch.randperm(len(x), generator=gen).split(BATCH):
            xb = x[idx].to(device)
            _, rec = model(xb)
            loss = ((rec - model.pad(xb)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@torch.no_grad()
def encode(model: AutoEncoder, images: np.ndarray, device="cpu") -> np.ndarray:
    """[N, LATENT] float64 bottleneck features of `images`."""
    x = standardise(images)
    return torch.cat([model(x[lo: lo + 128].to(device))[0].double().cpu() for lo in range(0, len(x), 128)]).numpy()
