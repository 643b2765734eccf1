"""K-nearest-neighbour tag propagation: a training-free baseline for multi-label ranking.

The score of label l for a query is the weighted fraction of its k nearest training examples
that carry l:  s_l(q) = sum_j w_j y_jl / sum_j w_j  over the k neighbours j. Scores lie in [0, 1]
and rank the labels (see kdgan.evaluation.ranking). Uniform weights give plain voting; ``weights="distance"``
gives w_j = 1 / d(q, j) and, as in scikit-learn, a query with neighbours at distance exactly 0
takes the vote of those neighbours only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from kdgan.data.core import TensorData

METRICS = ("cosine", "euclidean")
WEIGHTS = ("uniform", "distance")


def pairwise_distance(query: Tensor, train: Tensor, metric: str = "cosine") -> Tensor:
    """(Q, N) distances: cosine = 1 - cos(q, x) (0 similarity for an all-zero vector) or euclidean."""
    if metric == "cosine":
        return 1.0 - F.normalize(query, dim=1) @ F.normalize(train, dim=1).T
    if metric == "euclidean":
        return torch.cdist(query, train)
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def knn_scores(
    query: Tensor,
    train_x: Tensor,
    train_y: Tensor,
    k: int = 10,
    metric: str = "cosine",
    weights: str = "uniform",
    chunk_size: int = 1024,
    exclude_self: bool = False,
) -> Tensor:
    """(Q, L) label scores of each query row from its k nearest rows of ``train_x``.

    Inputs with more than two dimensions (images) are flattened. ``train_y`` is (N, L) multi-hot.
    ``exclude_self=True`` is for scoring the training set itself (query i is training row i):
    each row is then not its own neighbour (leave-one-out). Queries are processed ``chunk_size``
    at a time, so memory is O(chunk_size * N). Among equidistant neighbours, which ones are
    kept is up to ``torch.topk``.
    """
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if train_y.ndim != 2 or len(train_y) != len(train_x):
        raise ValueError(
            f"train_y must be (N, L) multi-hot with N = {len(train_x)} rows, got shape {tuple(train_y.shape)}"
        )
    available = len(train_x) - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k must lie in 1..{available} (the training rows available), got {k}")
    if exclude_self and len(query) != len(train_x):
        raise ValueError("exclude_self=True needs the query to be the training set itself")
    query = query.flatten(1).float()
    train_x = train_x.flatten(1).float()
    train_y = train_y.float()
    out = []
    for start in range(0, len(query), chunk_size):
        dist = pairwise_distance(query[start : start + chunk_size], train_x, metric)
        if exclude_self:
            rows = torch.arange(len(dist), device=dist.device)
            dist[rows, rows + start] = float("inf")
        near, index = torch.topk(dist, k, dim=1, largest=False)
        near = near.clamp_min(0.0)  # rounding can make a cosine or euclidean distance slightly negative
        if weights == "uniform":
            w = torch.ones_like(near)
        else:
            exact = near == 0
            w = torch.where(exact.any(1, keepdim=True), exact.float(), 1.0 / near.clamp_min(1e-30))
        votes = (w.unsqueeze(2) * train_y[index]).sum(1)
        out.append(votes / w.sum(1, keepdim=True))
    return torch.cat(out) if out else train_y.new_zeros((0, train_y.shape[1]))


def knn_predict(
    train: TensorData, query: Tensor, k: int = 10, metric: str = "cosine", weights: str = "uniform", **kwargs
) -> Tensor:
    """Scores of ``query`` rows from the student's view (``x``) of ``train``; class-index targets
    are turned into one-hot rows first."""
    y = train.y if train.multilabel else F.one_hot(train.y, train.num_classes).float()
    return knn_scores(query, train.x, y, k=k, metric=metric, weights=weights, **kwargs)
