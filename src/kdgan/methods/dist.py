"""DIST: distillation by correlation (Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A
Stronger Teacher", NeurIPS 2022).

Instead of matching the teacher's softened probabilities exactly (KL), the student matches their
*relations*: the Pearson correlation with the teacher's per example (inter-class) and per class
across the batch (intra-class), which tolerates a weaker student's different scale. Its terms do
not use the labels, so on multi-label data (a softmax over labels, as the KDGAN paper trains it)
it applies unchanged, with the multi-label cross-entropy as its label term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.distill import FrozenTeacherMethod
from kdgan.methods.losses import dist_relations
from kdgan.methods.registry import register
from kdgan.methods.search import Range, SearchSpace, game_learning_rates


@dataclass
class DISTOptions:
    """``beta`` weights the inter-class relation, ``gamma`` the intra-class one, ``temperature``
    tau softens both. Defaults: the paper's CIFAR-100 setting (beta = gamma = 2, tau = 4), the
    small-image benchmark nearest MNIST; on ImageNet it used beta = gamma = 1, tau = 1."""

    beta: float = 2.0
    gamma: float = 2.0
    temperature: float = 4.0

    def __post_init__(self) -> None:
        if self.beta < 0 or self.gamma < 0:
            raise ConfigError(f"options.beta and options.gamma must be >= 0, got {self.beta}, {self.gamma}")
        if self.temperature <= 0:
            raise ConfigError(f"options.temperature must be > 0, got {self.temperature}")


@register
class DIST(FrozenTeacherMethod):
    """``L = CE(z_s, y) + beta inter + gamma intra`` (each term already multiplied by tau^2; see
    :func:`~kdgan.methods.losses.dist_relations`), teacher frozen. The intra-class term is
    computed across the batch, so it depends on the batch size (a batch of one gives 1 * tau^2)."""

    name = "dist"
    summary = "student matches the Pearson correlations of the teacher's soft outputs (Huang et al. 2022)"
    Options = DISTOptions
    # the paper's two settings (1, 1, 1) and (2, 2, 4) lie inside
    search_space: ClassVar[SearchSpace] = {
        "options.beta": Range(0.25, 8.0, log=True), "options.gamma": Range(0.25, 8.0, log=True),
        "options.temperature": Range(1.0, 8.0, log=True), **game_learning_rates("student"),
    }

    def loss(self, role: str, batch: Batch) -> Tensor:
        opts = self.options
        logits = self.logits("student", batch)
        inter, intra = dist_relations(logits, self.teacher_logits(batch), opts.temperature)
        return self.cross_entropy(logits, batch) + opts.beta * inter + opts.gamma * intra
