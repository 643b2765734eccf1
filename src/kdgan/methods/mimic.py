"""MIMIC: the student regresses the teacher's logits (Ba & Caruana, NeurIPS 2014)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import l2_logits
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class MimicOptions:
    """``label_weight``: weight of an optional cross-entropy term on the true labels (0 in the
    original method, which learns from the teacher's logits only)."""

    label_weight: float = 0.0


@register
class Mimic(FrozenTeacherMethod):
    """``L = 1/(B K) sum (z_s - z_t)^2 + label_weight * CE(z_s, y)``, teacher frozen."""

    name = "mimic"
    summary = "student regresses the frozen teacher's logits with an L2 loss (Ba & Caruana 2014)"
    Options = MimicOptions
    search_space: ClassVar[SearchSpace] = {"options.label_weight": Range(0.0, 1.0), **game_learning_rates("student")}

    def loss(self, role: str, batch: Batch) -> Tensor:
        logits = self.logits("student", batch)
        loss = l2_logits(logits, self.teacher_logits(batch))
        if self.options.label_weight:
            loss = loss + self.options.label_weight * self.cross_entropy(logits, batch)
        return loss
