"""A user's own data for ``kdgan train``: an image folder, or feature arrays in NPY, NPZ or CSV files.

``data.name: folder`` reads ``data.dir``, one subfolder per class (the subfolder names, sorted,
are the label names)::

    DIR/cat/1.png  DIR/dog/2.jpg ...                    a stratified test_fraction is the test set
    DIR/train/cat/1.png ...  DIR/test/cat/9.png ...      the given test folder is the test set

Images are read with Pillow (the reader ``kdgan predict`` uses), converted to grayscale when every
image is grayscale (else RGB; ``data.channels`` forces 1 or 3), scaled to [0, 1] and must share
one size unless ``data.image_size: [H, W]`` resizes them all.

``data.name: arrays`` reads ``data.train`` and ``data.test``: each an .npz archive holding ``x``
(features, N rows), ``y`` (labels) and optionally ``privileged`` (teacher-only features, N rows)
and ``label_names`` (strings), or a mapping ``{x: FILE, y: FILE, privileged: FILE}`` of .npy or
.csv files. Labels are integer class indices 0..K-1 (one column) or a 0/1 multi-hot matrix (K
columns; a CSV header then names the labels). uint8 features are divided by 255, as ``kdgan
predict`` does; other numbers are taken as they are. Nothing is unpickled.

Without a test folder or test file, ``data.test_fraction`` of the examples of every class (of all
examples, for multi-label data) is held out with a fixed seed, so every run sees the same test set.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kdgan.config import DataConfig
from kdgan.data.core import TensorData
from kdgan.data.files import IMAGE_SUFFIXES, check_numeric, is_number, read_images, read_npy
from kdgan.errors import DataError

log = logging.getLogger(__name__)

HELD_OUT_SEED = 0  # the held-out test set does not depend on the run's seed
DEFAULT_TEST_FRACTION = 0.2
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
NPZ_KEYS = ("x", "y", "privileged", "label_names")

Loaded = tuple[TensorData, TensorData, list[str] | None]


# --------------------------------------------------------------------------- shared
def held_out_mask(labels: np.ndarray | None, n: int, fraction: float | None, source: str) -> np.ndarray:
    """Boolean mask of the test examples: ``fraction`` (None: DEFAULT_TEST_FRACTION) of each class
    (of all rows when ``labels`` is None), drawn with a fixed seed; every class keeps at least one
    training example."""
    fraction = DEFAULT_TEST_FRACTION if fraction is None else fraction
    rng = np.random.default_rng(HELD_OUT_SEED)
    test = np.zeros(n, dtype=bool)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for rows in groups:
        take = min(round(len(rows) * fraction), len(rows) - 1)
        test[rng.choice(rows, take, replace=False)] = True
    if not test.any():
        raise DataError(
            f"{source}: {n} examples are too few to hold out test_fraction={fraction}; "
            "give a test folder/file or raise data.test_fraction"
        )
    return test


def _split(data: TensorData, test: np.ndarray) -> tuple[TensorData, TensorData]:
    return data.subset(np.flatnonzero(~test)), data.subset(np.flatnonzero(test))


# --------------------------------------------------------------------------- image folder
def load_image_folder(config: DataConfig) -> Loaded:
    """(training pool, test set, class names) of the image folder ``config.dir``."""
    if not config.dir:
        raise DataError("data.name: folder needs data.dir (or --data-dir): a folder with one subfolder per class")
    root = Path(config.dir).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist or is not a folder")
    subfolders = {p.name for p in _subfolders(root)}
    split_layout = "train" in subfolders and subfolders <= {"train", "test"}
    if not split_layout and subfolders & {"train", "test"}:
        others = ", ".join(sorted(subfolders - {"train", "test"}))
        raise DataError(f"{root} mixes train/ or test/ with other folders ({others}); hold either only train/ "
                        "and test/ (each with one subfolder per class), or one subfolder per class")
    train_dir = root / "train" if split_layout else root
    test_dir = root / "test" if split_layout and "test" in subfolders else None
    if test_dir is not None and config.test_fraction is not None:
        raise DataError(f"{test_dir} is the test set, so data.test_fraction has nothing to hold out; remove it")
    train_files = _class_files(train_dir)
    names = sorted(train_files)
    test_files = _class_files(test_dir) if test_dir else {}
    strange = sorted(set(test_files) - set(names))
    if strange:
        raise DataError(f"{test_dir} has class folders {', '.join(strange)} that {train_dir} lacks; "
                        f"the training classes are {', '.join(names)}")
    every = [p for files in (*train_files.values(), *test_files.values()) for p in files]
    shape = _image_shape(every, config.image_size, config.channels)

    def read(files: dict[str, list[Path]]) -> TensorData:
        paths = [p for name in names for p in files.get(name, [])]
        labels = [i for i, name in enumerate(names) for _ in files.get(name, [])]
        x = torch.from_numpy(read_images(paths, shape))
        return TensorData(x, torch.tensor(labels, dtype=torch.long).reshape(-1), num_classes=len(names))

    pool = read(train_files)
    if test_dir is not None:
        return pool, read(test_files), names
    train, test = _split(pool, held_out_mask(pool.y.numpy(), len(pool), config.test_fraction, str(root)))
    return train, test, names


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """Each class subfolder's image files (searched recursively, hidden files skipped)."""
    classes = _subfolders(folder)
    if not classes:
        raise DataError(f"{folder} has no class subfolders; put each class's images in {folder}/<class name>/")
    files = {}
    for cls in classes:
        found = sorted(p for p in cls.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(cls).parts))
        images = [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise DataError(f"class folder {cls} holds no images; supported: {', '.join(IMAGE_SUFFIXES)}")
        if len(images) < len(found):
            log.info("%s: skipped %d files that are not images", cls, len(found) - len(images))
        files[cls.name] = images
    return files


def _image_shape(paths: list[Path], image_size: list[int] | None, channels: int | None) -> tuple[int, int, int]:
    """(channels, height, width) of the images: one shared size unless ``image_size`` resizes them."""
    from PIL import Image, UnidentifiedImageError

    sizes: dict[tuple[int, int], Path] = {}
    gray = True
    for path in paths:
        try:
            with Image.open(path) as image:
                sizes.setdefault(image.size, path)
                gray = gray and image.mode in GRAY_MODES
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"{path} could not be read as an image ({err})") from None
    if image_size is None and len(sizes) > 1:
        (size_a, a), (size_b, b) = list(sizes.items())[:2]
        raise DataError(
            f"the images differ in size: {a} is {size_a[0]}x{size_a[1]}, {b} is {size_b[0]}x{size_b[1]} "
            "(width x height); set data.image_size: [height, width] to resize them all"
        )
    height, width = image_size if image_size is not None else next(iter(sizes))[::-1]
    return channels or (1 if gray else 3), height, width


