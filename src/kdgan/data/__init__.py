"""Datasets: in-memory tensors, class-balanced labelled subsets, validation splits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from kdgan.config import DataConfig
from kdgan.data.arff import MULAN_FILES, read_mulan
from kdgan.data.checksums import SHA256, has_checksums
from kdgan.data.cifar import load_cifar10_pool
from kdgan.data.core import (
    Batch,
    Splits,
    TensorData,
    balanced_subset,
    labelled_split,
    split_indices,
    target_distribution,
    unlabelled_rest,
)
from kdgan.data.digits import load_digits_pool
from kdgan.data.idx import load_idx_pool
from kdgan.data.location import dataset_dir
from kdgan.data.own import DEFAULT_TEST_FRACTION, load_arrays, load_image_folder
from kdgan.data.preprocess import apply_preprocess, per_feature, per_image
from kdgan.data.twoview import TWO_VIEWS, split_views, two_view
from kdgan.data.yfcc import FEATURES, TAGS, TEXTS, read_yfcc
from kdgan.errors import ConfigError

# A loader reads the data section and returns (training pool, test set), or (training pool, test
# set, label names) when the files name the labels; the names are saved with the student for
# `kdgan predict`.
PoolLoader = Callable[
    [DataConfig], tuple[TensorData, TensorData] | tuple[TensorData, TensorData, list[str] | None]
]

DIGIT_NAMES = [str(d) for d in range(10)]
LABEL_NAMES: dict[str, list[str]] = {
    "digits": DIGIT_NAMES, "mnist": DIGIT_NAMES,
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                      "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}


def load_mulan_named(name: str, config: DataConfig) -> tuple[TensorData, TensorData, list[str]]:
    """A Mulan set's (pool, test, label attribute names in column order)."""
    train, test = read_mulan(name, config.dir, config.verify)
    return train.to_tensor_data(), test.to_tensor_data(), train.label_names


def load_two_view_named(name: str, config: DataConfig) -> tuple[TensorData, TensorData, list[str]]:
    """A two-view Mulan set's (pool, test, label names): the student sees one view, the teacher both."""
    spec = two_view(name)
    train, test = read_mulan(spec.dataset, config.dir, config.verify)
    return split_views(train, spec), split_views(test, spec), train.label_names


def load_yfcc_named(
    directory: str | None, test_fraction: float | None = None
) -> tuple[TensorData, TensorData, list[str]]:
    """A YFCC-style folder's (pool, test, tags); without split.txt, ``test_fraction`` of the posts is the test set."""
    fraction = DEFAULT_TEST_FRACTION if test_fraction is None else test_fraction
    files = (FEATURES, TEXTS, TAGS)
    folder = dataset_dir("yfcc", directory, ("yfcc", "."), lambda c: any((c / f).is_file() for f in files),
                         ", ".join(files))
    data = read_yfcc(folder, test_fraction=fraction)
    return data.train, data.test, list(data.tags)


DATASETS: dict[str, tuple[str, PoolLoader]] = {
    "digits": ("scikit-learn's bundled 8x8 digits (embedded, no file needed)", lambda c: load_digits_pool()),
    "mnist": ("MNIST from IDX files", lambda c: load_idx_pool("mnist", c.dir, c.verify)),
    "fashion-mnist": ("Fashion-MNIST from IDX files", lambda c: load_idx_pool("fashion-mnist", c.dir, c.verify)),
    "cifar10": ("CIFAR-10 from the python pickle batches or the JPEG zips",
                lambda c: load_cifar10_pool(c.dir, c.verify)),
    **{
        name: (f"{name} (Mulan ARFF, multi-label)", lambda c, name=name: load_mulan_named(name, c))
        for name in MULAN_FILES
    },
    **{
        f"{name}-2view": (
            f"{name}: the student sees one view, the teacher both",
            lambda c, name=name: load_two_view_named(name, c),
        )
        for name in TWO_VIEWS
    },
    "yfcc": ("YFCC100M-style: features.npy, texts.txt, tags.txt", lambda c: load_yfcc_named(c.dir, c.test_fraction)),
    "folder": ("your image folder (data.dir): one subfolder of images per class", load_image_folder),
    "arrays": ("your feature arrays (data.train, data.test): .npz, or .npy/.csv per array", load_arrays),
}


def load_splits(config: DataConfig, seed: int) -> Splits:
    """Load a dataset and split it into n labelled training examples, validation and test."""
    if config.name not in DATASETS:
        raise ConfigError(f"unknown dataset {config.name!r}; known: {', '.join(DATASETS)}")
    if config.verify and not has_checksums(config.name):
        raise ConfigError(f"data.verify checks the published files of {', '.join(SHA256)}; {config.name!r} has "
                          "no published checksums, so set data.verify=false")
    pool, test, *named = DATASETS[config.name][1](config)
    names = LABEL_NAMES.get(config.name) or (list(named[0]) if named and named[0] else None)
    subset_seed = seed if config.subset_seed is None else config.subset_seed
    train_idx, val_idx = split_indices(pool, config.n, config.val_size, subset_seed)
    unlabelled = None
    if config.unlabelled:  # from the rest of the training pool: never validation or test examples
        count = None if config.unlabelled == "all" else config.unlabelled
        unlabelled = unlabelled_rest(pool, (train_idx, val_idx), count, subset_seed)
    splits = Splits(pool.subset(train_idx), pool.subset(val_idx), test, label_names=names, unlabelled=unlabelled)
    if config.normalize == "per_image":
        spec = per_image()
        parts = {"train": splits.train, "val": splits.val, "test": splits.test, "unlabelled": splits.unlabelled}
        standardized = {name: replace(part, x=apply_preprocess(spec, part.x))
                        for name, part in parts.items() if part is not None}
        splits = replace(splits, **standardized, preprocess=spec)
    elif config.normalize == "per_feature":
        splits = standardize_features(splits)
    return splits


def standardize_features(splits: Splits) -> Splits:
    """Z-score every feature (and privileged feature) with the labelled training split's mean and std; the
    student's statistics are kept in ``preprocess`` so that a deployed student applies them too."""
    spec_x = per_feature(splits.train.x)
    spec_p = None if splits.train.privileged is None else per_feature(splits.train.privileged)

    def apply(part: TensorData) -> TensorData:
        priv = None if spec_p is None or part.privileged is None else apply_preprocess(spec_p, part.privileged)
        return replace(part, x=apply_preprocess(spec_x, part.x), privileged=priv)

    unlabelled = None if splits.unlabelled is None else apply(splits.unlabelled)
    return replace(splits, train=apply(splits.train), val=apply(splits.val), test=apply(splits.test),
                   unlabelled=unlabelled, preprocess=spec_x)


__all__ = [
    "DATASETS",
    "LABEL_NAMES",
    "Batch",
    "Splits",
    "TensorData",
    "balanced_subset",
    "labelled_split",
    "load_splits",
    "target_distribution",
]
