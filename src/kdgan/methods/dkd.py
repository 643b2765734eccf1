"""DKD: decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
Distillation", CVPR 2022).

Hinton's KD loss splits into a target-class term (TCKD: how confident the teacher is in the true
class) and a non-target term (NCKD: how it ranks the wrong classes) whose weight, in KD, is tied
to ``1 - p_t``; DKD weights the two freely. Defined for one true class per example: on
multi-label data it refuses to train (there is no single target class to split on).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import decoupled_kd
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class DKDOptions:
    """``alpha`` weights TCKD, ``beta`` NCKD, ``temperature`` T softens both; the KD terms are
    ramped in linearly over the first ``warmup`` game epochs (0: none). Defaults are the paper's
    CIFAR-100 settings (alpha 1, beta 8, T 4, 20 warm-up epochs; ImageNet used beta 0.5, T 1)."""

    alpha: float = 1.0
    beta: float = 8.0
    temperature: float = 4.0
    warmup: int = 20

    def __post_init__(self) -> None:
        if self.alpha < 0 or self.beta < 0:
            raise ConfigError(f"options.alpha and options.beta must be >= 0, got {self.alpha}, {self.beta}")
        if self.temperature <= 0:
            raise ConfigError(f"options.temperature must be > 0, got {self.temperature}")
        if self.warmup < 0:
            raise ConfigError(f"options.warmup must be >= 0 epochs, got {self.warmup}")


@register
class DKD(FrozenTeacherMethod):
    """``L = CE(z_s, y) + w_e (alpha TCKD + beta NCKD)`` at temperature T (see
    :func:`~kdgan.methods.losses.decoupled_kd`), ``w_e = min((e + 1) / warmup, 1)`` in game
    epoch ``e`` (counted from 0), teacher frozen."""

    name = "dkd"
    summary = "KD split into target-class and non-target-class terms, weighted apart (Zhao et al. 2022)"
    Options = DKDOptions
    multilabel = False  # one target class per example
    uses_unlabelled = False  # both terms need the true class
    # around the paper's values (it reports beta from 0.5 on ImageNet to 8 on CIFAR-100)
    search_space: ClassVar[SearchSpace] = {
        "options.alpha": Range(0.1, 4.0, log=True), "options.beta": Range(0.25, 16.0, log=True),
        "options.temperature": Range(1.0, 8.0, log=True), **game_learning_rates("student"),
    }

    def warmup_weight(self) -> float:
        """The KD terms' share in the current game epoch: linear up to 1 over ``warmup`` epochs."""
        warmup = self.options.warmup
        return 1.0 if warmup == 0 else min((self.epoch + 1) / warmup, 1.0)

    def loss(self, role: str, batch: Batch) -> Tensor:
        if batch.y.ndim != 1:
            raise ConfigError("method 'dkd' needs one class per example (it splits the target class from the "
                              "rest); for multi-label data use distn, dist or kd_logit_std")
        opts = self.options
        logits = self.logits("student", batch)
        # both terms split on the true class: labelled rows only (unlabelled inputs add nothing here)
        tckd, nckd = decoupled_kd(batch.label_rows(logits), batch.label_rows(self.teacher_logits(batch)),
                                  batch.label_rows(batch.y), opts.temperature)
        return self.cross_entropy(logits, batch) + self.warmup_weight() * (opts.alpha * tckd + opts.beta * nckd)
