"""Shared pieces of the adversarial methods (NaGAN, KDGAN): options and the generator's loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.base import Method
from kdgan.methods.losses import discriminator_loss
from kdgan.methods.sampling import ESTIMATORS, TemperatureSchedule, adversarial_loss


@dataclass
class AdversarialOptions:
    """How generators' labels are sampled and scored.

    - ``estimator``: ``concrete`` (default), ``straight_through`` or ``reinforce``;
    - ``tau_start`` / ``tau_end``: the concrete temperature, annealed exponentially over epochs;
    - ``samples``: label samples per example and generator;
    - ``generator_loss``: ``minimax`` (log(1 - D), the paper's game) or ``nonsaturating`` (-log D);
    - ``label_weight``: weight of a cross-entropy term on the true labels in the student's loss
      (0 in the paper, where labels reach the generators only through D).
    """

    estimator: str = "concrete"
    tau_start: float = 1.0
    tau_end: float = 0.1
    samples: int = 1
    generator_loss: str = "minimax"
    label_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"options.estimator must be one of {', '.join(ESTIMATORS)}, got {self.estimator!r}")
        if self.tau_start <= 0 or self.tau_end <= 0:
            raise ConfigError(f"options.tau_start and tau_end must be > 0, got {self.tau_start}, {self.tau_end}")
        if self.samples < 1:
            raise ConfigError(f"options.samples must be >= 1, got {self.samples}")
        if self.generator_loss not in ("minimax", "nonsaturating"):
            raise ConfigError(f"options.generator_loss must be minimax or nonsaturating, got {self.generator_loss!r}")
        if self.label_weight < 0:
            raise ConfigError(f"options.label_weight must be >= 0, got {self.label_weight}")


class AdversarialMethod(Method):
    """A method with a discriminator that scores generators' label samples."""

    def fake_distribution(self, batch: Batch) -> Tensor:
        """The label distribution D must tell from the true one: the student's, by default."""
        return self.forward("student", batch).softmax(-1)

    def discriminator_loss(self, batch: Batch) -> Tensor:
        disc_logits = self.forward("discriminator", batch)
        with torch.no_grad():
            p_fake = self.fake_distribution(batch)
        return discriminator_loss(disc_logits, self.target(batch, disc_logits), p_fake)

    def pretrain_loss(self, role: str, batch: Batch) -> Tensor:
        """Classifiers pretrain supervised; D pretrains against the pretrained generators."""
        if role == "discriminator":
            return self.discriminator_loss(batch)
        return super().pretrain_loss(role, batch)

    @property
    def temperature(self) -> float:
        opts = self.options
        return TemperatureSchedule(opts.tau_start, opts.tau_end, self.epochs)(self.epoch)

    def generator_adversarial_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """The adversarial term of a generator with these logits; D is only evaluated."""
        with torch.no_grad():
            disc_logits = self.forward("discriminator", batch)
        opts = self.options
        return adversarial_loss(
            logits, disc_logits, self.temperature, opts.estimator, opts.generator_loss, opts.samples
        )
