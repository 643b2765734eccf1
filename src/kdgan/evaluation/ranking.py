"""Ranking metrics for multi-label classification and tag recommendation.

Every function takes ``scores`` (N, L), higher = more relevant, and ``targets`` (N, L), where an
entry > 0 marks a relevant label, and returns the mean over examples as a 0-d tensor on the
inputs' device (no host sync, so it can be read once at the end).

Conventions:

* Ranking: labels are sorted by score, descending; **ties are broken by label index, lower
  first** (a stable sort), so results are deterministic. Rank r counts from 1.
* Examples with **no relevant label** are **excluded from the mean** of recall, F, nDCG, AP
  and RR (these measures are undefined for them). Precision@k is defined for them (it is 0)
  and they are **included**. If no example qualifies, the mean is NaN.
* k must not exceed L.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor


def _check(scores: Tensor, targets: Tensor, k: int | None = None) -> None:
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(
            f"scores and targets must both have shape (N, L); got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if k is not None and not 1 <= k <= scores.shape[1]:
        raise ValueError(f"k must lie in 1..{scores.shape[1]} (the number of labels), got {k}")


def ranked_relevance(scores: Tensor, targets: Tensor) -> Tensor:
    """(N, L) float 0/1: entry [i, r-1] is 1 when the label at rank r of example i is relevant."""
    _check(scores, targets)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return (targets > 0).gather(1, order).to(torch.float32)


def _mean_where(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` over examples where ``mask`` holds (NaN when it holds nowhere)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum()


def _hits(rel: Tensor, k: int) -> Tensor:
    return rel[:, :k].sum(1)


def _precision(rel: Tensor, k: int) -> Tensor:
    return (_hits(rel, k) / k).mean()


def _recall_per(rel: Tensor, k: int) -> Tensor:
    return _hits(rel, k) / rel.sum(1).clamp_min(1)


def _recall(rel: Tensor, k: int) -> Tensor:
    return _mean_where(_recall_per(rel, k), rel.sum(1) > 0)


def _f(rel: Tensor, k: int) -> Tensor:
    p = _hits(rel, k) / k
    r = _recall_per(rel, k)
    f = torch.where(p + r > 0, 2 * p * r / (p + r).clamp_min(1e-12), torch.zeros_like(p))
    return _mean_where(f, rel.sum(1) > 0)


def _discounts(n: int, device: torch.device) -> Tensor:
    return 1.0 / torch.log2(torch.arange(2, n + 2, device=device, dtype=torch.float32))


def _ndcg(rel: Tensor, k: int) -> Tensor:
    disc = _discounts(k, rel.device)
    dcg = (rel[:, :k] * disc).sum(1)
    n_rel = rel.sum(1)
    ideal_hits = torch.arange(1, k + 1, device=rel.device).unsqueeze(0) <= n_rel.unsqueeze(1)
    idcg = (ideal_hits * disc).sum(1)
    return _mean_where(dcg / idcg.clamp_min(1e-12), n_rel > 0)


def _average_precision(rel: Tensor) -> Tensor:
    ranks = torch.arange(1, rel.shape[1] + 1, device=rel.device, dtype=rel.dtype)
    precision_at_r = rel.cumsum(1) / ranks
    n_rel = rel.sum(1)
    ap = (precision_at_r * rel).sum(1) / n_rel.clamp_min(1)
    return _mean_where(ap, n_rel > 0)


def _reciprocal_rank(rel: Tensor) -> Tensor:
    first = rel.argmax(1).to(rel.dtype) + 1  # argmax returns the first maximal entry
    n_rel = rel.sum(1)
    return _mean_where(1.0 / first, n_rel > 0)


def precision_at_k(scores: Tensor, targets: Tensor, k: int) -> Tensor:
    """P@k = |relevant ∩ top-k| / k, averaged over all examples (0 for one with no relevant label)."""
    _check(scores, targets, k)
    return _precision(ranked_relevance(scores, targets), k)


def recall_at_k(scores: Tensor, targets: Tensor, k: int) -> Tensor:
    """R@k = |relevant ∩ top-k| / |relevant|, averaged over examples with at least one relevant label."""
    _check(scores, targets, k)
    return _recall(ranked_relevance(scores, targets), k)


def f_at_k(scores: Tensor, targets: Tensor, k: int) -> Tensor:
    """F@k = 2 P@k R@k / (P@k + R@k) per example (0 when both are 0), averaged over examples with a
    relevant label. This is the mean of per-example F, not F of the mean P and R."""
    _check(scores, targets, k)
    return _f(ranked_relevance(scores, targets), k)


def ndcg_at_k(scores: Tensor, targets: Tensor, k: int) -> Tensor:
    """nDCG@k = DCG@k / IDCG@k with binary gains: DCG@k = sum_{r=1..k} rel_r / log2(r + 1) and
    IDCG@k = sum_{r=1..min(k, |relevant|)} 1 / log2(r + 1). Averaged over examples with a relevant
    label."""
    _check(scores, targets, k)
    return _ndcg(ranked_relevance(scores, targets), k)


def average_precision(scores: Tensor, targets: Tensor) -> Tensor:
    """MAP: mean over examples (with a relevant label) of AP = (1 / |relevant|) sum over ranks r
    holding a relevant label of P@r, computed on the full ranking of all L labels."""
    _check(scores, targets)
    return _average_precision(ranked_relevance(scores, targets))


def reciprocal_rank(scores: Tensor, targets: Tensor) -> Tensor:
    """MRR: mean over examples (with a relevant label) of 1 / (rank of the first relevant label)."""
    _check(scores, targets)
    return _reciprocal_rank(ranked_relevance(scores, targets))


def ranking_metrics(scores: Tensor, targets: Tensor, ks: Iterable[int] = (3, 5)) -> dict[str, Tensor]:
    """All measures at once, sorting once: keys ``p@k``, ``r@k``, ``f@k``, ``ndcg@k`` for each k,
    then ``map`` and ``mrr``."""
    ks = list(ks)
    for k in ks:
        _check(scores, targets, k)
    rel = ranked_relevance(scores, targets)
    out: dict[str, Tensor] = {}
    for k in ks:
        out[f"p@{k}"] = _precision(rel, k)
        out[f"r@{k}"] = _recall(rel, k)
        out[f"f@{k}"] = _f(rel, k)
        out[f"ndcg@{k}"] = _ndcg(rel, k)
    out["map"] = _average_precision(rel)
    out["mrr"] = _reciprocal_rank(rel)
    return out


__all__ = [
    "average_precision",
    "f_at_k",
    "ndcg_at_k",
    "precision_at_k",
    "ranked_relevance",
    "ranking_metrics",
    "recall_at_k",
    "reciprocal_rank",
]
