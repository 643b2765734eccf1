"""CIFAR ResNet: shapes, parameter counts of the paper, a training step."""

from __future__ import annotations

import inspect

import pytest
import torch

from kdgan.errors import ConfigError
from kdgan.models.resnet import ResNet

torch.set_num_threads(1)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_output_shapes() -> None:
    torch.manual_seed(0)
    net = ResNet((3, 32, 32), 10, blocks=1).eval()
    assert net(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert ResNet((1, 28, 28), 7, blocks=1, width=4)(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    assert ResNet((3, 8, 8), 5, blocks=1, width=4)(torch.rand(2, 3, 8, 8)).shape == (2, 5)


def test_parameter_counts_match_the_paper() -> None:
    assert count(ResNet((3, 32, 32), 10, blocks=3)) == 269_722  # ResNet-20, "0.27M"
    assert count(ResNet((3, 32, 32), 10, blocks=5)) == 464_154  # ResNet-32, "0.46M"
    depth = sum(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in ResNet((3, 32, 32), 10, blocks=3).modules())
    assert depth == 20  # option-A shortcuts add no layers


def test_forward_backward() -> None:
    torch.manual_seed(0)
    net = ResNet((3, 32, 32), 10, blocks=1, width=8)
    x, y = torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(net(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_registry_signature_and_errors() -> None:
    assert list(inspect.signature(ResNet).parameters) == ["in_shape", "num_classes", "blocks", "width"]
    with pytest.raises(ConfigError, match="image inputs"):
        ResNet((784,), 10)
    with pytest.raises(ConfigError, match="blocks"):
        ResNet((3, 32, 32), 10, blocks=0)
    with pytest.raises(ConfigError, match="width"):
        ResNet((3, 32, 32), 10, width=0)
