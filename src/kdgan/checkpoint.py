"""Atomic checkpoint files: write to a temporary file, flush to disk, then rename."""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from kdgan.errors import DataError, UnsafeFileError
from kdgan.runlock import reported_as_output_error, run_lock


class _WriteErrorRecorder:
    """A file's ``write`` that remembers the ``OSError`` it raised: ``torch.save`` reports a failed
    write (e.g. a full disk) as a RuntimeError such as 'unexpected pos 704 vs 598'."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle, self.error = handle, None

    def write(self, data: bytes) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` so that a crash mid-write leaves any earlier file at ``path`` intact; a failed
    write raises :class:`~kdgan.errors.OutputError` naming ``path`` and the cause (e.g. disk full)."""
    with reported_as_output_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                writer = _WriteErrorRecorder(handle)
                try:
                    torch.save(obj, writer)
                except RuntimeError:
                    if writer.error is not None:
                        raise writer.error from None
                    raise
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file through a temporary file and a rename (errors as in atomic_save)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with reported_as_output_error(path):
        try:
            tmp.write_text(text)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


# The files a training run writes through a temporary file; their temporaries are the run's own.
RUN_FILES = ("last.pt", "best.pt", "student.pt", "config.yaml", "run.json", "final.json")


def stale_temporaries(directory: Path) -> list[Path]:
    """The temporary files of a run's own writes in ``directory`` (``.last.pt.<random>.tmp``,
    ``.config.yaml.tmp``, ...); files other tools write there (e.g. an export) are not among them."""
    return sorted(p for name in RUN_FILES for p in directory.glob(f".{name}*.tmp"))


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of run writes that a killed process never finished. Runs under
    the run's lock (taken here, or already held by this thread), so no live writer owns them."""
    with run_lock(directory):
        for stale in stale_temporaries(directory):
            stale.unlink(missing_ok=True)


RESTART_HINT = "delete it to restart the run from scratch, or restore a good copy"


def load_checkpoint(path: Path, map_location: Any = None, fix: str = RESTART_HINT) -> Any:
    """The one loader of ``.pt`` files (checkpoints, student.pt, weights): ``torch.load`` with
    ``weights_only=True``, which builds only tensors and plain Python data, so a crafted file
    cannot run code. Errors name the file and ``fix``."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        message = str(err)
        reason = _unpickler_reason(message) if "Weights only load failed" in message else message
        if "Weights only load failed" in message and not reason.startswith(UNREADABLE):
            raise UnsafeFileError(_refused_message(path, reason)) from None  # it named an object it refused
        raise DataError(f"{path} is damaged or not a torch file (UnpicklingError: {reason}); {fix}") from None
    except Exception as err:  # torch raises RuntimeError, EOFError, KeyError, ... for bad files
        raise DataError(f"{path} is damaged or not a torch file ({type(err).__name__}: {err}); {fix}") from None


# What torch's weights-only unpickler says of bytes it cannot parse (rather than of objects it refuses).
UNREADABLE = ("Unsupported operand", "String is too long", "unsupported persistent id")
# How the lines of torch's own advice around the unpickler's reason begin (torch 2.6 to 2.13).
TORCH_ADVICE = ("In PyTorch", "Re-running", "This file can still", "(1)", "(2)", "Please file an issue",
                "Check the documentation")


def _unpickler_reason(message: str) -> str:
    """The line of torch's weights-only error that says what it refused (e.g. "Unsupported global:
    GLOBAL posix.system ..."), without torch's advice (which suggests ``weights_only=False``)."""
    for line in message.replace("WeightsUnpickler error:", "\n").splitlines():
        line = line.strip().removeprefix("Weights only load failed.").strip()
        if line and not line.startswith(TORCH_ADVICE):
            return line.split(" Please use", 1)[0]
    return ""


def _refused_message(path: Path, reason: str) -> str:
    """What to do with a file ``weights_only=True`` refused for ``reason`` (the object torch names)."""
    detail = f" ({reason.rstrip('.')})" if reason else ""
    return (
        f"{path} holds Python objects that kdgan does not load, because loading them could run code"
        f"{detail}. kdgan writes only tensors and plain data: a last.pt or best.pt written by an older "
        "kdgan (which saved numpy objects in them) cannot be read, so retrain the run (its student.pt "
        "still loads, also as student.init); a file from elsewhere that you trust you can load yourself "
        "with torch.load(FILE, weights_only=False) and re-save its tensors (e.g. its state_dict) with torch.save"
    )


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
