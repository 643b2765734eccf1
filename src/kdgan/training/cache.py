"""Outputs of players that are not being updated, computed once per training set and reused.

In every method's schedule one player updates at a time while the others only provide targets,
samples' scores or distributions. Their eval-mode logits on a training example do not change until
they themselves update, so the engine keeps them here, keyed by role and example index, and a
player's entry is dropped when that player starts updating. In a KDGAN round (D, then T, then C,
one pass each) this runs each network's no-grad forward once per round over the training set,
in large chunks, instead of twice per batch; a frozen teacher (DISTN, MIMIC, NOISY) runs once per
training stage.

Exact only for unaugmented inputs (an augmented batch is not the stored example), so the engine
turns it off when training batches are augmented, and under torchrun (each rank would compute
every example; per-batch forwards split that work). Batches that mix in unlabelled examples
(``data.unlabelled``) carry no index and are never served: a pass over a large unlabelled set per
update would cost more than it saves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from kdgan.data.core import Batch, TensorData


class OutputCache:
    """Logits on ``data`` (the training split) per role, filled in chunks of ``chunk`` examples
    on first use. ``compute(role, batch)`` runs a player; ``updating`` is the role whose
    outputs must never be served (it is the one being trained)."""

    def __init__(self, data: TensorData, compute: Callable[[str, Batch], Tensor], chunk: int = 1024) -> None:
        self.data, self.compute, self.chunk = data, compute, chunk
        self.logits: dict[str, Tensor] = {}
        self.updating: str | None = None

    def start_updates(self, role: str) -> None:
        """``role`` is about to change: forget its outputs and stop serving them."""
        self.logits.pop(role, None)
        self.updating = role

    def stop_updates(self) -> None:
        """No player is changing (between epochs); the last updated player's outputs are gone."""
        self.updating = None

    def invalidate(self, role: str) -> None:
        """``role``'s weights were replaced (e.g. restored to its selected epoch)."""
        self.logits.pop(role, None)

    def serves(self, role: str, batch: Batch) -> bool:
        return role != self.updating and batch.index is not None and not torch.is_grad_enabled()

    def lookup(self, role: str, batch: Batch) -> Tensor:
        """``role``'s logits on the batch's examples, computing the whole set on a miss."""
        if role not in self.logits:
            rows = torch.arange(len(self.data), device=self.data.x.device)
            chunks = [self.compute(role, self.data.batch(index)) for index in rows.split(self.chunk)]
            self.logits[role] = torch.cat(chunks)
        return self.logits[role][batch.index]
