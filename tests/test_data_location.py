"""The one lookup of dataset files (kdgan.data.location) and the data.verify option wired into it."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from kdgan.config import DataConfig
from kdgan.data import load_splits
from kdgan.data.arff import mulan_dir
from kdgan.data.checksums import SHA256, sha256_file
from kdgan.data.cifar import load_cifar10_pool
from kdgan.data.idx import load_idx_pool
from kdgan.errors import ConfigError, DataError


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    array = np.asarray(array, dtype=np.uint8)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def idx_folder(folder: Path) -> Path:
    """A tiny, well-formed MNIST-style folder whose files are not the published ones."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    return folder


def test_verify_checks_the_published_checksums_of_the_files_the_reader_found(tmp_path):
    folder = idx_folder(tmp_path / "mnist")
    config = DataConfig(name="mnist", dir=str(tmp_path), n=20, val_size=10)
    assert len(load_splits(config, seed=0).train) == 20  # off by default: these files are not MNIST's
    expected = SHA256["mnist"]["train-images-idx3-ubyte.gz"]
    found = sha256_file(folder / "train-images-idx3-ubyte.gz")
    with pytest.raises(DataError, match=f"train-images-idx3-ubyte.gz .*has SHA-256 {found}, expected {expected}"):
        load_splits(DataConfig(name="mnist", dir=str(tmp_path), n=20, val_size=10, verify=True), seed=0)


def test_verify_is_refused_for_datasets_without_published_checksums():
    with pytest.raises(ConfigError, match="'digits' has no published checksums, so set data.verify=false"):
        load_splits(DataConfig(name="digits", verify=True), seed=0)


def test_the_data_directory_comes_from_data_dir_else_kdgan_data(tmp_path, monkeypatch):
    idx_folder(tmp_path / "given" / "fashion-mnist")
    monkeypatch.setenv("KDGAN_DATA", str(tmp_path / "env"))
    idx_folder(tmp_path / "env")  # the directory itself holds the files
    given, _ = load_idx_pool("fashion-mnist", str(tmp_path / "given"))
    from_env, _ = load_idx_pool("fashion-mnist", None)
    assert len(given) == len(from_env) == 120


def test_without_a_data_directory_the_error_names_both_ways_and_the_subfolders(monkeypatch):
    monkeypatch.delenv("KDGAN_DATA", raising=False)
    with pytest.raises(DataError, match=r"dataset 'mnist' needs its files .*--data-dir DIR .*KDGAN_DATA .*'mnist/'"):
        load_idx_pool("mnist", None)
    with pytest.raises(DataError, match=r"'yeast/' or 'multilabel/yeast/' subfolder"):
        mulan_dir("yeast", None)
    with pytest.raises(DataError, match=r"'cifar10/' subfolder"):
        load_cifar10_pool(None)


def test_a_data_directory_without_the_files_names_every_place_looked(tmp_path):
    (tmp_path / "yeast").mkdir()
    with pytest.raises(DataError) as info:
        mulan_dir("yeast", tmp_path)
    message = str(info.value)
    for place in (tmp_path / "yeast", tmp_path / "multilabel" / "yeast", tmp_path):
        assert str(place) in message
    assert "yeast-train.arff" in message and "--data-dir" in message


def test_verify_on_files_without_a_published_checksum_is_an_error_not_a_silent_skip(tmp_path):
    batches = tmp_path / "cifar10" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    (batches / "data_batch_1").write_bytes(b"")  # the pickle batches: only the JPEG zips have published hashes
    with pytest.raises(DataError, match=r"none of the cifar10 files .*set data.verify=false to read other files"):
        load_cifar10_pool(str(tmp_path), verify=True)
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"data.verify: .*cifar-10-python.tar.gz has no published checksum"):
        load_cifar10_pool(str(tmp_path / "cifar-10-python.tar.gz"), verify=True)
