"""The paper's classifier: 5 convolution blocks (16-32-64-128-256 channels), BatchNorm + PReLU, 2 classes."""
from __future__ import annotations

import torch
from torch import nn

CHANNELS = (16, 32, 64, 128, 256)


class CNN(nn.Module):
    def __init__(self, dim: int = 2, channels=CHANNELS, n_classes: int = 2):
        super().__init__()
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, got {dim}")
        conv, bn, pool = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d) if dim == 2 else (nn.Conv3d, nn.BatchNorm3d,
                                                                                      nn.MaxPool3d)
        layers, c_in = [], 1
        for c in channels:
            layers += [conv(c_in, c, kernel_size=3, padding=1, bias=False), bn(c), nn.PReLU(c), pool(2, ceil_mode=True)]
            c_in = c
        self.dim = dim
        self.blocks = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1) if dim == 2 else nn.AdaptiveAvgPool3d(1)
        self.head = nn.Linear(c_in, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features [B, 256] (the `embedding` features of discovery)."""
        return self.pool(self.blocks(x)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits [B, 2] for images [B, 1, *spatial]; softmax gives the class probabilities."""
        return self.head(self.features(x))
