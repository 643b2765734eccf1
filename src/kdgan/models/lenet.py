"""LeNet-style CNN: the paper's MNIST teacher and discriminator (conv 32 5x5, pool, conv 64 5x5,
pool, fc 1024), with every size a setting so that small variants fit 8x8 digits."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from kdgan.errors import ConfigError


class LeNet(nn.Module):
    """Two conv-ReLU-maxpool stages ('same' padding), a hidden fully connected layer, logits."""

    def __init__(
        self, in_shape: tuple[int, ...], num_classes: int, channels: list[int] | None = None,
        kernel: int = 5, fc: int = 1024, dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError(f"lenet needs image inputs (channels, height, width), got shape {in_shape}")
        channels = [32, 64] if channels is None else list(channels)
        layers: list[nn.Module] = []
        width = in_shape[0]
        for out in channels:
            layers += [nn.Conv2d(width, out, kernel, padding=kernel // 2), nn.ReLU(), nn.MaxPool2d(2)]
            width = out
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = math.prod(self.features(torch.zeros(1, *in_shape)).shape[1:])
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(flat, fc), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(fc, num_classes))
        self.head = nn.Sequential(*head)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
