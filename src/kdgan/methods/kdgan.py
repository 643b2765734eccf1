"""KDGAN: the three-player game of classifier, teacher and discriminator (Wang, Zhang, Sun & Qi,
"KDGAN: Knowledge Distillation with Generative Adversarial Networks", NeurIPS 2018)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.adversarial import AdversarialMethod, AdversarialOptions
from kdgan.methods.losses import DISTILL_LOSSES, distillation_loss
from kdgan.methods.registry import register
from kdgan.methods.search import TEMPERATURE_SCHEDULE, Range, SearchSpace, game_learning_rates


@dataclass
class KDGANOptions(AdversarialOptions):
    """``alpha`` in [0, 1] weights the student's samples (and ``1 - alpha`` the teacher's) in the
    game; ``beta`` weights the student's distillation from the teacher, ``gamma`` the teacher's
    from the student; ``distill`` (``l2_logits`` as in the paper's results, or ``kl``) and its
    ``distill_temperature`` (used by ``kl`` only)."""

    alpha: float = 0.5
    beta: float = 1.0
    gamma: float = 0.01
    distill: str = "l2_logits"
    distill_temperature: float = 3.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"options.alpha must be in [0, 1], got {self.alpha}")
        if self.beta < 0 or self.gamma < 0:
            raise ConfigError(f"options.beta and options.gamma must be >= 0, got {self.beta}, {self.gamma}")
        if self.distill not in DISTILL_LOSSES:
            raise ConfigError(f"options.distill must be one of {', '.join(DISTILL_LOSSES)}, got {self.distill!r}")
        if self.distill_temperature <= 0:
            raise ConfigError(f"options.distill_temperature must be > 0, got {self.distill_temperature}")


@register
class KDGAN(AdversarialMethod):
    """``min_{C,T} max_D E_{p_u}[log D] + alpha E_{p_c}[log(1-D)] + (1-alpha) E_{p_t}[log(1-D)]
    + beta L_DS(C <- T) + gamma L_DS(T <- C)``. Each round updates D, then T, then C."""

    name = "kdgan"
    summary = "three-player game: student and teacher distil from each other and both fool a discriminator"
    Options = KDGANOptions
    # The paper's ranges for alpha, beta, gamma; the game's learning rates, the temperature schedule
    # and D's passes per round (the authors' code made 20).
    search_space: ClassVar[SearchSpace] = {
        "options.alpha": Range(0.0, 1.0), "options.beta": Range(1e-3, 1e3, log=True),
        "options.gamma": Range(1e-4, 1e2, log=True), **TEMPERATURE_SCHEDULE,
        **game_learning_rates("student", "teacher", "discriminator"),
        "discriminator.passes": Range(1, 20, integer=True),
    }
    roles: ClassVar[tuple[str, ...]] = ("student", "teacher", "discriminator")
    schedule: ClassVar[tuple[str, ...]] = ("discriminator", "teacher", "student")

    def generators(self, batch: Batch) -> list[tuple[Tensor, float]]:
        """The student's and the teacher's label distributions, weighted ``alpha`` and ``1 - alpha``:
        D's optimum is ``p_u / (p_u + p_alpha)`` with ``p_alpha = alpha p_c + (1 - alpha) p_t``."""
        alpha = self.options.alpha
        return [(self.logits("student", batch).softmax(-1), alpha),
                (self.logits("teacher", batch).softmax(-1), 1 - alpha)]

    def loss_terms(self, role: str, batch: Batch) -> dict[str, Tensor]:
        opts = self.options
        if role == "discriminator":
            return {"discriminator": self.discriminator_loss(batch)}
        other = "teacher" if role == "student" else "student"
        adv_weight, ds_weight = (opts.alpha, opts.beta) if role == "student" else (1 - opts.alpha, opts.gamma)
        logits = self.logits(role, batch)
        with torch.no_grad():
            other_logits = self.logits(other, batch)
        terms = {"distillation": ds_weight * distillation_loss(opts.distill)(logits, other_logits,
                                                                             opts.distill_temperature)}
        if adv_weight:
            terms["adversarial"] = adv_weight * self.generator_adversarial_loss(logits, batch)
        if opts.label_weight and role == "student":
            terms["label"] = opts.label_weight * self.cross_entropy(logits, batch)
        return terms
