"""Classify new inputs with a finished run's student: IDX image files, PNG/JPEG images, .npy arrays.

Inputs are brought to what the student was trained on: the recorded input shape, float32 values
in [0, 1] (MNIST and Fashion-MNIST pixels /255, scikit-learn digits /16). 8-bit data (IDX files,
images, uint8 arrays) is divided by 255; float arrays are taken as they are unless ``scale`` says
otherwise. Values outside the training range of a built-in dataset are refused rather than
silently misclassified. The run's own preprocessing (per-image standardisation, per-feature
z-scoring with the training statistics) is part of the loaded student and applied after that
check: inputs are given raw. Images are converted to the model's channels (grayscale for one) and
resized to its height and width; training images have bright ink on a dark background, so dark-
on-light scans need ``invert=True``.
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kdgan.data.files import IMAGE_SUFFIXES, read_images, read_npy
from kdgan.data.idx import read_idx
from kdgan.deploy.student_file import LoadedStudent, open_student
from kdgan.errors import ConfigError, DataError

IDX_UINT8 = 0x08  # the IDX type code of unsigned bytes, the only one read_idx reads
SCALE_HINT = "pass scale=N (--scale N) to divide them: 16 for raw scikit-learn digits (0..16), 255 for 8-bit pixels"

PathLike = str | Path


def scores_from_logits(logits: Tensor) -> Tensor:
    """Per-label scores from logits: a softmax over labels, as the library trains and evaluates
    every model (multi-label data included). The one place to change the scoring rule."""
    return torch.softmax(logits.float(), dim=-1)


def predict(
    run_dir: PathLike, input_path: PathLike | Sequence[PathLike], top_k: int = 1, *,
    scale: float | None = None, invert: bool = False, batch_size: int = 1024,
) -> list[dict[str, Any]]:
    """The ``top_k`` labels and scores of the student of ``run_dir`` for every input.

    ``input_path`` is one or several IDX files, .npy files, image files or folders of images.
    Each returned row holds ``index``, ``input`` (file name, with ``[i]`` for rows of a file),
    ``prediction`` and ``score`` (the top label) and ``top_k``, a list of ``{"class", "score"}``
    best first (plus ``"name"`` where the run saved label names).
    """
    return predict_student(open_student(run_dir), input_path, top_k, scale=scale, invert=invert,
                           batch_size=batch_size)


def predict_student(
    student: LoadedStudent, input_path: PathLike | Sequence[PathLike], top_k: int = 1, *,
    scale: float | None = None, invert: bool = False, batch_size: int = 1024,
) -> list[dict[str, Any]]:
    """:func:`predict` with an already loaded student (e.g. a custom network, see
    :func:`kdgan.deploy.student_file.open_student`)."""
    if not 1 <= top_k <= student.num_classes:
        raise ConfigError(f"top_k must be between 1 and the model's {student.num_classes} labels, got {top_k}")
    x, names = load_inputs(input_path, student, scale=scale, invert=invert)
    scores = predict_scores(student.module, x, batch_size)  # the module applies the run's preprocessing
    values, classes = scores.topk(top_k, dim=-1)
    rows = []
    for index, (name, row_classes, row_scores) in enumerate(zip(names, classes.tolist(), values.tolist(), strict=True)):
        top = [{"class": c, "score": s} for c, s in zip(row_classes, row_scores, strict=True)]
        if student.label_names:
            for entry in top:
                entry["name"] = student.label_names[entry["class"]]
        rows.append({"index": index, "input": name, "prediction": top[0]["class"], "score": top[0]["score"],
                     "top_k": top})
    return rows


@torch.inference_mode()
def predict_scores(module: torch.nn.Module, x: Tensor, batch_size: int = 1024) -> Tensor:
    """Scores (N, labels) of ``module`` in eval mode on ``x``, in batches to bound memory."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    module.eval()
    chunks = [scores_from_logits(module(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, 0)


# --------------------------------------------------------------------------- inputs
def load_inputs(
    input_path: PathLike | Sequence[PathLike], student: LoadedStudent, *, scale: float | None = None,
    invert: bool = False,
) -> tuple[Tensor, list[str]]:
    """All inputs of ``input_path`` as one float32 tensor (N, *in_shape), with a name per row."""
    if scale is not None and not (math.isfinite(scale) and scale > 0):
        raise ConfigError(f"scale must be a positive number, got {scale}")
    paths = [input_path] if isinstance(input_path, str | Path) else list(input_path)
    if not paths:
        raise ConfigError("no input given; pass an IDX file, a .npy file, images or a folder of images")
    arrays, names = [], []
    for path in map(Path, paths):
        array, source_names = _read_source(path, student.in_shape, scale, invert)
        _check_range(array, path, student)
        arrays.append(array)
        names += source_names
    return torch.from_numpy(np.concatenate(arrays).astype(np.float32)), names


def _read_source(
    path: Path, in_shape: tuple[int, ...], scale: float | None, invert: bool,
) -> tuple[np.ndarray, list[str]]:
    """One input path as (N, *in_shape) floats and its row names."""
    if not path.exists():
        raise DataError(f"input {path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"folder {path} holds no images; supported: {', '.join(IMAGE_SUFFIXES)}")
        return read_images(files, in_shape, scale, invert), [p.name for p in files]
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return read_images([path], in_shape, scale, invert), [path.name]
    if path.suffix.lower() == ".npy":
        raw = read_npy(path)
        default = 255.0 if raw.dtype == np.uint8 else 1.0
    elif _idx_header(path) is not None:
        raw = read_idx_inputs(path)
        default = 255.0
    else:
        raise DataError(
            f"cannot tell the format of {path}: pass an IDX images file (e.g. t10k-images-idx3-ubyte[.gz]), "
            f"a .npy array, or images ({', '.join(IMAGE_SUFFIXES)}) or a folder of them"
        )
    array = fit_shape(raw.astype(np.float32) / np.float32(scale or default), in_shape, path)
    return _maybe_invert(array, invert), [f"{path.name}[{i}]" for i in range(len(array))]


def _idx_header(path: Path) -> tuple[int, int] | None:
    """(type code, number of dimensions) if ``path`` starts like an IDX file, else None."""
    opener = gzip.open if path.suffix == ".gz" else open  # the same rule as read_idx
    try:
        with opener(path, "rb") as handle:
            head = handle.read(4)
    except (OSError, EOFError):
        return None
    if len(head) == 4 and head[0] == 0 and head[1] == 0 and 1 <= head[3] <= 4 and head[2] in (8, 9, 11, 12, 13, 14):
        return head[2], head[3]
    return None


def read_idx_inputs(path: Path) -> np.ndarray:
    """The examples of an IDX file of unsigned bytes (images N x H x W, or rows N x D), unscaled."""
    header = _idx_header(path)
    if header is None:
        raise DataError(f"{path} is not an IDX file")
    code, ndim = header
    if code != IDX_UINT8:
        raise DataError(f"{path} holds IDX type 0x{code:02x}; only unsigned-byte (0x08) IDX files are supported")
    if ndim == 1:
        raise DataError(f"{path} is a 1-d IDX file (labels?); pass the images file, e.g. t10k-images-idx3-ubyte")
    return read_idx(path, (IDX_UINT8 << 8) | ndim)


def _maybe_invert(array: np.ndarray, invert: bool) -> np.ndarray:
    return 1.0 - array if invert else array


def fit_shape(array: np.ndarray, in_shape: tuple[int, ...], source: PathLike) -> np.ndarray:
    """Rows of ``array`` as (N, *in_shape). Accepted per row: ``in_shape`` itself, ``in_shape``
    without its size-1 dimensions (IDX images lack the channel), a flat vector of the same size,
    or channels-last images; a single example may come without the batch dimension."""
    in_shape = tuple(in_shape)
    size = math.prod(in_shape)
    squeezed = tuple(d for d in in_shape if d != 1)
    layouts = {in_shape, squeezed, (size,)}
    if array.ndim >= 1 and array.shape[1:] in layouts:
        return array.reshape(len(array), *in_shape)
    if len(in_shape) == 3 and in_shape[0] > 1 and array.shape[1:] == (*in_shape[1:], in_shape[0]):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))  # channels-last images
    if array.shape in layouts:
        return array.reshape(1, *in_shape)
    raise DataError(
        f"inputs in {source} have shape {tuple(array.shape[1:])} per example (array shape {tuple(array.shape)}) "
        f"but the model takes {in_shape}; resize them to {in_shape} (images are resized automatically)"
    )


def _check_range(array: np.ndarray, source: PathLike, student: LoadedStudent) -> None:
    """Refuse NaNs, and values outside the training range of a built-in dataset."""
    if array.size == 0:
        raise DataError(f"{source} holds no examples")
    if not np.isfinite(array).all():
        raise DataError(f"{source} holds NaN or infinite values")
    if student.input_range is None:
        return
    low, high = student.input_range
    found_low, found_high = float(array.min()), float(array.max())
    if found_low < low - 1e-3 or found_high > high + 1e-3:
        raise DataError(
            f"values in {source} range from {found_low:g} to {found_high:g} but the {student.dataset} model was "
            f"trained on inputs in [{low:g}, {high:g}]; {SCALE_HINT}"
        )


# --------------------------------------------------------------------------- output
def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """Predictions as an aligned text table: the input, then 'class (score)' for each of the top k."""
    if not rows:
        return "(no inputs)"
    k = max(len(row["top_k"]) for row in rows)
    header = ["input"] + (["prediction"] if k == 1 else [f"top{i + 1}" for i in range(k)])
    lines = [header]
    for row in rows:
        cells = [str(row["input"])]
        for entry in row["top_k"]:
            label = f"{entry['class']} {entry['name']}" if "name" in entry else str(entry["class"])
            cells.append(f"{label} ({entry['score']:.4f})")
        lines.append(cells + [""] * (len(header) - len(cells)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def format_json(rows: Sequence[dict[str, Any]], student: LoadedStudent) -> str:
    """Predictions as a JSON object: the student file, the preprocessing applied to the inputs
    before the network, the label names (or null) and ``predictions``, the rows of :func:`predict`."""
    return json.dumps({
        "student": str(student.path), "preprocess": student.describe_preprocess(),
        "label_names": student.label_names, "predictions": list(rows),
    }, indent=2)
