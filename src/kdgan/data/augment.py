"""Image augmentation as batched tensor operations on the training device (no per-sample loops).

``random_crop_flip`` is the standard CIFAR recipe of He et al. (2016): pad 4 pixels with zeros on
every side, crop a random 32x32 window, flip horizontally with probability 0.5. Zero padding (not
reflection) matches that paper and TensorFlow's ``pad`` + ``random_crop`` pipelines.
``random_affine`` is the small random affine transform the KDGAN authors applied to MNIST (rotation
up to 15 degrees, shift up to 10 % of the size, zoom within 10 %), as one batched ``grid_sample``.
``standardize`` is TensorFlow's ``per_image_standardization``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from kdgan.errors import DataError


def _check_batch(x: Tensor) -> None:
    if x.ndim != 4:
        raise DataError(f"augmentation expects a batch of images (N, C, H, W), got shape {tuple(x.shape)}")


def crop_flip(x: Tensor, top: Tensor, left: Tensor, flip: Tensor, padding: int) -> Tensor:
    """Crop each zero-padded image at its own offset and optionally mirror it, in one gather.

    ``top``/``left`` (N,) are offsets into the padded image, in [0, 2 * padding]; ``flip`` (N,) bool.
    Offset ``padding`` with no flip returns the image unchanged.
    """
    _check_batch(x)
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    wp = w + 2 * padding
    device = x.device
    top, left, flip = top.to(device), left.to(device), flip.to(device)
    rows = top[:, None] + torch.arange(h, device=device)  # (N, H) source rows
    step = torch.arange(w, device=device)
    cols = left[:, None] + torch.where(flip[:, None], (w - 1) - step, step)  # (N, W) source columns
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return torch.gather(padded.reshape(n, c, -1), 2, index).reshape(n, c, h, w)


def random_crop_flip(x: Tensor, padding: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Random crop of the zero-padded images back to HxW, then a horizontal flip with probability 0.5,
    drawn independently per image. The draws come from ``generator`` (on its own device), so a seeded
    CPU generator gives the same augmentation on any training device."""
    _check_batch(x)
    if padding < 0:
        raise DataError(f"crop padding must be >= 0, got {padding}")
    n = x.shape[0]
    device = generator.device if generator is not None else x.device
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < 0.5
    return crop_flip(x, top, left, flip, padding)


def affine(x: Tensor, angle: Tensor, shift: Tensor, zoom: Tensor) -> Tensor:
    """Rotate each image by ``angle`` (N,) degrees counter-clockwise about its centre, scale it by
    ``zoom`` (N,) (> 1 enlarges) and move it by ``shift`` (N, 2) fractions of its width and height
    (x right, y down); bilinear interpolation, zeros outside the image. Zero angle and shift with
    zoom 1 return the images unchanged."""
    _check_batch(x)
    device, dtype = x.device, x.dtype
    radians = torch.deg2rad(angle.to(device, dtype))
    cos, sin = torch.cos(radians) / zoom.to(device, dtype), torch.sin(radians) / zoom.to(device, dtype)
    offset = -2 * shift.to(device, dtype)  # output pixel p samples the input at p - shift (grid units span 2)
    # the grid maps each output pixel to the input point it samples: input = M (output - shift)
    theta = torch.stack([torch.stack([cos, -sin, cos * offset[:, 0] - sin * offset[:, 1]], -1),
                         torch.stack([sin, cos, sin * offset[:, 0] + cos * offset[:, 1]], -1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_affine(
    x: Tensor, rotation: float = 15.0, shift: float = 0.1, zoom: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """:func:`affine` with, per image, an angle uniform in [-rotation, rotation] degrees, a shift
    uniform in [-shift, shift] of the size along each axis and a zoom uniform in [1 - zoom, 1 + zoom],
    drawn from ``generator`` (on its own device, so a seeded CPU generator gives the same
    augmentation on any training device)."""
    _check_batch(x)
    if rotation < 0 or shift < 0 or not 0 <= zoom < 1:
        raise DataError(f"affine augmentation needs rotation >= 0, shift >= 0 and 0 <= zoom < 1, got "
                        f"{rotation}, {shift}, {zoom}")
    n = x.shape[0]
    device = generator.device if generator is not None else x.device

    def uniform(half_width: float, *shape: int) -> Tensor:
        return (torch.rand(n, *shape, generator=generator, device=device) * 2 - 1) * half_width

    return affine(x, uniform(rotation), uniform(shift, 2), 1 + uniform(zoom))


def standardize(x: Tensor) -> Tensor:
    """Per-image standardisation: subtract each image's mean and divide by its (population) standard
    deviation, clamped below at 1/sqrt(C*H*W) so that uniform images do not blow up."""
    if x.ndim < 2:
        raise DataError(f"standardize expects a batch (N, ...), got shape {tuple(x.shape)}")
    dims = tuple(range(1, x.ndim))
    std, mean = torch.std_mean(x, dim=dims, keepdim=True, correction=0)
    floor = 1.0 / math.sqrt(math.prod(x.shape[1:]))
    return (x - mean) / std.clamp_min(floor)


__all__ = ["affine", "crop_flip", "random_affine", "random_crop_flip", "standardize"]