# --------------------------------------------------------------------------- arrays
@dataclass
class ArraySplit:
    """One split's arrays as read, before they become TensorData."""

    x: np.ndarray
    y: np.ndarray
    privileged: np.ndarray | None
    label_names: list[str] | None
    source: str


def load_arrays(config: DataConfig) -> Loaded:
    """(training pool, test set, label names or None) of ``config.train`` / ``config.test``."""
    base = Path(config.dir).expanduser() if config.dir else Path()
    train = read_array_split(config.train, base)
    test = read_array_split(config.test, base) if config.test is not None else None
    multilabel = train.y.ndim == 2
    if test is not None:
        _check_alike(train, test)
    names = train.label_names or (test.label_names if test else None)
    if test is not None and train.label_names and test.label_names and train.label_names != test.label_names:
        raise DataError(f"{train.source} and {test.source} name the labels differently: "
                        f"{train.label_names[:5]} vs {test.label_names[:5]}")
    if multilabel:
        num_classes = train.y.shape[1]
    else:
        largest = max(int(part.y.max()) for part in (train, test) if part is not None)
        num_classes = len(names) if names else largest + 1
        if largest >= num_classes:
            raise DataError(f"{train.source}: class label {largest} needs {largest + 1} label names, "
                            f"but {len(names or [])} are given")
    if names is not None and len(names) != num_classes:
        raise DataError(f"{train.source}: {len(names)} label names for {num_classes} labels")
    pool = _tensor_data(train, num_classes)
    if test is not None:
        return pool, _tensor_data(test, num_classes), names
    labels = None if multilabel else train.y
    train_part, test_part = _split(pool, held_out_mask(labels, len(pool), config.test_fraction, train.source))
    return train_part, test_part, names


