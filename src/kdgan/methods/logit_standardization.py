"""KD with logit standardisation (Sun, Ren, Li, Wang & Cao, "Logit Standardization in Knowledge
Distillation", CVPR 2024).

Hinton's KD with one shared temperature asks the student to match the teacher's logit range as
well as their relations; z-scoring each example's logits (teacher and student separately) before
the softened KL removes the range, so only the relations are distilled. The KD term does not use
the labels: on multi-label data (softmax over labels) it applies unchanged, with the
multi-label cross-entropy as its label term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import kl_temperature, z_score
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class LogitStdOptions:
    """``temperature``: the base temperature applied to the standardised logits; ``kd_weight`` and
    ``ce_weight`` weight the two terms. Defaults are the authors' CIFAR-100 setting for KD
    (``--base-temp 2 --kd-weight 9`` in their README, with the cross-entropy weight 1 of their
    released config)."""

    temperature: float = 2.0
    kd_weight: float = 9.0
    ce_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.temperature <= 0:
            raise ConfigError(f"options.temperature must be > 0, got {self.temperature}")
        if self.kd_weight < 0 or self.ce_weight < 0:
            raise ConfigError(f"options.kd_weight and options.ce_weight must be >= 0, got {self.kd_weight}, "
                              f"{self.ce_weight}")


@register
class LogitStandardizedKD(FrozenTeacherMethod):
    """``L = ce_weight CE(z_s, y) + kd_weight T^2 / B sum_b KL(softmax(Z(z_t)/T) || softmax(Z(z_s)/T))``
    with ``Z`` the per-example z-score (:func:`~kdgan.methods.losses.z_score`), teacher frozen."""

    name = "kd_logit_std"
    summary = "Hinton's KD on z-scored logits: relations between logits, not their range (Sun et al. 2024)"
    Options = LogitStdOptions
    # the authors used base temperatures 2 and 3 and KD weights 1 and 9
    search_space: ClassVar[SearchSpace] = {
        "options.temperature": Range(0.5, 8.0, log=True), "options.kd_weight": Range(0.1, 30.0, log=True),
        **game_learning_rates("student"),
    }

    def loss(self, role: str, batch: Batch) -> Tensor:
        opts = self.options
        logits = self.logits("student", batch)
        soft = kl_temperature(z_score(logits), z_score(self.teacher_logits(batch)), opts.temperature)
        return opts.ce_weight * self.cross_entropy(logits, batch) + opts.kd_weight * soft
