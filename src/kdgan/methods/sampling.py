"""Label sampling for the generators (classifier and teacher) and its gradient estimators.

The concrete (Gumbel-softmax) relaxation (Maddison et al. 2017; Jang et al. 2017) draws
``y~ = softmax((log p + g) / tau)`` with Gumbel noise ``g``; as ``tau -> 0`` samples become one-hot.
KDGAN anneals ``tau`` from a large to a small value so that gradients flow through continuous
samples early (low variance) and samples approach discrete labels late.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from kdgan.methods.losses import generator_loss

ESTIMATORS = ("concrete", "straight_through", "reinforce", "exact", "regression")


def gumbel_noise(shape: torch.Size | tuple[int, ...], like: Tensor) -> Tensor:
    """Standard Gumbel noise ``-log(E)``, ``E ~ Exp(1)`` (equal in law to ``-log(-log U)``)."""
    return -torch.empty(shape, dtype=like.dtype, device=like.device).exponential_().log()


def concrete_sample(logits: Tensor, tau: float, samples: int = 1) -> Tensor:
    """``samples`` relaxed one-hot draws per row, shape ``(samples, *logits.shape)``."""
    log_p = F.log_softmax(logits, dim=-1)
    noise = gumbel_noise((samples, *logits.shape), logits)
    return F.softmax((log_p + noise) / tau, dim=-1)


def straight_through(relaxed: Tensor) -> Tensor:
    """One-hot of the argmax in the forward pass, the relaxed sample's gradient in the backward."""
    hard = F.one_hot(relaxed.argmax(-1), relaxed.shape[-1]).to(relaxed.dtype)
    return hard - relaxed.detach() + relaxed


@dataclass(frozen=True)
class TemperatureSchedule:
    """Exponential annealing ``tau_e = start * (end / start) ** (e / (epochs - 1))``."""

    start: float = 1.0
    end: float = 0.1
    epochs: int = 1

    def __call__(self, epoch: int) -> float:
        if self.epochs <= 1:
            return self.end
        frac = min(max(epoch, 0), self.epochs - 1) / (self.epochs - 1)
        return self.start * math.exp(frac * math.log(self.end / self.start))


def adversarial_loss(
    logits: Tensor, disc_logits: Tensor, tau: float, estimator: str = "concrete",
    kind: str = "minimax", samples: int = 1,
) -> Tensor:
    """A generator's adversarial loss ``E_{y ~ p}[l(g(x) . y)]``, ``p = softmax(logits)``.

    ``disc_logits`` are the discriminator's per-label logits g(x), computed without gradient:
    the score of a sample is linear in y, so only the generator needs a graph. ``l`` is
    :func:`kdgan.methods.losses.generator_loss` of the given ``kind``. Estimators:

    - ``concrete``: reparameterised gradient through relaxed samples;
    - ``straight_through``: one-hot samples forward, relaxed gradient backward;
    - ``exact``: no sampling: the expectation over the K labels, ``sum_k p_k l(g_k)``, whose
      gradient has no variance and no bias (possible because the score is linear in one-hot y);
    - ``reinforce``: score-function gradient ``(l(y) - b) grad log p(y)`` with ``b`` the mean
      loss of the batch's other samples (the paper's mean baseline, leave-one-out so that it
      stays unbiased);
    - ``regression``: the authors' code, not the paper's gradient (see :func:`reward_regression`);
      ``kind`` does not apply to it.
    """
    disc_logits = disc_logits.detach()
    if estimator == "regression":
        return reward_regression(logits, disc_logits, tau, samples)
    if estimator == "exact":
        return (F.softmax(logits, dim=-1) * generator_loss(disc_logits, kind)).sum(-1).mean()
    if estimator == "reinforce":
        log_p = F.log_softmax(logits, dim=-1)
        with torch.no_grad():
            drawn = (log_p.unsqueeze(0) + gumbel_noise((samples, *logits.shape), logits)).argmax(-1)
            scores = torch.gather(disc_logits.expand(samples, *disc_logits.shape), -1, drawn.unsqueeze(-1))
            reward = generator_loss(scores.squeeze(-1), kind)
            others = reward.numel() - 1
            baseline = (reward.sum() - reward) / others if others else torch.zeros_like(reward)
            advantage = reward - baseline
        chosen = torch.gather(log_p.expand(samples, *log_p.shape), -1, drawn.unsqueeze(-1)).squeeze(-1)
        return (advantage * chosen).mean()
    relaxed = concrete_sample(logits, tau, samples)
    if estimator == "straight_through":
        relaxed = straight_through(relaxed)
    elif estimator != "concrete":
        raise ValueError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    return generator_loss((relaxed * disc_logits).sum(-1), kind).mean()


def reward_regression(logits: Tensor, disc_logits: Tensor, tau: float, samples: int = 1) -> Tensor:
    """The generator loss of the KDGAN authors' code: draw ``samples`` labels per example from
    ``softmax(z / tau)`` without gradient (``tau`` only flattens the sampling distribution), then
    regress ``sigmoid(z_y)`` onto D's reward ``r = sigmoid(g_y)`` at each drawn label ``y`` with a
    sigmoid cross-entropy, ``-1/(S B) sum (r log sigmoid(z_y) + (1 - r) log(1 - sigmoid(z_y)))``.

    Its gradient with respect to ``z_y`` is ``(sigmoid(z_y) - r) / (S B)``: each drawn label's logit
    moves toward D's opinion of it. It is not the gradient of the game's value (the paper's
    estimators above are); it is offered to reproduce the recipe that produced the paper's numbers.
    """
    with torch.no_grad():
        drawn = torch.multinomial(F.softmax(logits.float() / tau, dim=-1), samples, replacement=True)
        reward = torch.sigmoid(disc_logits.detach().gather(-1, drawn))
    chosen = logits.gather(-1, drawn)
    return F.binary_cross_entropy_with_logits(chosen, reward.to(chosen.dtype))
