"""Datasets: in-memory tensors, class-balanced labelled subsets, validation splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from kdgan.config import DataConfig
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
from kdgan.data.idx import load_idx_pool
from kdgan.errors import ConfigError

PoolLoader = Callable[[str | None], tuple[TensorData, TensorData]]

DATASETS: dict[str, tuple[str, PoolLoader]] = {
    "digits": ("scikit-learn's bundled 8x8 digits (embedded, no file needed)", lambda d: load_digits_pool()),
    "mnist": ("MNIST from IDX files", lambda d: load_idx_pool("mnist", d)),
    "fashion-mnist": ("Fashion-MNIST from IDX files", lambda d: load_idx_pool("fashion-mnist", d)),
    "cifar10": ("CIFAR-10 from the python pickle batches or the JPEG zips", load_cifar10_pool),
}


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load a dataset and split it into n labelled training examples, validation and test."""
    if config.name not in DATASETS:
        raise ConfigError(f"unknown dataset {config.name!r}; known: {', '.join(DATASETS)}")
    pool, test = DATASETS[config.name][1](config.dir)
    subset_seed = seed if config.subset_seed is None else config.subset_seed
    train, val = labelled_split(pool, config.n, config.val_size, subset_seed)
    splits = Splits(train, val, test)
    if config.standardize:
        splits = Splits(*(replace(part, x=standardize(part.x)) for part in (splits.train, splits.val, splits.test)))
    return splits


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
