"""In-memory datasets: tensors on the training device, batched by index.

An example carries the student's input ``x``, an optional teacher-only (privileged) input, and a
target: a class index (multi-class) or a multi-hot vector (multi-label).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kdgan.errors import DataError


@dataclass
class Batch:
    """A mini-batch. ``privileged`` is only ever passed to the teacher (and optionally D);
    ``index`` holds the examples' row numbers in their dataset (used to look up cached outputs)."""

    x: Tensor
    y: Tensor
    privileged: Tensor | None = None
    index: Tensor | None = None


@dataclass
class TensorData:
    """A dataset held as tensors. ``y`` is int64 class indices or a float multi-hot matrix."""

    x: Tensor
    y: Tensor
    num_classes: int
    privileged: Tensor | None = None

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise DataError(f"inputs have {len(self.x)} rows but targets have {len(self.y)}")
        if self.privileged is not None and len(self.privileged) != len(self.x):
            raise DataError(
                f"privileged inputs have {len(self.privileged)} rows but inputs have {len(self.x)}"
            )
        if self.multilabel:
            if self.y.ndim != 2 or self.y.shape[1] != self.num_classes:
                raise DataError(
                    f"multi-hot targets must have shape (N, {self.num_classes}), got {tuple(self.y.shape)}"
                )
        elif self.y.ndim != 1:
            raise DataError(f"class targets must be a 1-d int64 tensor, got shape {tuple(self.y.shape)}")
        elif len(self.y) and (int(self.y.min()) < 0 or int(self.y.max()) >= self.num_classes):
            raise DataError(
                f"class labels must lie in [0, {self.num_classes - 1}], found "
                f"{int(self.y.min())}..{int(self.y.max())}; check num_classes or the label file"
            )

    @property
    def multilabel(self) -> bool:
        return self.y.is_floating_point()

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, index: Tensor | np.ndarray) -> TensorData:
        index = torch.as_tensor(index, device=self.x.device, dtype=torch.long)
        priv = None if self.privileged is None else self.privileged[index]
        return replace(self, x=self.x[index], y=self.y[index], privileged=priv)

    def to(self, device: torch.device | str) -> TensorData:
        priv = None if self.privileged is None else self.privileged.to(device)
        return replace(self, x=self.x.to(device), y=self.y.to(device), privileged=priv)

    def batch(self, index: Tensor) -> Batch:
        priv = None if self.privileged is None else self.privileged[index]
        return Batch(self.x[index], self.y[index], priv, index)

    def batches(
        self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True,
        shard: tuple[int, int] = (0, 1),
    ) -> Iterator[Batch]:
        """Yield mini-batches by index; one permutation per call, the last batch may be short.

        With ``shard=(rank, world)`` this process takes every world-th example of the (shared)
        permutation, so the k-th batches of all ranks form the k-th global batch of
        ``batch_size * world`` examples; the permutation's tail that does not split evenly
        across ranks is dropped so that every rank makes the same number of steps.
        """
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=generator, device="cpu").to(self.x.device)
        else:
            order = torch.arange(n, device=self.x.device)
        rank, world = shard
        if world > 1:
            order = order[: n - n % world][rank::world]
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])


@dataclass
class Splits:
    """Training (the n labelled examples), validation (model selection) and test sets.

    ``label_names`` names the labels in class-index order when the data says what they are
    (saved with the student, so that ``kdgan predict`` can print them); ``preprocess`` is the
    input preprocessing already applied to every split's ``x``, as plain data (see
    :mod:`kdgan.data.preprocess`), so that a deployed student can apply it to raw inputs."""

    train: TensorData
    val: TensorData
    test: TensorData
    label_names: list[str] | None = None
    preprocess: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.label_names is not None and len(self.label_names) != self.num_classes:
            raise DataError(
                f"label_names has {len(self.label_names)} names but the data has {self.num_classes} labels"
            )

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def to(self, device: torch.device | str) -> Splits:
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device))


def balanced_subset(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``n`` indices with classes as equal in count as possible (extra ones go to random
    classes), without replacement. Raises DataError if some class has too few examples."""
    labels = np.asarray(labels)
    classes = np.unique(labels)
    per_class = np.full(len(classes), n // len(classes))
    per_class[rng.choice(len(classes), n % len(classes), replace=False)] += 1
    chosen = []
    for cls, count in zip(classes, per_class, strict=True):
        pool = np.flatnonzero(labels == cls)
        if count > len(pool):
            raise DataError(
                f"cannot draw {count} examples of class {cls}: only {len(pool)} available; "
                "lower data.n or data.val_size"
            )
        chosen.append(rng.choice(pool, count, replace=False))
    return np.sort(np.concatenate(chosen))


def labelled_split(
    pool: TensorData, n: int | None, val_size: int, seed: int
) -> tuple[TensorData, TensorData]:
    """Split a training pool into n labelled training examples and a disjoint validation set.

    Multi-class pools are split class-balanced; multi-label pools uniformly at random.
    ``n=None`` uses every example not taken for validation.
    """
    rng = np.random.default_rng(seed)
    total = len(pool)
    wanted = (n or 0) + val_size
    if wanted > total:
        raise DataError(
            f"the training pool has {total} examples but n={n} plus val_size={val_size} were asked; "
            "lower data.n or data.val_size"
        )
    if pool.multilabel:
        order = rng.permutation(total)
        val_idx = order[:val_size]
        rest = order[val_size:]
        train_idx = rest if n is None else rest[:n]
        return pool.subset(np.sort(train_idx)), pool.subset(np.sort(val_idx))
    labels = pool.y.cpu().numpy()
    val_idx = balanced_subset(labels, val_size, rng) if val_size else np.array([], dtype=np.int64)
    remaining = np.setdiff1d(np.arange(total), val_idx)
    train_idx = remaining if n is None else remaining[balanced_subset(labels[remaining], n, rng)]
    return pool.subset(train_idx), pool.subset(val_idx)


def target_distribution(y: Tensor, num_classes: int) -> Tensor:
    """The true label distribution p_u(y|x): one-hot for class indices, the multi-hot vector
    normalised to sum to one for multi-label targets."""
    if y.is_floating_point():
        return y / y.sum(dim=-1, keepdim=True).clamp_min(1.0)
    return torch.nn.functional.one_hot(y, num_classes).to(torch.get_default_dtype())


def multi_hot(y: Tensor, num_classes: int) -> Tensor:
    """Targets as a 0/1 matrix: one-hot for class indices, unchanged for multi-hot targets."""
    if y.is_floating_point():
        return y
    return torch.nn.functional.one_hot(y, num_classes).to(torch.get_default_dtype())
