"""Where a built-in dataset's files are: the one lookup of data directories.

The data directory is ``data.dir`` (``--data-dir``), else ``$KDGAN_DATA``. Each reader names the
places under it that may hold its files (the directory itself, a subfolder named after the
dataset, ...) and how to recognise them; the first place that holds them is used. With
``verify`` (``data.verify: true``) the files found there that have a published SHA-256
(:mod:`kdgan.data.checksums`) are hashed before they are read: tens of milliseconds for MNIST
or CIFAR-10 (see docs/RELIABILITY.md), off by default because the readers already check each
file's structure and a modified copy would be refused.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from kdgan.data.checksums import verify_folder
from kdgan.errors import DataError


def check_data_dir(base: Path) -> None:
    """Refuse a data directory that does not exist or is a file, saying which."""
    if base.is_dir():
        return
    if base.exists():
        raise DataError(f"data directory {base} is a file, not a folder; pass the folder that holds the dataset's "
                        "files with --data-dir or KDGAN_DATA")
    raise DataError(f"data directory {base} does not exist; pass an existing folder with --data-dir or KDGAN_DATA")


def data_root(name: str, directory: str | os.PathLike[str] | None, needs: str, subfolders: Sequence[str]) -> Path:
    """The data directory: ``directory``, else ``$KDGAN_DATA`` (not checked to exist here)."""
    root = directory or os.environ.get("KDGAN_DATA")
    if not root:
        where = " or ".join(f"'{sub}/'" for sub in subfolders)
        raise DataError(
            f"dataset {name!r} needs its files ({needs}): pass --data-dir DIR (or data.dir in the config) or set "
            f"KDGAN_DATA to a folder holding them or a {where} subfolder"
        )
    return Path(root).expanduser()


def dataset_dir(
    name: str, directory: str | os.PathLike[str] | None, places: Sequence[str], holds: Callable[[Path], bool],
    needs: str, verify: bool = False,
) -> Path:
    """The first of ``places`` (folders relative to the data directory, ``"."`` for itself) that
    ``holds`` dataset ``name``'s files, described by ``needs`` in errors; with ``verify``, its
    files' published checksums are checked (:func:`kdgan.data.checksums.verify_folder`)."""
    base = data_root(name, directory, needs, [place for place in places if place != "."])
    check_data_dir(base)
    candidates = [base / place for place in places]
    for candidate in candidates:
        if candidate.is_dir() and holds(candidate):
            if verify:
                verify_folder(name, candidate)
            return candidate
    raise DataError(
        f"dataset {name!r} needs {needs}, but none of {', '.join(str(c) for c in candidates)} holds them; put the "
        "files in one of these folders or pass the folder that holds them with --data-dir"
    )
