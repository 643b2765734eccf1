"""NOISY: logit matching against a teacher perturbed with noise (Sau & Balasubramanian, 2016)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import l2_logits
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class NoisyOptions:
    """A fraction ``ratio`` of each batch's examples get teacher logits ``z (1 + xi)``,
    ``xi ~ N(0, std^2)`` per logit; defaults are the KDGAN authors' (0.1 and 0.1)."""

    ratio: float = 0.1
    std: float = 0.1

    def __post_init__(self) -> None:
        if not 0 <= self.ratio <= 1:
            raise ConfigError(f"options.ratio must be in [0, 1], got {self.ratio}")
        if self.std < 0:
            raise ConfigError(f"options.std must be >= 0, got {self.std}")


@register
class Noisy(FrozenTeacherMethod):
    """``L = 1/(B K) sum (z_s - z_t (1 + m xi))^2``, ``m ~ Bernoulli(ratio)`` per example."""

    name = "noisy"
    summary = "student regresses noise-perturbed logits of the frozen teacher (Sau & Balasubramanian 2016)"
    Options = NoisyOptions
    search_space: ClassVar[SearchSpace] = {
        "options.ratio": Range(0.0, 1.0), "options.std": Range(0.01, 1.0, log=True),
        **game_learning_rates("student"),
    }

    def loss(self, role: str, batch: Batch) -> Tensor:
        target = self.teacher_logits(batch)
        mask = torch.rand(target.shape[0], 1, device=target.device) < self.options.ratio
        noise = torch.randn_like(target) * self.options.std
        return l2_logits(self.logits("student", batch), target * (1 + mask * noise))
