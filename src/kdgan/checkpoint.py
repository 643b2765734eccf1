"""Atomic checkpoint files: write to a temporary file, flush to disk, then rename."""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdgan.errors import DataError


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` so that a crash mid-write leaves any earlier file at ``path`` intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def remove_stale_temporaries(directory: Path) -> None:
    """Delete temporary files left by writes that a killed process never finished."""
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


RESTART_HINT = "delete it to restart the run from scratch, or restore a good copy"


def load_checkpoint(path: Path, map_location: Any = None, fix: str = RESTART_HINT) -> dict[str, Any]:
    """``torch.load`` of a checkpoint or weights file, with an error naming the file and ``fix``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for bad files
        raise DataError(f"{path} is damaged or not a torch file ({type(err).__name__}: {err}); {fix}") from None


def rng_state(batch_generator: torch.Generator) -> dict[str, Any]:
    """Every random-number generator a run draws from."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "batches": batch_generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], batch_generator: torch.Generator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    batch_generator.set_state(state["batches"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
