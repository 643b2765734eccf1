"""Data-parallel training across processes launched by ``torchrun`` (one or many nodes).

Every rank holds the full (small) dataset and identical players. Each epoch all ranks draw the same
permutation; rank r takes every world-th example of it, so the k-th batches of all ranks together
form the k-th global batch, disjoint and complete. After a player's backward pass its gradients are
averaged across ranks (one all-reduce of a flat buffer), so every rank takes the same optimizer
step as a single process on the global batch would. Gumbel noise and dropout are seeded per rank.

Why gradients are all-reduced here rather than by wrapping players in
``DistributedDataParallel``: in a round of the game each player is trainable only during its own
updates and frozen while it scores or teaches the others. DDP's reducer fixes the set of
trainable parameters when it is built and expects a gradient for each of them after every
backward pass, which this schedule breaks; averaging the updated player's gradients explicitly is
the same synchronous data parallelism without that assumption.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op when run
    alone). NCCL for CUDA devices, gloo for the CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op when run alone)."""
    if info.enabled:
        dist.barrier()


def broadcast_module(module: nn.Module) -> None:
    """Make every rank's copy of ``module`` equal to rank 0's (parameters and buffers)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def average_gradients(module: nn.Module, world: int) -> None:
    """Average the gradients of ``module`` across ranks in one all-reduce of a flat buffer."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def all_reduce(tensor: Tensor, op: str = "sum") -> Tensor:
    """In-place all-reduce with ``sum`` or ``max``; returns the tensor."""
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return tensor


def gather_rows(local: Tensor, total: int, info: DistInfo) -> Tensor:
    """Reassemble a split's rows when rank r holds rows r, r + world, r + 2 world, ...

    Shards are padded to equal length for ``all_gather`` and the padding dropped afterwards.
    """
    per_rank = -(-total // info.world)
    padded = local.new_zeros((per_rank, *local.shape[1:]))
    padded[: len(local)] = local
    parts = [torch.empty_like(padded) for _ in range(info.world)]
    dist.all_gather(parts, padded)
    return torch.stack(parts, dim=1).reshape(per_rank * info.world, *local.shape[1:])[:total]


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every rank's ``obj``, in rank order (e.g. random-number-generator states)."""
    out: list[Any] = [None] * info.world
    dist.all_gather_object(out, obj)
    return out
