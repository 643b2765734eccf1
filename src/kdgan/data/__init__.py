"""Datasets: in-memory tensors, class-balanced labelled subsets, validation splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from kdgan.config import DataConfig
from kdgan.data.arff import MULAN_FILES, load_mulan_pool
from kdgan.data.augment import standardize
from kdgan.data.cifar import load_cifar10_pool
from kdgan.data.core import (
    Batch,
    Splits,
    TensorData,
    balanced_subset,
    labelled_split,
    target_distribution,
)
from kdgan.data.digits import load_digits_pool
from kdgan.data.idx import load_idx_pool, resolve_dir
from kdgan.data.twoview import TWO_VIEWS, load_two_view_pool
from kdgan.data.yfcc import load_yfcc_pool
from kdgan.errors import ConfigError

PoolLoader = Callable[[str | None], tuple[TensorData, TensorData]]

DATASETS: dict[str, tuple[str, PoolLoader]] = {
    "digits": ("scikit-learn's bundled 8x8 digits (embedded, no file needed)", lambda d: load_digits_pool()),
    "mnist": ("MNIST from IDX files", lambda d: load_idx_pool("mnist", d)),
    "fashion-mnist": ("Fashion-MNIST from IDX files", lambda d: load_idx_pool("fashion-mnist", d)),
    "cifar10": ("CIFAR-10 from the python pickle batches or the JPEG zips", load_cifar10_pool),
    **{
        name: (f"{name} (Mulan ARFF, multi-label)", lambda d, name=name: load_mulan_pool(name, d))
        for name in MULAN_FILES
    },
    **{
        f"{name}-2view": (
            f"{name}: the student sees one view, the teacher both", lambda d, name=name: load_two_view_pool(name, d)
        )
        for name in TWO_VIEWS
    },
    "yfcc": ("YFCC100M-style: features.npy, texts.txt, tags.txt", lambda d: load_yfcc_pool(resolve_dir("yfcc", d))),
}


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load a dataset and split it into n labelled training examples, validation and test."""
    if config.name not in DATASETS:
        raise ConfigError(f"unknown dataset {config.name!r}; known: {', '.join(DATASETS)}")
    pool, test = DATASETS[config.name][1](config.dir)
    subset_seed = seed if config.subset_seed is None else config.subset_seed
    train, val = labelled_split(pool, config.n, config.val_size, subset_seed)
    splits = Splits(train, val, test)
    if config.normalize == "per_image":
        splits = Splits(*(replace(part, x=standardize(part.x)) for part in (splits.train, splits.val, splits.test)))
    elif config.normalize == "per_feature":
        splits = standardize_features(splits)
    return splits


def standardize_features(splits: Splits) -> Splits:
    """Z-score every feature (and privileged feature) with the training split's mean and std."""

    def scaler(values: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        mean, std = values.mean(0), values.std(0).clamp_min(1e-6)
        return lambda t: (t - mean) / std

    scale_x = scaler(splits.train.x)
    scale_p = None if splits.train.privileged is None else scaler(splits.train.privileged)

    def apply(part: TensorData) -> TensorData:
        priv = None if scale_p is None or part.privileged is None else scale_p(part.privileged)
        return replace(part, x=scale_x(part.x), privileged=priv)

    return Splits(apply(splits.train), apply(splits.val), apply(splits.test))


__all__ = [
    "DATASETS",
    "Batch",
    "Splits",
    "TensorData",
    "balanced_subset",
    "labelled_split",
    "load_splits",
    "target_distribution",
]
