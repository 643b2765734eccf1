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


def decoupled_kd(student_logits: Tensor, teacher_logits: Tensor, target: Tensor,
                 temperature: float) -> tuple[Tensor, Tensor]:
    """The two terms of decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang,
    "Decoupled Knowledge Distillation", CVPR 2022), ``(TCKD, NCKD)``.

    With ``p = softmax(z / T)`` and target class ``y``: ``TCKD = T^2 / B sum_b KL(b_t || b_s)``
    between the binary distributions ``b = (p_y, 1 - p_y)``, and
    ``NCKD = T^2 / B sum_b KL(p^_t || p^_s)`` between the distributions over the non-target
    classes alone, ``p^_k = p_k / (1 - p_y) = softmax(z_k / T)`` over ``k != y``. Both are
    computed from logits (``log(1 - p_y)`` as a log-sum-exp), so neither underflows.
    """
    # the non-target classes of each row, in order, as gather indices (no boolean mask: no host sync)
    step = torch.arange(student_logits.shape[-1] - 1, device=target.device)
    other = step + (step >= target.unsqueeze(-1)).long()

    def binary_and_other(logits: Tensor) -> tuple[Tensor, Tensor]:
        scaled = logits / temperature
        rest = scaled.gather(-1, other)
        return torch.stack([scaled.gather(-1, target.unsqueeze(-1)).squeeze(-1), rest.logsumexp(-1)], -1), rest

    binary_s, rest_s = binary_and_other(student_logits)
    binary_t, rest_t = binary_and_other(teacher_logits)
    # softmax of (z_y / T, log sum_{k != y} exp(z_k / T)) is (p_y, 1 - p_y)
    tckd = kl_temperature(binary_s, binary_t, 1.0) * temperature**2
    return tckd, kl_temperature(rest_s, rest_t, 1.0) * temperature**2


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b``:
    ``sum_k a'_k b'_k / (|a'| |b'| + eps)`` with ``a' = a - mean(a)``; ``eps`` (the DIST authors'
    1e-8) makes a constant row's correlation 0 instead of NaN."""
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + eps)


def dist_relations(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> tuple[Tensor, Tensor]:
    """The two terms of DIST (Huang, You, Wang, Qian & Xu, "Knowledge Distillation from A
    Stronger Teacher", NeurIPS 2022), ``(inter, intra)``, on ``Y = softmax(z / T)`` (B x K):

    - inter-class relation ``T^2 (1 - 1/B sum_b rho(Y_s[b, :], Y_t[b, :]))`` (per example);
    - intra-class relation ``T^2 (1 - 1/K sum_k rho(Y_s[:, k], Y_t[:, k]))`` (per class, across
      the batch), with ``rho`` the Pearson correlation (:func:`pearson_rows`).

    Correlation, not equality, is matched: the student may have a different scale and shift.
    """
    y_s = F.softmax(student_logits / temperature, dim=-1)
    y_t = F.softmax(teacher_logits / temperature, dim=-1)
    inter = 1 - pearson_rows(y_s, y_t).mean()
    intra = 1 - pearson_rows(y_s.T, y_t.T).mean()
    return inter * temperature**2, intra * temperature**2


def z_score(logits: Tensor, eps: float = 1e-7) -> Tensor:
    """Each row standardised, ``(z - mean(z)) / (std(z) + eps)`` over the classes, with ``std``
    the sample standard deviation (``1/(K-1)``, as in the logit-standardisation authors' code;
    Sun et al., CVPR 2024)."""
    return (logits - logits.mean(-1, keepdim=True)) / (logits.std(-1, keepdim=True) + eps)


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


def discriminator_loss(disc_logits: Tensor, p_true: Tensor, p_fake: Tensor, labelled: Tensor | None = None) -> Tensor:
    """The discriminator's loss: the negated value of the game for fixed generators.

    With ``D(x, y) = sigmoid(g(x) . y)`` and one-hot labels, the expectations over labels are
    sums: ``L_D = -1/B sum_b sum_k (p_u[b,k] log D_k + p_fake[b,k] log(1 - D_k))`` where
    ``p_fake = alpha p_c + (1 - alpha) p_t`` in KDGAN and ``p_c`` in NaGAN (Goodfellow et al. 2014;
    Wang et al. 2018, Eq. 2 and 4). Its minimiser is ``D_k = p_u,k / (p_u,k + p_fake,k)``, the
    paper's optimal discriminator. Computed exactly, it has no sampling variance.

    With ``labelled`` (bool per row; unlabelled inputs mixed in) ``p_true`` holds the labelled rows
    only: the true part is their mean, the generated part the mean over every row.
    """
    if labelled is None:
        return (p_true * F.softplus(-disc_logits) + p_fake.detach() * F.softplus(disc_logits)).sum(-1).mean()
    true_part = (p_true * F.softplus(-disc_logits[labelled])).sum(-1).mean()
    return true_part + (p_fake.detach() * F.softplus(disc_logits)).sum(-1).mean()


def sampled_discriminator_loss(
    disc_logits: Tensor, true_drawn: Tensor, fake_drawn: list[Tensor], fake_weights: list[float], pooled: bool = False,
    labelled: Tensor | None = None,
) -> Tensor:
    """The discriminator's loss on drawn labels instead of the exact expectation:
    ``true_drawn`` (B, k) label indices drawn from the true distribution, ``fake_drawn[i]`` (B, m)
    drawn from generator ``i``, whose pairs weigh ``fake_weights[i]`` (alpha, 1 - alpha in KDGAN).

    - ``pooled=False``: ``-1/(B k) sum log D(x, y) - sum_i w_i 1/(B m) sum log(1 - D(x, y'))``, an
      unbiased estimate of :func:`discriminator_loss` with ``p_fake = sum_i w_i p_i``;
    - ``pooled=True`` (the KDGAN authors' code): per generator one sigmoid cross-entropy averaged
      over its ``k + m`` pairs per example (targets 1 and 0), weighted by ``w_i`` and summed, so the
      true pairs weigh ``k / (k + m)`` of it (5 against 20 in their MNIST code).

    With ``labelled`` (bool per row; unlabelled inputs mixed in) ``true_drawn`` holds the labelled
    rows only: true pairs are averaged over them, generated pairs over every row (pooled: the
    ``k / (k + m)`` and ``m / (k + m)`` shares of the two means).
    """
    true_scores = (disc_logits if labelled is None else disc_logits[labelled]).gather(-1, true_drawn)
    if not pooled:
        loss = F.softplus(-true_scores).mean()
        for drawn, weight in zip(fake_drawn, fake_weights, strict=True):
            loss = loss + weight * F.softplus(disc_logits.gather(-1, drawn)).mean()
        return loss
    loss = disc_logits.new_zeros(())
    for drawn, weight in zip(fake_drawn, fake_weights, strict=True):
        if labelled is not None:
            k, m = true_drawn.shape[-1], drawn.shape[-1]
            true_mean, fake_mean = F.softplus(-true_scores).mean(), F.softplus(disc_logits.gather(-1, drawn)).mean()
            loss = loss + weight * (k * true_mean + m * fake_mean) / (k + m)
            continue
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
