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
    ``index`` holds the examples' row numbers in their dataset (used to look up cached outputs).
    ``labelled`` (bool, one per row) marks the rows whose ``y`` is a label when the batch mixes in
    unlabelled examples (``data.unlabelled``; their ``y`` is -1, or NaN for multi-hot, so that a
    label term reading them fails loudly); None means every row is labelled."""

    x: Tensor
    y: Tensor
    privileged: Tensor | None = None
    index: Tensor | None = None
    labelled: Tensor | None = None

    def label_rows(self, values: Tensor) -> Tensor:
        """The rows of ``values`` (one per example of the batch) that have labels: what every
        term that reads a label must restrict itself to."""
        return values if self.labelled is None else values[self.labelled]

    def with_unlabelled(self, other: Batch) -> Batch:
        """This (labelled) batch followed by the rows of ``other`` as unlabelled rows; without an
        index, since the rows come from two datasets (the output cache does not serve it)."""
        if (self.privileged is None) != (other.privileged is None):
            raise DataError("labelled and unlabelled examples must both have privileged inputs, or neither")
        blank = torch.full_like(other.y, float("nan") if other.y.is_floating_point() else -1)
        priv = None if self.privileged is None else torch.cat([self.privileged, other.privileged])
        labelled = torch.cat([torch.ones(len(self.y), dtype=torch.bool, device=self.y.device),
                              torch.zeros(len(other.y), dtype=torch.bool, device=self.y.device)])
        return Batch(torch.cat([self.x, other.x]), torch.cat([self.y, blank]), priv, None, labelled)


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

    def endless_batches(
        self, batch_size: int, generator: torch.Generator | None = None, shard: tuple[int, int] = (0, 1)
    ) -> Iterator[Batch]:
        """:meth:`batches` without end: a fresh permutation (from ``generator``) each time the data
        runs out. Unlabelled examples join labelled batches this way, so a resumed run draws the
        same ones."""
        while True:
            yield from self.batches(batch_size, generator, shard=shard)


@dataclass
class Splits:
    """Training (the n labelled examples), validation (model selection) and test sets.

    ``unlabelled`` (optional, ``data.unlabelled``) holds further training-pool inputs whose labels
    are never used (its targets are placeholders); ``label_names`` names the labels in class-index
    order when the data says what they are (saved with the student, so that ``kdgan predict`` can
    print them); ``preprocess`` is the input preprocessing already applied to every split's ``x``, as plain data (see
    :mod:`kdgan.data.preprocess`), so that a deployed student can apply it to raw inputs."""

    train: TensorData
    val: TensorData
    test: TensorData
    label_names: list[str] | None = None
    preprocess: dict[str, Any] | None = None
    unlabelled: TensorData | None = None

    def __post_init__(self) -> None:
        if self.label_names is not None and len(self.label_names) != self.num_classes:
            raise DataError(
                f"label_names has {len(self.label_names)} names but the data has {self.num_classes} labels"
            )

    @property
    def num_classes(self) -> int:
        return self.train.num_classes

    def to(self, device: torch.device | str) -> Splits:
        unlabelled = None if self.unlabelled is None else self.unlabelled.to(device)
        return replace(self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device),
                       unlabelled=unlabelled)


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
    train_idx, val_idx = split_indices(pool, n, val_size, seed)
    return pool.subset(train_idx), pool.subset(val_idx)


def unlabelled_rest(pool: TensorData, taken: tuple[np.ndarray, ...], count: int | None, seed: int) -> TensorData:
    """``count`` examples (None: all) drawn at random from the pool's rows not in ``taken`` (the
    labelled and validation rows), as unlabelled inputs: their targets are zeros, never read."""
    rest = np.setdiff1d(np.arange(len(pool)), np.concatenate(taken))
    if count is not None and count > len(rest):
        raise DataError(f"data.unlabelled={count} but only {len(rest)} training-pool examples are left after "
                        f"data.n and data.val_size; lower it or use data.unlabelled: all")
    if not len(rest) or count == 0:
        raise DataError("data.unlabelled asks for unlabelled examples but no training-pool example is left after "
                        "data.n and data.val_size; lower them or set data.unlabelled: 0")
    chosen = rest if count is None else np.sort(np.random.default_rng((seed, 1)).choice(rest, count, replace=False))
    part = pool.subset(chosen)
    return replace(part, y=torch.zeros_like(part.y))


def split_indices(pool: TensorData, n: int | None, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The pool rows of :func:`labelled_split`'s (training, validation) parts."""
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
        return np.sort(train_idx), np.sort(val_idx)
    labels = pool.y.cpu().numpy()
    val_idx = balanced_subset(labels, val_size, rng) if val_size else np.array([], dtype=np.int64)
    remaining = np.setdiff1d(np.arange(total), val_idx)
    train_idx = remaining if n is None else remaining[balanced_subset(labels[remaining], n, rng)]
    return train_idx, val_idx


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
