"""CIFAR-10 readers: the python pickle batches (lossless) and the JPEG zip archives in shared/data.

Both return (50k training pool, 10k test set) as ``TensorData`` with ``x`` float32 (N, 3, 32, 32)
in [0, 1], ``y`` int64 class indices in the standard CIFAR-10 order (``CLASSES``).

The JPEG archives are a lossy re-encoding (IJG quality 75, 4:2:0 chroma subsampling) of CIFAR-10:
their pixels differ from the original batches, so accuracies on them are not strictly comparable
with published CIFAR-10 numbers. Decoding their 60k JPEGs takes a while, so the decoded uint8 arrays
are cached as ``.npy`` files under ``$KDGAN_CACHE`` (default ``~/.cache/kdgan``).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import warnings
import zipfile
import zlib
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from kdgan.data.core import TensorData
from kdgan.data.location import data_root, dataset_dir
from kdgan.errors import DataError
from kdgan.storage import atomic_write

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)
ROW_BYTES = 3 * 32 * 32

PICKLE_FOLDER = "cifar-10-batches-py"
PICKLE_TARBALL = "cifar-10-python.tar.gz"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
DOWNLOAD_HINT = (
    "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html and extract it "
    f"(or leave the tarball in the data folder); the folder '{PICKLE_FOLDER}/' must hold "
    + ", ".join((*TRAIN_BATCHES, TEST_BATCH))
)

JPEG_ZIPS = {"train": "cifar10-jpg-train.zip", "test": "cifar10-jpg-test.zip"}
CACHE_VERSION = 1  # bump when the cached array layout changes


# ----------------------------------------------------------------------------------------------
# Python pickle batches
# ----------------------------------------------------------------------------------------------

# The only globals a CIFAR batch needs: numpy array reconstruction (numpy 1.x and 2.x spellings)
# and, for pickles re-written by Python 3, ``_codecs.encode``. Anything else is refused, so that a
# tampered download cannot run code while being unpickled.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler restricted to the numpy-array globals a CIFAR batch contains."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")
        with warnings.catch_warnings():  # numpy 2 warns when numpy 1's ``numpy.core`` is imported
            warnings.simplefilter("ignore", DeprecationWarning)
            return super().find_class(module, name)


def _decode_key(key: Any) -> Any:
    return key.decode("latin1") if isinstance(key, bytes) else key


def parse_pickle_batch(handle: BinaryIO, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch (a dict with 'data': uint8 (N, 3072) and 'labels') from an open file.

    Each row holds the red, green and blue 32x32 planes in turn, each row-major, so a reshape to
    (N, 3, 32, 32) gives CHW images. Returns (uint8 (N, 3, 32, 32), int64 (N,)).
    """
    try:
        batch = _BatchUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as err:
        raise DataError(
            f"{origin} is not a readable CIFAR-10 batch ({type(err).__name__}: {err}); the file is truncated "
            f"or corrupt: {DOWNLOAD_HINT}"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{origin} holds a {type(batch).__name__}, not a CIFAR-10 batch dict; {DOWNLOAD_HINT}")
    batch = {_decode_key(k): v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise DataError(
            f"{origin} lacks the 'data' and 'labels' entries (found: {', '.join(map(str, batch))}); "
            f"is it a CIFAR-100 or other batch? {DOWNLOAD_HINT}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != ROW_BYTES:
        raise DataError(
            f"{origin}: 'data' must be a uint8 array of shape (N, {ROW_BYTES}), got {data.dtype} "
            f"{data.shape}; {DOWNLOAD_HINT}"
        )
    if labels.ndim != 1 or len(labels) != len(data):
        raise DataError(f"{origin}: {len(data)} images but labels of shape {labels.shape}; {DOWNLOAD_HINT}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise DataError(
            f"{origin}: labels must be 0..9, found {labels.min()}..{labels.max()}; {DOWNLOAD_HINT}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _to_tensor_data(images: np.ndarray, labels: np.ndarray) -> TensorData:
    """uint8 (N, 3, 32, 32) -> float32 in [0, 1]."""
    x = torch.from_numpy(np.divide(images, np.float32(255.0), dtype=np.float32))  # one pass, no float64
    return TensorData(x, torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)), len(CLASSES))


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> TensorData:
    return _to_tensor_data(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def find_pickle_folder(path: str | os.PathLike[str]) -> Path | None:
    """The batches folder at ``path``: the folder itself (it holds a batch file), or its
    ``cifar-10-batches-py/`` subfolder; None if neither is there."""
    path = Path(path).expanduser()
    for candidate in (path, path / PICKLE_FOLDER):
        if candidate.is_dir() and any((candidate / name).exists() for name in (*TRAIN_BATCHES, TEST_BATCH)):
            return candidate
    if (path / PICKLE_FOLDER).is_dir():
        return path / PICKLE_FOLDER  # present but empty: reported as missing files by the reader
    return None


def load_cifar10_pickles(directory: str | os.PathLike[str]) -> tuple[TensorData, TensorData]:
    """Read ``cifar-10-batches-py/`` (pass that folder or its parent): data_batch_1..5 form the
    training pool, test_batch the test set."""
    folder = find_pickle_folder(directory) or Path(directory).expanduser()
    names = (*TRAIN_BATCHES, TEST_BATCH)
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(f"{folder} lacks the CIFAR-10 batch file(s) {', '.join(missing)}; {DOWNLOAD_HINT}")
    parts = {}
    for name in names:
        with open(folder / name, "rb") as handle:
            parts[name] = parse_pickle_batch(handle, str(folder / name))
    return _concat([parts[n] for n in TRAIN_BATCHES]), _concat([parts[TEST_BATCH]])


def load_cifar10_tarball(path: str | os.PathLike[str]) -> tuple[TensorData, TensorData]:
    """Read the batches straight from the downloaded ``cifar-10-python.tar.gz`` (no extraction)."""
    path = Path(path).expanduser()
    wanted = (*TRAIN_BATCHES, TEST_BATCH)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:  # one pass in stream order: no re-decompression to seek back
                name = Path(member.name).name
                if member.isfile() and name in wanted and name not in parts:
                    handle = archive.extractfile(member)
                    if handle is not None:  # always so for a regular file
                        parts[name] = parse_pickle_batch(io.BytesIO(handle.read()), f"{path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path} could not be read ({err}); it is truncated or corrupt: {DOWNLOAD_HINT}") from None
    missing = [name for name in wanted if name not in parts]
    if missing:
        raise DataError(f"{path} lacks the batch file(s) {', '.join(missing)}; {DOWNLOAD_HINT}")
    return _concat([parts[n] for n in TRAIN_BATCHES]), _concat([parts[TEST_BATCH]])


# ----------------------------------------------------------------------------------------------
# JPEG zip archives
# ----------------------------------------------------------------------------------------------


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(
            f"{path} is not a readable zip archive ({err}); it is truncated or corrupt: copy it again "
            "(shared/data/SHA256SUMS lists the expected checksums)"
        ) from None


def list_jpeg_members(archive: zipfile.ZipFile, split: str) -> list[tuple[str, int]]:
    """The ``<split>/<class>/*.jpg`` members of an open archive as (member name, class index), sorted
    by class then name. Folder names are matched to ``CLASSES`` by name (case-insensitive), never by
    their sort order; an unknown or missing class folder is an error."""
    origin = archive.filename or "archive"
    found: list[tuple[int, str]] = []
    folders: set[str] = set()
    unknown: set[str] = set()
    for name in archive.namelist():
        parts = name.split("/")
        if len(parts) != 3 or parts[0] != split or not parts[2]:
            continue
        folder, file = parts[1], parts[2]
        if not file.lower().endswith((".jpg", ".jpeg")):
            continue
        folders.add(folder)
        if folder.lower() not in CLASSES:
            unknown.add(folder)
            continue
        found.append((CLASSES.index(folder.lower()), name))
    if not found and not unknown:
        raise DataError(
            f"{origin} has no '{split}/<class>/*.jpg' members; is it the {split} archive "
            f"({JPEG_ZIPS.get(split, '?')})?"
        )
    missing = sorted(set(CLASSES) - {f.lower() for f in folders})
    if unknown or missing:
        raise DataError(
            f"{origin}: the '{split}/' class folders must be exactly {', '.join(CLASSES)}; unknown: "
            f"{', '.join(sorted(unknown)) or 'none'}; missing: {', '.join(missing) or 'none'}. "
            "Rename the folders to the CIFAR-10 class names."
        )
    found.sort()
    return [(name, label) for label, name in found]


def zip_class_counts(path: str | os.PathLike[str], split: str) -> dict[str, int]:
    """Images per class in a JPEG archive, read from its member list only (no decoding)."""
    with _open_zip(Path(path)) as archive:
        counts = Counter(label for _, label in list_jpeg_members(archive, split))
    return {cls: counts.get(i, 0) for i, cls in enumerate(CLASSES)}


def decode_jpeg_members(archive: zipfile.ZipFile, names: list[str]) -> np.ndarray:
    """Decode the named 32x32 RGB JPEG members into uint8 (N, 3, 32, 32)."""
    from PIL import Image, UnidentifiedImageError

    out = np.empty((len(names), 32, 32, 3), dtype=np.uint8)
    for i, name in enumerate(names):
        try:
            with Image.open(io.BytesIO(archive.read(name))) as image:
                rgb = image if image.mode == "RGB" else image.convert("RGB")
                if rgb.size != (32, 32):
                    raise DataError(
                        f"{archive.filename}:{name} is {rgb.size[0]}x{rgb.size[1]}, CIFAR-10 images are 32x32; "
                        "the archive is not CIFAR-10"
                    )
                out[i] = np.asarray(rgb)
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError,
                ValueError, SyntaxError) as err:  # a damaged member: bad CRC, deflate data or header fields
            raise DataError(
                f"{archive.filename}:{name} could not be decoded ({err}); the archive is corrupt: copy it again"
            ) from None
    return out.transpose(0, 3, 1, 2)


def read_jpeg_zip(path: str | os.PathLike[str], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode every ``<split>/<class>/*.jpg`` of one archive: (uint8 (N, 3, 32, 32), int64 (N,))."""
    with _open_zip(Path(path)) as archive:
        members = list_jpeg_members(archive, split)
        images = decode_jpeg_members(archive, [name for name, _ in members])
    return np.ascontiguousarray(images), np.array([label for _, label in members], dtype=np.int64)


def cache_root() -> Path:
    """``$KDGAN_CACHE``, else ``$XDG_CACHE_HOME/kdgan``, else ``~/.cache/kdgan``."""
    if os.environ.get("KDGAN_CACHE"):
        return Path(os.environ["KDGAN_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "kdgan"


def archive_key(path: Path) -> str:
    """A short key for an archive's contents: its size and a hash of its first and last 64 KiB (the
    zip's central directory sits at the end, so a changed member changes the key). Unlike the mtime,
    this survives copying the file."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"v{CACHE_VERSION}:{size}:".encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(65536))
        handle.seek(max(0, size - 65536))
        digest.update(handle.read())
    return f"{size}-{digest.hexdigest()[:16]}"


def load_jpeg_split(path: str | os.PathLike[str], split: str, cache: Path | None = None) -> TensorData:
    """One archive as TensorData, decoded once and then read from the ``.npy`` cache.

    ``cache`` defaults to ``cache_root()/cifar10-jpg``; a cache that cannot be written only warns.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path} not found; the CIFAR-10 JPEG folder must hold {', '.join(JPEG_ZIPS.values())}")
    cache = (cache_root() / "cifar10-jpg") if cache is None else cache
    stem = f"{split}-{archive_key(path)}"
    x_file, y_file = cache / f"{stem}-x.npy", cache / f"{stem}-y.npy"
    if x_file.is_file() and y_file.is_file():
        try:
            images, labels = np.load(x_file), np.load(y_file)
            if images.dtype == np.uint8 and images.shape[1:] == IMAGE_SHAPE and labels.shape == (len(images),):
                return _to_tensor_data(images, labels)
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache entry is rebuilt below
        warnings.warn(f"ignoring the damaged cache entry {x_file}; decoding {path} again", stacklevel=2)
    images, labels = read_jpeg_zip(path, split)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        atomic_write(y_file, lambda handle: np.save(handle, labels))  # first: the images mark a complete entry
        atomic_write(x_file, lambda handle: np.save(handle, images))
    except OSError as err:
        warnings.warn(
            f"could not cache decoded CIFAR-10 images in {cache} ({err}); set KDGAN_CACHE to a writable "
            "folder to avoid decoding again next time",
            stacklevel=2,
        )
    return _to_tensor_data(images, labels)


def load_cifar10_jpeg(directory: str | os.PathLike[str], cache: Path | None = None) -> tuple[TensorData, TensorData]:
    """Read cifar10-jpg-train.zip and cifar10-jpg-test.zip from ``directory`` (lossy JPEG version)."""
    folder = Path(directory).expanduser()
    missing = [name for name in JPEG_ZIPS.values() if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"{folder} lacks {', '.join(missing)}; the CIFAR-10 JPEG folder must hold "
            f"{', '.join(JPEG_ZIPS.values())} (see shared/data/README.md)"
        )
    return (
        load_jpeg_split(folder / JPEG_ZIPS["train"], "train", cache),
        load_jpeg_split(folder / JPEG_ZIPS["test"], "test", cache),
    )


# ----------------------------------------------------------------------------------------------
# Either format
# ----------------------------------------------------------------------------------------------


def load_cifar10_pool(directory: str | None, verify: bool = False) -> tuple[TensorData, TensorData]:
    """Return (50k training pool, 10k test set) from the data directory (or a tarball given as
    ``directory``), its ``cifar10/`` or its ``cifar-10/`` subfolder (see :mod:`kdgan.data.location`).
    In each place the lossless pickle batches (folder or tarball) win over the JPEG zips; with
    ``verify``, the JPEG zips' published checksums are checked first."""
    needs = f"'{PICKLE_FOLDER}/' (or {PICKLE_TARBALL}) or the JPEG archives {', '.join(JPEG_ZIPS.values())}"
    base = data_root("cifar10", directory, f"{needs}; {DOWNLOAD_HINT}", ("cifar10",))
    if base.is_file() and base.name.endswith((".tar.gz", ".tgz", ".tar")):
        if verify:
            raise DataError(f"data.verify: {base} has no published checksum (the JPEG zips have); set "
                            "data.verify=false to read it unchecked")
        return load_cifar10_tarball(base)
    folder = dataset_dir("cifar10", base, (".", "cifar10", "cifar-10"), _holds_cifar10, f"{needs}; {DOWNLOAD_HINT}",
                         verify)
    pickles = find_pickle_folder(folder)
    if pickles is not None:
        return load_cifar10_pickles(pickles)
    if (folder / PICKLE_TARBALL).is_file():
        return load_cifar10_tarball(folder / PICKLE_TARBALL)
    return load_cifar10_jpeg(folder)


def _holds_cifar10(folder: Path) -> bool:
    """Whether ``folder`` holds CIFAR-10 in any format this module reads."""
    return (find_pickle_folder(folder) is not None or (folder / PICKLE_TARBALL).is_file()
            or any((folder / name).is_file() for name in JPEG_ZIPS.values()))


__all__ = [
    "CLASSES",
    "archive_key",
    "cache_root",
    "decode_jpeg_members",
    "find_pickle_folder",
    "list_jpeg_members",
    "load_cifar10_jpeg",
    "load_cifar10_pickles",
    "load_cifar10_pool",
    "load_cifar10_tarball",
    "load_jpeg_split",
    "parse_pickle_batch",
    "read_jpeg_zip",
    "zip_class_counts",
]
