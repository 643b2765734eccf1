"""Readers of a user's files shared by ``kdgan train`` (own data) and ``kdgan predict``: .npy
arrays (never unpickled) and image files, so that training and prediction read a file alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kdgan.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def check_numeric(array: np.ndarray, source: str | Path) -> np.ndarray:
    """``array`` with booleans as float32; other non-real dtypes (text, objects, complex) are refused."""
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise DataError(f"{source} holds {array.dtype} values; save real numbers (float32 in [0, 1])")
    return array


def is_number(text: str) -> bool:
    """Whether a text cell (of a CSV or ARFF row) reads as a float."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_npy(path: Path) -> np.ndarray:
    """A numeric array from a .npy file (no pickled objects)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"{path} could not be read as a .npy array ({err})") from None
    if not isinstance(array, np.ndarray):  # np.load also opens .npz archives
        raise DataError(f"{path} is an .npz archive, not a .npy array; name it .npz")
    return check_numeric(array, path)


def read_images(paths: Sequence[Path], in_shape: tuple[int, ...], scale: float | None = None,
                invert: bool = False) -> np.ndarray:
    """Images as (N, C, H, W) floats: C=1 grayscale or C=3 RGB, resized to the model's H x W,
    divided by ``scale`` (255 by default) and, with ``invert``, turned into 1 - value."""
    from PIL import Image, UnidentifiedImageError

    if len(in_shape) != 3 or in_shape[0] not in (1, 3):
        raise DataError(
            f"the model takes inputs of shape {tuple(in_shape)}, not images (channels 1 or 3, height, width); "
            "pass a .npy array of that shape instead"
        )
    channels, height, width = in_shape
    out = np.empty((len(paths), channels, height, width), dtype=np.float32)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image.load()
                image = _flatten_alpha(image)
                image = image.convert("L" if channels == 1 else "RGB")
                shrink = image.width >= width and image.height >= height
                resample = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
                pixels = np.asarray(image.resize((width, height), resample), dtype=np.float32)
        except (UnidentifiedImageError, OSError) as err:
            raise DataError(f"{path} could not be read as an image ({err})") from None
        out[i] = pixels.reshape(height, width, channels).transpose(2, 0, 1)
    out /= np.float32(scale or 255.0)
    return 1.0 - out if invert else out


def _flatten_alpha(image: Any) -> Any:
    """Transparent images over a white page: ink drawn on a transparent canvas stays visible."""
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return image
