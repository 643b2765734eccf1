"""Evaluation metrics computed from a model's logits on a whole split."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kdgan.data.core import Batch, TensorData
from kdgan.evaluation.ranking import ranking_metrics


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of examples whose highest logit is the true class (a 0-d tensor, no sync)."""
    return (logits.argmax(-1) == y).float().mean()


def evaluate_logits(logits: Tensor, data: TensorData) -> dict[str, Tensor]:
    """Metrics of ``logits`` on ``data`` as 0-d tensors: accuracy for classes; for multi-label
    targets the ranking metrics P@k, R@k, F@k, nDCG@k (k = 3, 5), MAP and MRR."""
    if data.multilabel:
        ks = tuple(k for k in (3, 5) if k <= data.num_classes)
        return ranking_metrics(logits, data.y, ks=ks)
    return {"accuracy": accuracy(logits, data.y)}


def default_selection_metric(data: TensorData) -> str:
    """The validation metric that picks the best epoch: accuracy, or MAP for multi-label data."""
    return "map" if data.multilabel else "accuracy"


@torch.no_grad()
def predict_logits(forward: Callable[[Batch], Tensor], data: TensorData, batch_size: int) -> Tensor:
    """``forward`` applied to every example of ``data`` in order, batched, without gradients."""
    chunks = []
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.x.device)
        chunks.append(forward(data.batch(index)))
    return torch.cat(chunks)
