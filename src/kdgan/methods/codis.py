"""CODIS: codistillation, two models trained at once, each distilling from the other
(Anil et al., "Large scale distributed neural network training through online distillation",
ICLR 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.base import Method
from kdgan.methods.losses import DISTILL_LOSSES, distillation_loss
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class CodisOptions:
    """``beta`` weights the student's distillation from the teacher, ``gamma`` the teacher's from
    the student; ``distill`` and ``temperature`` choose the distillation loss."""

    beta: float = 1.0
    gamma: float = 1.0
    distill: str = "kl"
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.beta < 0 or self.gamma < 0:
            raise ConfigError("options.beta and options.gamma must be >= 0")
        if self.distill not in DISTILL_LOSSES:
            raise ConfigError(f"options.distill must be one of {', '.join(DISTILL_LOSSES)}")


@register
class Codis(Method):
    """``L_T = CE(z_t, y) + gamma L_DS(z_t, sg(z_s))``, ``L_S = CE(z_s, y) + beta L_DS(z_s, sg(z_t))``
    where ``sg`` stops gradients; both models keep training."""

    name = "codis"
    summary = "student and teacher train together, each distilling from the other (Anil et al. 2018)"
    Options = CodisOptions
    # beta and gamma in the KDGAN paper's ranges for its distillation weights
    search_space: ClassVar[SearchSpace] = {
        "options.beta": Range(1e-3, 1e3, log=True), "options.gamma": Range(1e-4, 1e2, log=True),
        "options.temperature": Range(1.0, 10.0, log=True), **game_learning_rates("student", "teacher"),
    }
    roles: ClassVar[tuple[str, ...]] = ("student", "teacher")
    schedule: ClassVar[tuple[str, ...]] = ("teacher", "student")

    def loss(self, role: str, batch: Batch) -> Tensor:
        opts = self.options
        other = "teacher" if role == "student" else "student"
        weight = opts.beta if role == "student" else opts.gamma
        logits = self.logits(role, batch)
        with torch.no_grad():
            target = self.logits(other, batch)
        soft = distillation_loss(opts.distill)(logits, target, opts.temperature)
        return self.cross_entropy(logits, batch) + weight * soft