def read_array_split(spec: str | dict[str, str], base: Path) -> ArraySplit:
    """One split from an .npz archive or from {x, y, privileged} .npy/.csv files."""
    if isinstance(spec, str):
        path = _existing(base / spec)
        arrays = _read_npz(path)
        names = arrays.pop("label_names", None)
        label_names = None if names is None else [str(n) for n in names]
        sources = {key: f"{path}[{key}]" for key in arrays}
    else:
        paths = {key: _existing(base / value) for key, value in spec.items()}
        arrays, headers = {}, {}
        for key, path in paths.items():
            arrays[key], headers[key] = _read_array_file(path)
        sources = {key: str(path) for key, path in paths.items()}
        label_names = headers["y"] if arrays["y"].ndim == 2 and arrays["y"].shape[1] > 1 else None
    x = _features(arrays["x"], sources["x"])
    privileged = _features(arrays["privileged"], sources["privileged"]) if "privileged" in arrays else None
    y = _labels(arrays["y"], sources["y"])
    for key, rows in (("y", len(y)), ("privileged", None if privileged is None else len(privileged))):
        if rows is not None and rows != len(x):
            raise DataError(f"{sources[key]} has {rows} rows but {sources['x']} has {len(x)}; "
                            "give one row per example in every file")
    if label_names is not None and y.ndim == 2 and len(label_names) != y.shape[1]:
        raise DataError(f"{sources['y']}: {len(label_names)} label names for {y.shape[1]} label columns")
    return ArraySplit(x, y, privileged, label_names, sources["x"])


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"data file {path} does not exist (relative paths are taken from data.dir when set)")
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive, refusing pickled objects and keys other than NPZ_KEYS."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            if not isinstance(archive, np.lib.npyio.NpzFile):
                raise DataError(f"{path} is a single .npy array, not an .npz archive; name it .npy and list it "
                                "as {x: FILE, y: FILE}")
            keys = list(archive.files)
            unknown = sorted(set(keys) - set(NPZ_KEYS))
            if unknown or not {"x", "y"} <= set(keys):
                raise DataError(f"{path} holds arrays {keys}; an .npz needs x (features) and y (labels), and may "
                                "hold privileged (teacher-only features) and label_names (strings)")
            arrays = {key: archive[key] for key in keys}
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} could not be read as an .npz archive of numeric arrays ({err})") from None
    names = arrays.get("label_names")
    if names is not None and (names.ndim != 1 or names.dtype.kind not in "US"):
        raise DataError(f"{path}[label_names] must be a 1-d array of strings, got {names.dtype} of shape "
                        f"{names.shape}")
    for key in ("x", "y", "privileged"):
        if key in arrays:
            arrays[key] = check_numeric(arrays[key], f"{path}[{key}]")
    return arrays


def _read_array_file(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """An .npy or .csv file's array, and the CSV's header names (None without a header)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path), None
    if suffix == ".csv":
        return read_csv(path)
    raise DataError(f"{path}: arrays are read from .npy or .csv files (or one .npz archive), "
                    f"not {suffix or 'a file without suffix'}")


def read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Comma-separated numbers, one row per example; a first line that is not all numbers is a header."""
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err})") from None
    header = None
    if lines and not all(is_number(cell) for cell in lines[0].split(",")):
        header = [cell.strip() for cell in lines[0].split(",")]
        lines = lines[1:]
    if not lines:
        raise DataError(f"{path} holds no data rows")
    rows = []
    for number, line in enumerate(lines, start=2 if header else 1):
        cells = line.split(",")
        if not all(is_number(cell) for cell in cells):
            raise DataError(f"{path}, row {number}: {line[:60]!r} is not comma-separated numbers")
        rows.append([float(cell) for cell in cells])
    widths = {len(row) for row in rows}
    if len(widths) > 1 or (header and len(header) not in widths):
        raise DataError(f"{path}: rows have different numbers of columns ({sorted(widths)}"
                        f"{f', header {len(header)}' if header else ''}); give every row the same columns")
    return np.array(rows), header


