"""MNIST-style IDX files (MNIST, Fashion-MNIST), gzipped or not."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from kdgan.data.core import TensorData
from kdgan.data.location import dataset_dir
from kdgan.errors import DataError

IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find(directory: Path, stem: str) -> Path:
    """Locate ``stem`` or ``stem.gz``; also accept the 'train-images.idx3-ubyte' spelling."""
    found = _spellings(directory, stem)
    if found:
        return found[0]
    expected = ", ".join(f"{s}[.gz]" for pair in FILES.values() for s in pair)
    raise DataError(
        f"{stem}[.gz] not found in {directory}. An IDX dataset directory must hold: {expected}. "
        "Pass the folder with --data-dir or set KDGAN_DATA."
    )


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (big-endian header, uint8 payload), checking magic and length."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DataError(f"{path} could not be read ({err}); the file is corrupt or truncated: download it again "
                        "(set data.verify=true to check the files' published checksums)") from None
    if len(raw) < 8:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path} has IDX magic {found}, expected {magic}; is it the right file?")
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    expected = int(np.prod(dims))
    if len(raw) - header != expected:
        raise DataError(
            f"{path} is truncated or padded: header promises {expected} bytes of data for shape "
            f"{dims}, found {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_idx_split(directory: Path, split: str) -> TensorData:
    images_name, labels_name = FILES[split]
    images_path = _find(directory, images_name)
    images = read_idx(images_path, IMAGE_MAGIC)
    labels_path = _find(directory, labels_name)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if images.ndim != 3 or 0 in images.shape:
        raise DataError(f"{images_path} holds images of shape {list(images.shape)}; an IDX image file holds N >= 1 "
                        "images of height x width pixels: the file is damaged or from another dataset, download it "
                        "again")
    if len(images) != len(labels):
        raise DataError(f"{directory}: {len(images)} {split} images but {len(labels)} labels; one of the files is "
                        "from another dataset or damaged: download them again")
    if labels.max(initial=0) > 9:
        raise DataError(f"{directory}: {split} labels must be 0..9, found {labels.max()} in {labels_path}; the "
                        "labels file is damaged or from another dataset: download it again")
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    return TensorData(x, torch.from_numpy(labels.astype(np.int64)), 10)


def holds_idx_files(folder: Path) -> bool:
    """Whether ``folder`` holds any of the four IDX files (in any accepted spelling)."""
    return any(_spellings(folder, stem) for pair in FILES.values() for stem in pair)


def _spellings(folder: Path, stem: str) -> list[Path]:
    """The files in ``folder`` that are ``stem`` in an accepted spelling: .gz or not, '-idx' or '.idx'."""
    dotted = stem.replace("-idx", ".idx")
    return [folder / name for name in (stem, stem + ".gz", dotted, dotted + ".gz") if (folder / name).is_file()]


def load_idx_pool(name: str, directory: str | None, verify: bool = False) -> tuple[TensorData, TensorData]:
    """Return (60k training pool, 10k test set) of an IDX dataset as 1x28x28 images in [0, 1], from
    the data directory or its ``<name>/`` subfolder (see :mod:`kdgan.data.location`)."""
    needs = "the four IDX files " + ", ".join(f"{stem}[.gz]" for pair in FILES.values() for stem in pair)
    folder = dataset_dir(name, directory, (name, "."), holds_idx_files, needs, verify)
    train, test = load_idx_split(folder, "train"), load_idx_split(folder, "test")
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(
            f"{folder}: the training images are {'x'.join(map(str, train.x.shape[2:]))} pixels but the test images "
            f"{'x'.join(map(str, test.x.shape[2:]))} ({_find(folder, FILES['test'][0])}); the files come from "
            "different datasets: download them again"
        )
    return train, test
