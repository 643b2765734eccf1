"""The input preprocessing a run applies before its network, kept as plain data so that it can
travel inside student.pt (loadable with ``weights_only=True``) and be rebuilt as a small module
in front of the network for prediction and export: a deployed student then takes raw inputs.

A preprocessing is a dict with a ``kind``:

- ``{"kind": "none"}``: the network sees the inputs as they are;
- ``{"kind": "per_image"}``: every example is standardised on its own (zero mean, unit
  population standard deviation over all its values, the deviation floored at 1/sqrt(size));
- ``{"kind": "per_feature", "mean": Tensor, "std": Tensor}``: every feature is z-scored with the
  mean and (floored) standard deviation of the labelled training split.

Privileged (teacher-only) inputs are never part of it: a deployed student does not see them.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from kdgan.errors import DataError

KINDS = ("none", "per_image", "per_feature")
STD_FLOOR = 1e-6  # per-feature standard deviations below this are raised to it (constant features)

Preprocess = dict[str, Any]


def no_preprocess() -> Preprocess:
    return {"kind": "none"}


def per_image() -> Preprocess:
    return {"kind": "per_image"}


def per_feature(train_x: Tensor) -> Preprocess:
    """Per-feature statistics of ``train_x`` (the labelled training inputs), on the CPU."""
    train_x = train_x.detach().cpu()
    return {"kind": "per_feature", "mean": train_x.mean(0), "std": train_x.std(0).clamp_min(STD_FLOOR)}


def check_preprocess(spec: Preprocess | str | None, in_shape: tuple[int, ...], source: object) -> Preprocess:
    """``spec`` (None or a kind name for the kinds without statistics) as a checked dict whose
    statistics fit ``in_shape``; ``source`` names where it came from in the error."""
    if spec is None:
        return no_preprocess()
    if isinstance(spec, str):
        spec = {"kind": spec}
    kind = spec.get("kind") if isinstance(spec, dict) else None
    if kind not in KINDS:
        raise DataError(f"{source}: unknown preprocessing {spec!r}; the kinds are {', '.join(KINDS)}")
    if kind != "per_feature":
        return {"kind": kind}
    mean, std = spec.get("mean"), spec.get("std")
    if not isinstance(mean, Tensor) or not isinstance(std, Tensor):
        raise DataError(
            f"{source}: per_feature preprocessing needs 'mean' and 'std' tensors (the training split's statistics); "
            "build it with kdgan.data.preprocess.per_feature(train_x)"
        )
    if tuple(mean.shape) != tuple(in_shape) or tuple(std.shape) != tuple(in_shape):
        raise DataError(
            f"{source}: per_feature statistics have shapes {tuple(mean.shape)} and {tuple(std.shape)} but the "
            f"network takes inputs of shape {tuple(in_shape)}"
        )
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise DataError(f"{source}: per_feature statistics hold NaN, infinite or non-positive values")
    return {"kind": kind, "mean": mean.float().cpu(), "std": std.float().cpu()}


def apply_preprocess(spec: Preprocess, x: Tensor) -> Tensor:
    """``x`` (N, ...) preprocessed as ``spec`` says: what training did to every split."""
    kind = spec["kind"]
    if kind == "per_image":
        from kdgan.data.augment import standardize

        return standardize(x)
    if kind == "per_feature":
        return (x - spec["mean"].to(x.device)) / spec["std"].to(x.device)
    return x


def describe(spec: Preprocess) -> dict[str, Any]:
    """``spec`` for people and JSON: its kind, and for per_feature the number of features."""
    if spec["kind"] == "per_feature":
        return {"kind": "per_feature", "features": int(spec["mean"].numel()),
                "source": "mean and std of the labelled training split"}
    return {"kind": spec["kind"]}


class PerImage(nn.Module):
    """Per-image standardisation as a module (exportable to ONNX and TorchScript); the same
    arithmetic as :func:`kdgan.data.augment.standardize`."""

    def __init__(self, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = list(range(1, len(in_shape) + 1))
        self.floor = 1.0 / math.sqrt(math.prod(in_shape))

    def forward(self, x: Tensor) -> Tensor:
        std, mean = torch.std_mean(x, dim=self.dims, keepdim=True, correction=0)
        return (x - mean) / std.clamp_min(self.floor)


class PerFeature(nn.Module):
    """Z-scoring with stored training statistics (buffers, so they are exported with the graph)."""

    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.clone())
        self.register_buffer("std", std.clone())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


def preprocess_module(spec: Preprocess, in_shape: tuple[int, ...]) -> nn.Module:
    if spec["kind"] == "per_image":
        return PerImage(in_shape)
    if spec["kind"] == "per_feature":
        return PerFeature(spec["mean"], spec["std"])
    return nn.Identity()


class Deployed(nn.Module):
    """A student that takes raw inputs: its run's preprocessing, then its network."""

    def __init__(self, network: nn.Module, spec: Preprocess, in_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.preprocess = preprocess_module(spec, in_shape)
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        return self.network(self.preprocess(x))
