"""NaGAN: the two-player game of the classifier against a discriminator (the KDGAN paper's
naive GAN baseline, in the spirit of IRGAN, Wang et al. 2017)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.methods.adversarial import AdversarialMethod, AdversarialOptions
from kdgan.methods.registry import register
from kdgan.methods.search import TEMPERATURE_SCHEDULE, Range, SearchSpace, game_learning_rates


@dataclass
class NaGANOptions(AdversarialOptions):
    """NaGAN has only the shared adversarial options."""


@register
class NaGAN(AdversarialMethod):
    """``min_C max_D E_{y~p_u}[log D(x,y)] + E_{y~p_c}[log(1 - D(x,y))]``."""

    name = "nagan"
    summary = "two-player GAN: the student against a discriminator of (x, y) pairs"
    Options = NaGANOptions
    search_space: ClassVar[SearchSpace] = {
        **TEMPERATURE_SCHEDULE, **game_learning_rates("student", "discriminator"),
        "discriminator.passes": Range(1, 20, integer=True),
    }
    roles: ClassVar[tuple[str, ...]] = ("student", "discriminator")
    schedule: ClassVar[tuple[str, ...]] = ("discriminator", "student")

    def loss_terms(self, role: str, batch: Batch) -> dict[str, Tensor]:
        if role == "discriminator":
            return {"discriminator": self.discriminator_loss(batch)}
        logits = self.logits("student", batch)
        terms = {"adversarial": self.generator_adversarial_loss(logits, batch)}
        if self.options.label_weight:
            terms["label"] = self.options.label_weight * self.cross_entropy(logits, batch)
        return terms
