"""Datasets: labelled subsets, validation splits, the IDX reader and its errors."""

import gzip

import numpy as np
import pytest
import torch

from kdgan.config import DataConfig
from kdgan.data import TensorData, balanced_subset, labelled_split, load_splits, target_distribution
from kdgan.data.idx import load_idx_pool, read_idx
from kdgan.errors import DataError


def test_balanced_subset_sizes_and_balance():
    labels = np.repeat(np.arange(10), 50)
    rng = np.random.default_rng(0)
    idx = balanced_subset(labels, 100, rng)
    assert len(idx) == 100 == len(set(idx.tolist()))
    assert np.bincount(labels[idx]).tolist() == [10] * 10
    uneven = balanced_subset(labels, 23, np.random.default_rng(1))
    counts = np.bincount(labels[uneven], minlength=10)
    assert counts.sum() == 23 and counts.max() - counts.min() <= 1


def test_labelled_split_is_disjoint_balanced_and_seeded():
    x = torch.arange(1000, dtype=torch.float32).unsqueeze(1)
    pool = TensorData(x, torch.arange(1000) % 10, 10)
    train, val = labelled_split(pool, 100, 200, seed=3)
    assert len(train) == 100 and len(val) == 200
    assert not set(train.x.flatten().tolist()) & set(val.x.flatten().tolist())
    assert torch.bincount(train.y).tolist() == [10] * 10 and torch.bincount(val.y).tolist() == [20] * 10
    again, _ = labelled_split(pool, 100, 200, seed=3)
    other, _ = labelled_split(pool, 100, 200, seed=4)
    assert torch.equal(again.x, train.x) and not torch.equal(other.x, train.x)
    with pytest.raises(DataError, match="n=900 plus val_size=200"):
        labelled_split(pool, 900, 200, seed=0)


def test_digits_splits_are_disjoint_from_test():
    splits = load_splits(DataConfig(name="digits", n=50, val_size=100), seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 100, 497)
    rows = lambda d: {tuple(r) for r in d.x.flatten(1).tolist()}  # noqa: E731
    assert not rows(splits.train) & rows(splits.test)
    assert splits.train.x.shape[1:] == (1, 8, 8) and splits.train.x.min() >= 0 and splits.train.x.max() <= 1


def test_target_distribution_one_hot_and_multi_hot():
    assert torch.equal(target_distribution(torch.tensor([2]), 3), torch.tensor([[0.0, 0.0, 1.0]]))
    multi = target_distribution(torch.tensor([[1.0, 0.0, 1.0, 1.0]]), 4)
    assert torch.allclose(multi, torch.tensor([[1 / 3, 0.0, 1 / 3, 1 / 3]]))


def test_labels_out_of_range_are_refused():
    with pytest.raises(DataError, match=r"class labels must lie in \[0, 9\]"):
        TensorData(torch.zeros(3, 4), torch.tensor([0, 5, 10]), 10)
    with pytest.raises(DataError, match="3 rows but targets have 2"):
        TensorData(torch.zeros(3, 4), torch.tensor([0, 1]), 10)


def _write_idx(path, array, magic, compress=True):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_idx_reader_round_trip_and_errors(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    _write_idx(tmp_path / "a.gz", images, 2051)
    assert np.array_equal(read_idx(tmp_path / "a.gz", 2051), images)
    with pytest.raises(DataError, match="magic 2051, expected 2049"):
        read_idx(tmp_path / "a.gz", 2049)
    raw = gzip.decompress((tmp_path / "a.gz").read_bytes())
    (tmp_path / "cut").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "cut", 2051)
    (tmp_path / "broken.gz").write_bytes((tmp_path / "a.gz").read_bytes()[:50])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_idx(tmp_path / "broken.gz", 2051)


def test_missing_idx_directory_says_which_files(tmp_path, monkeypatch):
    monkeypatch.delenv("KDGAN_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir"):
        load_idx_pool("mnist", None)
    with pytest.raises(DataError, match=r"the four IDX files train-images-idx3-ubyte\[\.gz\].*t10k-labels-idx1-ubyte"):
        load_idx_pool("mnist", str(tmp_path))


def test_real_mnist_and_fashion_mnist(shared_data):
    for name in ("mnist", "fashion-mnist"):
        train, test = load_idx_pool(name, str(shared_data))
        assert train.x.shape == (60_000, 1, 28, 28) and test.x.shape == (10_000, 1, 28, 28)
        assert train.y.max().item() == 9 and train.x.min() >= 0.0 and train.x.max() <= 1.0
    assert torch.bincount(test.y).tolist() == [1000] * 10  # Fashion-MNIST test is balanced
