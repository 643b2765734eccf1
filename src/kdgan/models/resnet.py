"""The CIFAR ResNet of He et al. (2016), section 4.2: a 3x3 conv, three stages of ``blocks`` basic
blocks with width, 2*width and 4*width filters (the 2nd and 3rd stage halve the resolution), global
average pooling and a linear layer: 6*blocks + 2 layers (blocks=3: ResNet-20, 0.27M parameters;
blocks=5: ResNet-32, 0.46M).

Shortcuts are the paper's option A, as in its CIFAR experiments: identity, and where the shape
changes, stride-2 subsampling plus zero-padded extra channels, so shortcuts add no parameters.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from kdgan.errors import ConfigError


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the (option A) shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: Tensor) -> Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.extra_channels:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))
        return x

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR ResNet-(6*blocks+2) for image inputs (C, H, W); any H, W >= 1 (global pooling)."""

    def __init__(self, in_shape: tuple[int, ...], num_classes: int, blocks: int = 5, width: int = 16) -> None:
        super().__init__()
        if len(in_shape) != 3:
            raise ConfigError(f"resnet needs image inputs (channels, height, width), got shape {in_shape}")
        if int(blocks) != blocks or blocks < 1:
            raise ConfigError(
                f"resnet option blocks must be a positive integer (3: ResNet-20, 5: ResNet-32), got {blocks}"
            )
        if int(width) != width or width < 1:
            raise ConfigError(f"resnet option width must be a positive integer (16 in the paper), got {width}")
        self.stem = nn.Sequential(
            nn.Conv2d(in_shape[0], width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        layers: list[nn.Module] = []
        channels = width
        for stage in range(3):
            out = width * 2**stage
            for i in range(blocks):
                layers.append(BasicBlock(channels, out, stride=2 if stage > 0 and i == 0 else 1))
                channels = out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")  # He et al. 2015
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.stages(self.stem(x)))


__all__ = ["BasicBlock", "ResNet"]
