"""Batched crop/flip, random affine transforms and per-image standardisation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from kdgan.data import augment
from kdgan.data.augment import affine, crop_flip, random_affine, random_crop_flip, standardize
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


# ----------------------------------------------------------------- random affine (MNIST, issue 15)
def dot(row: int, col: int, size: int = 8) -> torch.Tensor:
    image = torch.zeros(1, 1, size, size)
    image[0, 0, row, col] = 1.0
    return image


def where(image: torch.Tensor) -> list[list[int]]:
    return image[0, 0].round().nonzero().tolist()


def test_affine_identity_shift_rotation_and_zoom_by_hand():
    x = dot(2, 5)
    none, no_shift, one = torch.zeros(1), torch.zeros(1, 2), torch.ones(1)
    assert torch.allclose(affine(x, none, no_shift, one), x, atol=1e-6)
    assert where(affine(x, none, torch.tensor([[1 / 8, 0.0]]), one)) == [[2, 6]]  # one pixel right
    assert where(affine(x, none, torch.tensor([[0.0, 2 / 8]]), one)) == [[4, 5]]  # two pixels down
    rotated = affine(x, torch.tensor([90.0]), no_shift, one)
    assert torch.allclose(rotated, torch.rot90(x, 1, (2, 3)), atol=1e-6)  # counter-clockwise, as displayed
    assert where(affine(x, torch.tensor([90.0]), torch.tensor([[1 / 8, 0.0]]), one)) == [[2, 3]]  # rotate, then shift
    block = torch.zeros(1, 1, 8, 8)
    block[0, 0, 3:5, 3:5] = 1
    assert int(affine(block, none, no_shift, torch.tensor([2.0])).gt(0.5).sum()) == 16  # 2x2 pixels become 4x4
    assert int(affine(block, none, no_shift, torch.tensor([0.5])).gt(0.2).sum()) <= 4


def test_random_affine_is_seeded_per_image_and_within_its_ranges(monkeypatch):
    x = torch.rand(64, 1, 12, 12)
    first = random_affine(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(first, random_affine(x, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(first, random_affine(x, generator=torch.Generator().manual_seed(4)))
    seen = {}
    monkeypatch.setattr(augment, "affine", lambda x, a, s, z: seen.update(angle=a, shift=s, zoom=z) or x)
    random_affine(x, rotation=15.0, shift=0.1, zoom=0.1, generator=torch.Generator().manual_seed(0))
    assert seen["angle"].abs().max() <= 15 and seen["angle"].abs().max() > 10 and seen["angle"].shape == (64,)
    assert seen["shift"].abs().max() <= 0.1 and seen["shift"].abs().max() > 0.07 and seen["shift"].shape == (64, 2)
    assert seen["zoom"].min() >= 0.9 and seen["zoom"].max() <= 1.1 and seen["zoom"].std() > 0.03
    random_affine(x, rotation=0.0, shift=0.0, zoom=0.0, generator=torch.Generator().manual_seed(0))
    assert not seen["angle"].any() and not seen["shift"].any() and (seen["zoom"] == 1).all()


@pytest.mark.parametrize("kwargs", [{"rotation": -1.0}, {"shift": -0.1}, {"zoom": 1.0}])
def test_random_affine_refuses_bad_ranges(kwargs):
    with pytest.raises(DataError, match="affine augmentation needs rotation >= 0"):
        random_affine(torch.zeros(2, 1, 4, 4), **kwargs)
