"""DISTN: soft-target distillation plus the hard-label loss (Hinton, Vinyals & Dean, 2015)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import DISTILL_LOSSES, distillation_loss
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class DistnOptions:
    """``weight`` p of the distillation term, softening ``temperature`` T, and ``distill``: ``kl``
    (Hinton's form) or ``l2_logits`` (the KDGAN authors' code used T^2 MSE with T=3, p=0.7)."""

    weight: float = 0.7
    temperature: float = 3.0
    distill: str = "kl"

    def __post_init__(self) -> None:
        if not 0 <= self.weight <= 1:
            raise ConfigError(f"options.weight must be in [0, 1], got {self.weight}")
        if self.temperature <= 0:
            raise ConfigError(f"options.temperature must be > 0, got {self.temperature}")
        if self.distill not in DISTILL_LOSSES:
            raise ConfigError(f"options.distill must be one of {', '.join(DISTILL_LOSSES)}")


@register
class Distn(FrozenTeacherMethod):
    """``L = (1 - p) CE(z_s, y) + p L_DS(z_s, z_t; T)``, teacher frozen."""

    name = "distn"
    summary = "student learns from labels and the frozen teacher's softened outputs (Hinton et al. 2015)"
    Options = DistnOptions
    # Hinton et al. tried temperatures from 1 to 20
    search_space: ClassVar[SearchSpace] = {
        "options.weight": Range(0.0, 1.0), "options.temperature": Range(1.0, 20.0, log=True),
        **game_learning_rates("student"),
    }

    def loss(self, role: str, batch: Batch) -> Tensor:
        opts = self.options
        logits = self.logits("student", batch)
        soft = distillation_loss(opts.distill)(logits, self.teacher_logits(batch), opts.temperature)
        return (1 - opts.weight) * self.cross_entropy(logits, batch) + opts.weight * soft
