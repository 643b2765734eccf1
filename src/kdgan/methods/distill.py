"""Shared pieces of the distillation methods whose teacher is frozen after pretraining."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from kdgan.data.core import Batch
from kdgan.methods.base import Method


class FrozenTeacherMethod(Method):
    """The teacher is pretrained, then only provides targets; only the student is updated."""

    roles: ClassVar[tuple[str, ...]] = ("student", "teacher")
    schedule: ClassVar[tuple[str, ...]] = ("student",)

    def teacher_logits(self, batch: Batch) -> Tensor:
        """The frozen teacher's logits (computed once per training set by the engine's output
        cache unless inputs are augmented)."""
        with torch.no_grad():
            return self.logits("teacher", batch)
