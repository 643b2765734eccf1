"""Files kdgan writes and reads: atomic writes that never leave a half-written file, errors that
say why a write failed (disk full, permission, ...), and the one loader of ``.pt`` files, which
builds only tensors and plain data so that a crafted file cannot run code.

Training, experiments and deployment all write through here; nothing here knows about runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

from kdgan.errors import DataError, OutputError, UnsafeFileError

# What an OSError's errno means for a write, and what the user can do about it.
WRITE_PROBLEMS = {
    errno.ENOSPC: ("the disk is full", "free some space and try again"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space and try again"),
    errno.EACCES: ("permission denied", "choose a folder you can write to"),
    errno.EPERM: ("permission denied", "choose a folder you can write to"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "choose a path that is not under a file"),
    errno.EISDIR: ("it is a folder", "choose a file name"),
}


def output_error(path: Path, err: OSError, kept: bool = False) -> OutputError:
    """``err`` (raised while writing ``path``) as an error that says what happened and what to do;
    ``kept`` says that an earlier version of ``path`` is still intact."""
    problem, fix = WRITE_PROBLEMS.get(err.errno, (err.strerror or str(err) or type(err).__name__, "try again"))
    detail = f" ({err.strerror})" if err.strerror and err.strerror.lower() != problem else ""
    previous = f"; the previous {path} is intact" if kept else ""
    error = OutputError(f"cannot write {path}: {problem}{detail}{previous}. To fix: {fix}")
    error.errno, error.filename = err.errno, str(path)
    return error


@contextlib.contextmanager
def reported_as_output_error(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into an :class:`OutputError` naming it
    (and saying whether the previous file at ``path`` survived: writes here are atomic)."""
    existed = path.exists()
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise output_error(path, err, kept=existed) from err


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


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` with ``write(handle)`` into a temporary file beside it, synced to disk and
    renamed over ``path``: readers never see half a file, and a crash mid-write leaves any earlier
    file intact. A failed write raises :class:`~kdgan.errors.OutputError` naming ``path`` and the
    cause (e.g. disk full)."""
    with reported_as_output_error(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                write(handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp creates 0600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` through :func:`atomic_write`."""

    def write(handle: BinaryIO) -> None:
        writer = _WriteErrorRecorder(handle)
        try:
            torch.save(obj, writer)
        except RuntimeError:
            if writer.error is not None:
                raise writer.error from None
            raise

    atomic_write(path, write)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file (UTF-8) through :func:`atomic_write`."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


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
