"""Shared pieces of the adversarial methods (NaGAN, KDGAN): options, the discriminator's losses
(exact, sampled, or pretrained as a classifier) and the generators' adversarial term."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from kdgan.data.core import Batch, Splits
from kdgan.errors import ConfigError, DataError
from kdgan.methods.base import Method
from kdgan.methods.losses import discriminator_loss, sampled_discriminator_loss
from kdgan.methods.sampling import ESTIMATORS, TemperatureSchedule, adversarial_loss

DISCRIMINATOR_LOSSES = ("exact", "sampled", "pooled")


@dataclass
class AdversarialOptions:
    """How generators' labels are sampled and scored.

    - ``estimator``: ``concrete`` (default), ``straight_through`` or ``reinforce``;
    - ``tau_start`` / ``tau_end``: the concrete temperature, annealed exponentially over epochs;
    - ``samples``: label samples per example and generator;
    - ``generator_loss``: ``minimax`` (log(1 - D), the paper's game) or ``nonsaturating`` (-log D);
    - ``label_weight``: weight of a cross-entropy term on the true labels in the student's loss
      (0 in the paper, where labels reach the generators only through D);
    - ``discriminator_pretrain``: ``game`` (D pretrains on the game's loss against the pretrained
      generators) or ``supervised`` (D pretrains as a classifier, cross-entropy on the labels, as
      the authors' code did: an informative D from the start);
    - ``discriminator_loss``: ``exact`` (the expectation over labels, no variance), ``sampled``
      (``true_samples`` labels drawn from the true distribution against ``fake_samples`` drawn
      from each generator, an unbiased estimate of ``exact``) or ``pooled`` (the same draws in one
      sigmoid cross-entropy per generator, as the authors' code: 5 against 20).
    """

    estimator: str = "concrete"
    tau_start: float = 1.0
    tau_end: float = 0.1
    samples: int = 1
    generator_loss: str = "minimax"
    label_weight: float = 0.0
    discriminator_pretrain: str = "game"
    discriminator_loss: str = "exact"
    true_samples: int = 5
    fake_samples: int = 20

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
        if self.discriminator_pretrain not in ("game", "supervised"):
            raise ConfigError("options.discriminator_pretrain must be game or supervised, got "
                              f"{self.discriminator_pretrain!r}")
        if self.discriminator_loss not in DISCRIMINATOR_LOSSES:
            raise ConfigError(f"options.discriminator_loss must be one of {', '.join(DISCRIMINATOR_LOSSES)}, "
                              f"got {self.discriminator_loss!r}")
        if self.true_samples < 1 or self.fake_samples < 1:
            raise ConfigError("options.true_samples and options.fake_samples must be >= 1, got "
                              f"{self.true_samples}, {self.fake_samples}")


class AdversarialMethod(Method):
    """A method with a discriminator that scores generators' label samples. Subclasses give
    :meth:`loss_terms`; the loss a player minimises is the sum of its terms."""

    def generators(self, batch: Batch) -> list[tuple[Tensor, float]]:
        """Each generator's label distribution on ``batch`` with the weight of its pairs in D's
        loss: the student's alone, by default."""
        return [(self.logits("student", batch).softmax(-1), 1.0)]

    def fake_distribution(self, batch: Batch) -> Tensor:
        """The label distribution D must tell from the true one: the generators' weighted mixture."""
        (first, weight), *rest = self.generators(batch)
        mixture = first if weight == 1.0 else weight * first
        for p, w in rest:
            mixture = mixture + w * p
        return mixture

    def discriminator_loss(self, batch: Batch) -> Tensor:
        """D's loss: true pairs on the batch's labelled rows, generated pairs on every row."""
        disc_logits = self.logits("discriminator", batch)
        p_true = self.target(batch, disc_logits)
        opts = self.options
        if opts.discriminator_loss == "exact":
            with torch.no_grad():
                p_fake = self.fake_distribution(batch)
            return discriminator_loss(disc_logits, p_true, p_fake, batch.labelled)
        with torch.no_grad():  # check_data has refused labelled rows without a label
            true_drawn = torch.multinomial(p_true, opts.true_samples, replacement=True)
            generators = self.generators(batch)
            fake_drawn = [torch.multinomial(p, opts.fake_samples, replacement=True) for p, _ in generators]
        return sampled_discriminator_loss(disc_logits, true_drawn, fake_drawn, [w for _, w in generators],
                                          pooled=opts.discriminator_loss == "pooled", labelled=batch.labelled)

    def check_data(self, splits: Splits) -> None:
        """The sampled and pooled D losses draw true labels: every labelled training example needs one."""
        train = splits.train
        if self.options.discriminator_loss != "exact" and train.multilabel and bool((train.y.sum(-1) == 0).any()):
            raise DataError("options.discriminator_loss=sampled/pooled draws true labels, but some training "
                            "examples have no label; remove them or use discriminator_loss=exact")

    def pretrain_loss(self, role: str, batch: Batch) -> Tensor:
        """Classifiers pretrain supervised; D pretrains against the pretrained generators, or on
        the labels as a classifier (``discriminator_pretrain=supervised``)."""
        if role == "discriminator" and self.options.discriminator_pretrain == "game":
            return self.discriminator_loss(batch)
        return super().pretrain_loss(role, batch)

    def loss(self, role: str, batch: Batch) -> Tensor:
        """The sum of ``role``'s loss terms, in their order."""
        (first, *rest) = self.loss_terms(role, batch).values()
        for term in rest:
            first = first + term
        return first

    @property
    def temperature(self) -> float:
        opts = self.options
        return TemperatureSchedule(opts.tau_start, opts.tau_end, self.epochs)(self.epoch)

    def generator_adversarial_loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """The adversarial term of a generator with these logits; D is only evaluated."""
        with torch.no_grad():
            disc_logits = self.logits("discriminator", batch)
        opts = self.options
        return adversarial_loss(
            logits, disc_logits, self.temperature, opts.estimator, opts.generator_loss, opts.samples
        )
