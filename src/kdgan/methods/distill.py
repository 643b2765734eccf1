"""Shared pieces of the distillation methods whose teacher is frozen after pretraining."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdgan.data.core import Batch, TensorData
from kdgan.methods.base import Method
from kdgan.metrics import predict_logits


class FrozenTeacherMethod(Method):
    """The teacher is pretrained, then only provides targets; only the student is updated."""

    roles: ClassVar[tuple[str, ...]] = ("student", "teacher")
    schedule: ClassVar[tuple[str, ...]] = ("student",)

    cache: Tensor | None = None

    def begin_training(self, train: TensorData, augmented: bool) -> None:
        """The teacher is frozen: unless inputs are augmented, compute its logits on the training
        set once and look them up by example index instead of running it every step."""
        self.cache = None if augmented else predict_logits(lambda b: self.forward("teacher", b), train, 4096)

    def teacher_logits(self, batch: Batch) -> Tensor:
        if self.cache is not None and batch.index is not None:
            return self.cache[batch.index]
        with torch.no_grad():
            return self.forward("teacher", batch)
