"""One writer per run directory, and clear errors for run directories that cannot be written.

A process that trains or resumes in a run directory holds an OS file lock on ``DIR/.kdgan.lock``
(``fcntl.flock``, exclusive, never waited for). The kernel drops the lock when the process exits,
however it exits (``kill -9`` included), so a crash never leaves a stale lock behind. The lock
file also records who holds it (pid, host, command, start time); that is read for the error
message only, the flock alone decides. The file stays in the directory, empty when no one holds it
(deleting it could let two processes lock two different files of the same name).

The lock is counted per thread: the CLI takes it before it writes config.yaml and ``Trainer.fit``
takes it again for the run, and another thread of the same process is refused like another process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from kdgan.errors import OutputError, RunInUseError
from kdgan.storage import output_error, reported_as_output_error

LOCK_NAME = ".kdgan.lock"

def check_output_dir(run_dir: Path) -> None:
    """Refuse, before anything is written, a run directory that is a file, lies under a file, or
    sits in a folder this process may not write to."""
    if run_dir.exists() and not run_dir.is_dir():
        raise OutputError(f"{run_dir} is a file, not a folder; choose a folder for the run (--out)")
    existing = run_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"cannot create the run folder {run_dir}: {existing} is a file, not a folder; "
                          "choose a path that is not under a file (--out)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write the run folder {run_dir}: permission denied on {existing}; "
                          "choose a folder you can write to (--out)")


@dataclass
class _Held:
    handle: IO[str]
    thread: int
    count: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()


def holder_description(text: str) -> str:
    """The lock file's record of its holder, in words (it may be empty: just taken, not yet written)."""
    try:
        info = json.loads(text)
        return (f"pid {info['pid']} on host {info['host']}, since {info['since']}, "
                f"command: {info['command']}")
    except (ValueError, KeyError, TypeError):
        return "a process that has not recorded itself yet"


def in_use_error(run_dir: Path, lock_text: str) -> RunInUseError:
    return RunInUseError(
        f"{run_dir} is in use: another kdgan process is writing it ({holder_description(lock_text)}). Wait "
        f"for it to finish, or choose another --out; its lock on {run_dir / LOCK_NAME} is released when that "
        "process ends, even if it is killed"
    )


def check_not_in_use(run_dir: Path) -> None:
    """Raise :class:`RunInUseError` if another process holds ``run_dir``'s lock, writing nothing:
    lets a second writer fail before the minutes it may take to load data and build networks."""
    if Path(run_dir).resolve() in _held:
        return  # this process holds it: acquire decides (the same thread may share it)
    try:
        with open(Path(run_dir) / LOCK_NAME) as handle:  # read-only: flock needs no write access
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)  # refused only by a writer's exclusive lock
            except BlockingIOError:
                raise in_use_error(Path(run_dir), handle.read()) from None
            fcntl.flock(handle, fcntl.LOCK_UN)
    except OSError:
        return  # no lock file yet, or one this process cannot read: acquire decides


def take(handle: IO[str], tries: int = 5, wait: float = 0.02) -> None:
    """flock ``handle`` exclusively; a few quick retries ride out another process's
    :func:`check_not_in_use`, which holds a shared lock for an instant."""
    for attempt in range(tries):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == tries - 1:
                raise
            time.sleep(wait)


def acquire(run_dir: Path) -> None:
    """Create ``run_dir`` if needed and take its lock, or raise :class:`RunInUseError` naming the
    process that holds it."""
    run_dir = Path(run_dir)
    key = run_dir.resolve()
    with _guard:
        held = _held.get(key)
        if held is not None:
            if held.thread != threading.get_ident():
                raise RunInUseError(f"{run_dir} is being written by another thread of this process; "
                                    "one run directory takes one writer")
            held.count += 1
            return
        check_output_dir(run_dir)
        path = run_dir / LOCK_NAME
        with reported_as_output_error(run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
        with reported_as_output_error(path):
            handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o644), "r+")
        try:
            take(handle)
        except BlockingIOError:
            error = in_use_error(run_dir, handle.read())
            handle.close()
            raise error from None
        except OSError as err:
            handle.close()
            raise output_error(path, err) from err
        try:
            handle.truncate(0)
            handle.write(json.dumps({
                "pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                "since": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            }) + "\n")
            handle.flush()
        except OSError as err:
            handle.close()
            raise output_error(path, err) from err
        _held[key] = _Held(handle, threading.get_ident(), 1)


def release(run_dir: Path) -> None:
    """Give back one hold of ``run_dir``'s lock; the last one empties the lock file and unlocks it."""
    key = Path(run_dir).resolve()
    with _guard:
        held = _held[key]
        held.count -= 1
        if held.count:
            return
        del _held[key]
        with contextlib.suppress(OSError):  # only the holder's record; the unlock below is what counts
            held.handle.truncate(0)
        held.handle.close()  # closing the last descriptor releases the flock


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block (see :func:`acquire`)."""
    acquire(run_dir)
    try:
        yield
    finally:
        release(run_dir)


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
