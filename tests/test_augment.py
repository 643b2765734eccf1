"""Batched crop/flip and per-image standardisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdgan.data.augment import crop_flip, random_crop_flip, standardize
from kdgan.errors import DataError

torch.set_num_threads(1)


def images(n: int = 4, c: int = 3, h: int = 8, w: int = 8) -> torch.Tensor:
    return torch.arange(1, n * c * h * w + 1, dtype=torch.float32).reshape(n, c, h, w)


def reference(x: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int) -> torch.Tensor:
    """Per-sample loop, for comparison only."""
    padded = F.pad(x, (padding,) * 4)
    h, w = x.shape[2:]
    out = []
    for i in range(len(x)):
        crop = padded[i, :, top[i] : top[i] + h, left[i] : left[i] + w]
        out.append(crop.flip(-1) if flip[i] else crop)
    return torch.stack(out)


def test_known_offsets() -> None:
    x = images(3)
    p = 2
    out = crop_flip(x, torch.tensor([p, 0, 2 * p]), torch.tensor([p, 0, 2 * p]), torch.zeros(3, dtype=torch.bool), p)
    assert torch.equal(out[0], x[0])  # centred: unchanged
    assert torch.equal(out[1, :, p:, p:], x[1, :, :-p, :-p])  # window at the top-left corner: shifted down-right
    assert (out[1, :, :p, :] == 0).all() and (out[1, :, :, :p] == 0).all()  # zero padding
    assert torch.equal(out[2, :, :-p, :-p], x[2, :, p:, p:])
    assert (out[2, :, -p:, :] == 0).all() and (out[2, :, :, -p:] == 0).all()


def test_flip() -> None:
    x = images(2)
    out = crop_flip(x, torch.tensor([1, 1]), torch.tensor([1, 1]), torch.tensor([True, False]), 1)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1])


def test_matches_per_sample_reference() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 3, 10, 12, generator=g)
    top = torch.randint(0, 9, (16,), generator=g)
    left = torch.randint(0, 9, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    assert torch.equal(crop_flip(x, top, left, flip, 4), reference(x, top, left, flip, 4))


def test_random_crop_flip_shapes_and_determinism() -> None:
    x = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a = random_crop_flip(x, 4, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, 4, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, 4, torch.Generator().manual_seed(8))
    assert a.shape == x.shape and a.dtype == x.dtype
    assert torch.equal(a, b) and not torch.equal(a, c)
    # every output is one of the 9 * 9 * 2 crops/flips of its own input
    g = torch.Generator().manual_seed(7)
    top, left = torch.randint(0, 9, (32,), generator=g), torch.randint(0, 9, (32,), generator=g)
    flip = torch.rand(32, generator=g) < 0.5
    assert torch.equal(a, reference(x, top, left, flip, 4))


def test_random_draws_cover_offsets_and_flip_half() -> None:
    n = 4000
    x = torch.tensor([[[[0.0, 1.0, 0.0]]]]).expand(n, 1, 1, 3).contiguous()  # a single bright pixel
    out = random_crop_flip(x, 1, torch.Generator().manual_seed(3))
    position = out[:, 0, :, :].reshape(n, -1).argmax(dim=1)[out.reshape(n, -1).amax(dim=1) > 0]
    assert set(position.tolist()) == {0, 1, 2}  # horizontal shifts of -1, 0, +1
    unflipped = torch.tensor([[[[1.0, 2.0]]]]).expand(n, 1, 1, 2)
    flipped = random_crop_flip(unflipped, 0, torch.Generator().manual_seed(4))[:, 0, 0, 0] == 2.0
    assert abs(flipped.float().mean().item() - 0.5) < 0.05


def test_bad_input() -> None:
    with pytest.raises(DataError, match=r"\(N, C, H, W\)"):
        random_crop_flip(torch.zeros(3, 8, 8))
    with pytest.raises(DataError, match="padding"):
        random_crop_flip(torch.zeros(1, 3, 8, 8), padding=-1)


def test_standardize_stats() -> None:
    x = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 5 + 2
    out = standardize(x)
    assert out.shape == x.shape
    assert torch.allclose(out.mean(dim=(1, 2, 3)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(out.std(dim=(1, 2, 3), correction=0), torch.ones(8), atol=1e-4)


def test_standardize_clamps_small_std() -> None:
    x = torch.full((2, 3, 4, 4), 0.7)
    x[1, 0, 0, 0] += 1e-4  # std far below 1/sqrt(48)
    out = standardize(x)
    assert torch.allclose(out[0], torch.zeros(3, 4, 4), atol=1e-5)  # uniform image: ~zeros, not NaN
    floor = 1 / math.sqrt(48)
    expected = (x[1] - x[1].mean()) / floor
    assert torch.allclose(out[1], expected, atol=1e-6)
