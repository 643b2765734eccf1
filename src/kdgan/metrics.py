"""Evaluation metrics computed from a model's logits on a whole split."""

from __future__ import annotations

import torch
from torch import Tensor

from kdgan.data.core import TensorData


def accuracy(logits: Tensor, y: Tensor) -> Tensor:
    """Fraction of examples whose highest logit is the true class (a 0-d tensor, no sync)."""
    return (logits.argmax(-1) == y).float().mean()


def evaluate_logits(logits: Tensor, data: TensorData) -> dict[str, Tensor]:
    """Metrics of ``logits`` on ``data``, as 0-d tensors (read them once, outside any loop)."""
    return {"accuracy": accuracy(logits, data.y)}


@torch.no_grad()
def predict_logits(model: torch.nn.Module, data: TensorData, batch_size: int, privileged: bool = False) -> Tensor:
    """Logits of ``model`` on every example of ``data``, in eval mode, batched."""
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, len(data), batch_size):
        index = torch.arange(start, min(start + batch_size, len(data)), device=data.x.device)
        batch = data.batch(index)
        if privileged and batch.privileged is not None:
            chunks.append(model(batch.x, batch.privileged))
        else:
            chunks.append(model(batch.x))
    model.train(was_training)
    return torch.cat(chunks)
