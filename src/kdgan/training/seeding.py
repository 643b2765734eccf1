"""Reproducibility: seeding every random-number generator a run draws from, and saving and
restoring their states so that a resumed run continues exactly where it stopped."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state(batch_generator: torch.Generator) -> dict[str, Any]:
    """Every random-number generator a run draws from, as tensors and plain Python data (numpy's
    key array as a list of ints) so that a checkpoint holding it loads with ``weights_only=True``."""
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": keys.tolist(), "position": position, "has_gauss": has_gauss,
                  "cached_gaussian": cached_gaussian},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "batches": batch_generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], batch_generator: torch.Generator) -> None:
    """Restore the generators saved by :func:`rng_state` (its tensors may have been loaded onto
    another device by ``map_location``; generators take CPU tensors)."""
    random.setstate(state["python"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], np.array(numpy["keys"], dtype=np.uint32), numpy["position"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    batch_generator.set_state(state["batches"].cpu())


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
