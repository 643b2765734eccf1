"""Losses of the game, each with its formula and source.

Distillation losses are registered by name (``l2_logits``, ``kl``) so that methods and configs can
choose them. Every loss is a batch mean, so weights do not depend on the batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

DistillLoss = Callable[..., Tensor]
DISTILL_LOSSES: dict[str, DistillLoss] = {}


def register_distill(name: str) -> Callable[[DistillLoss], DistillLoss]:
    def decorate(fn: DistillLoss) -> DistillLoss:
        DISTILL_LOSSES[name] = fn
        return fn

    return decorate


@register_distill("l2_logits")
def l2_logits(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Logit matching (Ba & Caruana, "Do Deep Nets Really Need to be Deep?", NeurIPS 2014).

    ``L = 1/(B K) sum_b sum_k (z_s[b,k] - z_t[b,k])^2``: the mean squared error between logits.
    ``temperature`` is accepted for a uniform signature and ignored. The KDGAN paper reports its
    results with this loss.
    """
    return F.mse_loss(student_logits, teacher_logits)


@register_distill("kl")
def kl_temperature(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 3.0) -> Tensor:
    """Soft-target distillation (Hinton, Vinyals & Dean, "Distilling the Knowledge in a Neural
    Network", 2015).

    ``L = T^2 / B sum_b KL(softmax(z_t[b] / T) || softmax(z_s[b] / T))``; the ``T^2`` factor keeps
    gradient magnitudes comparable across temperatures.
    """
    log_q = F.log_softmax(student_logits / temperature, dim=-1)
    log_p = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_q, log_p, log_target=True, reduction="batchmean") * temperature**2


@register_distill("kl_sigmoid")
def kl_sigmoid(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-label distillation for multi-label outputs with independent sigmoids: the binary KL
    ``T^2 / B sum_b sum_k KL(Bern(sigmoid(z_t/T)) || Bern(sigmoid(z_s/T)))``."""
    p = torch.sigmoid(teacher_logits / temperature)
    zs = student_logits / temperature
    log_q, log_not_q = F.logsigmoid(zs), F.logsigmoid(-zs)
    log_p, log_not_p = F.logsigmoid(teacher_logits / temperature), F.logsigmoid(-teacher_logits / temperature)
    kl = p * (log_p - log_q) + (1 - p) * (log_not_p - log_not_q)
    return kl.sum(-1).mean() * temperature**2


def distillation_loss(name: str) -> DistillLoss:
    if name not in DISTILL_LOSSES:
        raise ValueError(f"unknown distillation loss {name!r}; choose one of {', '.join(DISTILL_LOSSES)}")
    return DISTILL_LOSSES[name]


def soft_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy to a target distribution, ``-1/B sum_b sum_k p[b,k] log softmax(z[b])_k``.

    With one-hot targets this is the usual supervised loss; with normalised multi-hot targets it
    is the softmax-over-labels loss the KDGAN paper uses for multi-label data.
    """
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def binary_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-label binary cross-entropy, summed over labels and averaged over the batch:
    ``-1/B sum_b sum_k (y log sigmoid(z) + (1 - y) log(1 - sigmoid(z)))``; the usual multi-label
    loss (one independent sigmoid per label), offered beside the paper's softmax over labels."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / logits.shape[0]


def discriminator_loss(disc_logits: Tensor, p_true: Tensor, p_fake: Tensor) -> Tensor:
    """The discriminator's loss: the negated value of the game for fixed generators.

    With ``D(x, y) = sigmoid(g(x) . y)`` and one-hot labels, the expectations over labels are
    sums: ``L_D = -1/B sum_b sum_k (p_u[b,k] log D_k + p_fake[b,k] log(1 - D_k))`` where
    ``p_fake = alpha p_c + (1 - alpha) p_t`` in KDGAN and ``p_c`` in NaGAN (Goodfellow et al. 2014;
    Wang et al. 2018, Eq. 2 and 4). Its minimiser is ``D_k = p_u,k / (p_u,k + p_fake,k)``, the
    paper's optimal discriminator. Computed exactly, it has no sampling variance.
    """
    return (p_true * F.softplus(-disc_logits) + p_fake.detach() * F.softplus(disc_logits)).sum(-1).mean()


def sampled_discriminator_loss(
    disc_logits: Tensor, true_drawn: Tensor, fake_drawn: list[Tensor], fake_weights: list[float], pooled: bool = False
) -> Tensor:
    """The discriminator's loss on drawn labels instead of the exact expectation:
    ``true_drawn`` (B, k) label indices drawn from the true distribution, ``fake_drawn[i]`` (B, m)
    drawn from generator ``i``, whose pairs weigh ``fake_weights[i]`` (alpha, 1 - alpha in KDGAN).

    - ``pooled=False``: ``-1/(B k) sum log D(x, y) - sum_i w_i 1/(B m) sum log(1 - D(x, y'))``, an
      unbiased estimate of :func:`discriminator_loss` with ``p_fake = sum_i w_i p_i``;
    - ``pooled=True`` (the KDGAN authors' code): per generator one sigmoid cross-entropy averaged
      over its ``k + m`` pairs per example (targets 1 and 0), weighted by ``w_i`` and summed, so the
      true pairs weigh ``k / (k + m)`` of it (5 against 20 in their MNIST code).
    """
    true_scores = disc_logits.gather(-1, true_drawn)
    if not pooled:
        loss = F.softplus(-true_scores).mean()
        for drawn, weight in zip(fake_drawn, fake_weights, strict=True):
            loss = loss + weight * F.softplus(disc_logits.gather(-1, drawn)).mean()
        return loss
    loss = disc_logits.new_zeros(())
    for drawn, weight in zip(fake_drawn, fake_weights, strict=True):
        pairs = torch.cat([F.softplus(-true_scores), F.softplus(disc_logits.gather(-1, drawn))], dim=-1)
        loss = loss + weight * pairs.mean()
    return loss


def generator_loss(score: Tensor, kind: str = "minimax") -> Tensor:
    """A generator's loss on the discriminator's logit ``s`` for its sample, elementwise.

    - ``minimax``: ``log(1 - sigmoid(s)) = -softplus(s)``, the game's own term (Eq. 2 and 4);
    - ``nonsaturating``: ``-log sigmoid(s) = softplus(-s)``, the same fixed point with stronger
      gradients when the discriminator is confident (Goodfellow et al. 2014, Sec. 3).
    """
    if kind == "minimax":
        return -F.softplus(score)
    if kind == "nonsaturating":
        return F.softplus(-score)
    raise ValueError(f"unknown generator loss {kind!r}; choose minimax or nonsaturating")