def _features(array: np.ndarray, source: str) -> np.ndarray:
    """float32 features (N, ...): uint8 divided by 255; NaN and infinity refused."""
    if array.ndim < 2:
        raise DataError(f"{source} has shape {array.shape}; features need one row per example (N, D)")
    if len(array) == 0:
        raise DataError(f"{source} holds no examples")
    scaled = array.astype(np.float32) / np.float32(255.0 if array.dtype == np.uint8 else 1.0)
    bad = ~np.isfinite(scaled.reshape(len(scaled), -1)).all(axis=1)
    if bad.any():
        raise DataError(f"{source}, row {int(np.flatnonzero(bad)[0])} (from 0): NaN or infinite values in "
                        f"{int(bad.sum())} rows; clean or impute them first")
    return scaled


def _labels(array: np.ndarray, source: str) -> np.ndarray:
    """int64 class indices (N,) from one column, or a float32 0/1 multi-hot matrix (N, K)."""
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim == 1:
        whole = np.isfinite(array) & (array == np.round(array)) & (array >= 0)
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(f"{source}, row {row} (from 0): class labels must be whole numbers 0..K-1, found "
                            f"{array[row]}; for multi-label data give a 0/1 matrix with one column per label")
        return array.astype(np.int64)
    if array.ndim != 2:
        raise DataError(f"{source} has shape {array.shape}; labels are a column of class indices or an "
                        "(N, K) 0/1 multi-hot matrix")
    binary = (array == 0) | (array == 1)
    if not binary.all():
        row, col = (int(i[0]) for i in np.nonzero(~binary))
        raise DataError(f"{source}, row {row}, column {col} (from 0): a multi-hot label matrix holds only 0 and 1, "
                        f"found {array[row, col]}")
    empty = ~array.any(axis=1)
    if empty.any():
        raise DataError(f"{source}: {int(empty.sum())} rows have no label at all (first: row "
                        f"{int(np.flatnonzero(empty)[0])}, from 0); drop them or give each at least one label")
    return array.astype(np.float32)


def _check_alike(train: ArraySplit, test: ArraySplit) -> None:
    """The test split must have the training split's feature shapes, label kind and privileged view."""
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"{test.source} has features of shape {test.x.shape[1:]} per row but {train.source} "
                        f"has {train.x.shape[1:]}")
    if (train.privileged is None) != (test.privileged is None):
        has, lacks = (train, test) if test.privileged is None else (test, train)
        raise DataError(f"{has.source} comes with privileged features but {lacks.source} does not; give both "
                        "splits the teacher's view or neither")
    if train.privileged is not None and train.privileged.shape[1:] != test.privileged.shape[1:]:
        raise DataError(f"the privileged features have shape {test.privileged.shape[1:]} per row in the test "
                        f"split but {train.privileged.shape[1:]} in the training split")
    if train.y.ndim != test.y.ndim or (train.y.ndim == 2 and train.y.shape[1] != test.y.shape[1]):
        raise DataError(f"the training labels are {_label_kind(train.y)} but the test labels are "
                        f"{_label_kind(test.y)}")


def _label_kind(y: np.ndarray) -> str:
    return f"{y.shape[1]} multi-hot label columns" if y.ndim == 2 else "class indices"


def _tensor_data(part: ArraySplit, num_classes: int) -> TensorData:
    privileged = None if part.privileged is None else torch.from_numpy(part.privileged)
    return TensorData(torch.from_numpy(part.x), torch.from_numpy(part.y), num_classes, privileged=privileged)


__all__ = ["DEFAULT_TEST_FRACTION", "HELD_OUT_SEED", "load_arrays", "load_image_folder", "read_csv"]
