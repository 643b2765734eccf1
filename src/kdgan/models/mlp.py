"""Multi-layer perceptron: the paper's lightweight classifier (784-800-800-10 on MNIST)."""

from __future__ import annotations

import math

from torch import Tensor, nn


class MLP(nn.Module):
    """Flatten, then Linear-ReLU-Dropout blocks, then a linear layer to one logit per label."""

    def __init__(
        self, in_shape: tuple[int, ...], num_classes: int, hidden: list[int] | None = None,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        hidden = [800, 800] if hidden is None else list(hidden)
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(in_shape)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
