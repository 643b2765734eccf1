"""Network registry: a model spec ``{"name": ..., **options}`` becomes an ``nn.Module``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from kdgan.errors import ConfigError
from kdgan.models.lenet import LeNet
from kdgan.models.mlp import MLP
from kdgan.models.resnet import ResNet

MODELS: dict[str, Callable[..., nn.Module]] = {"mlp": MLP, "lenet": LeNet, "resnet": ResNet}


def build_model(spec: dict[str, Any], in_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Build ``spec['name']`` with the remaining keys as options; unknown options are refused."""
    options = dict(spec)
    name = options.pop("name", None)
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    factory = MODELS[name]
    accepted = list(inspect.signature(factory).parameters)[2:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"unknown option '{unknown[0]}' for model {name!r}; valid options: {', '.join(accepted)}"
        )
    try:
        return factory(tuple(in_shape), num_classes, **options)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"model {name!r} cannot be built with options {options}: {err}; see its options "
                          f"({', '.join(accepted)}) in kdgan/models/{name}.py") from None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["MODELS", "LeNet", "MLP", "ResNet", "build_model", "count_parameters"]
