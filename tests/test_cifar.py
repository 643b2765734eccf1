"""CIFAR-10 readers: pickle batches, the tarball and JPEG zips on tiny fakes, plus a light check of the
shared JPEG archives (member lists and a few decoded images, never all 60k)."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from kdgan.data import cifar
from kdgan.data.cifar import CLASSES, load_cifar10_pool
from kdgan.errors import DataError

torch.set_num_threads(1)

SHARED_CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
PER_BATCH = 3


def fake_rows(n: int, seed: int) -> np.ndarray:
    """Rows laid out as CIFAR stores them: R(1024) G(1024) B(1024), each plane row-major."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def write_batch(path: Path, rows: np.ndarray, labels: list[int], str_keys: bool = False) -> None:
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": rows, b"filenames": [b"x.png"] * len(rows)}
    if str_keys:
        batch = {k.decode(): v for k, v in batch.items()}
    with open(path, "wb") as handle:
        pickle.dump(batch, handle, protocol=2)


def make_pickle_dir(root: Path) -> tuple[Path, dict[str, tuple[np.ndarray, list[int]]]]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate((*cifar.TRAIN_BATCHES, cifar.TEST_BATCH)):
        rows = fake_rows(PER_BATCH, i)
        labels = [(i * PER_BATCH + j) % 10 for j in range(PER_BATCH)]
        write_batch(folder / name, rows, labels, str_keys=(i == 1))
        written[name] = (rows, labels)
    return folder, written


def test_pickle_reader_shapes_labels_and_channel_layout(tmp_path: Path) -> None:
    folder, written = make_pickle_dir(tmp_path)
    train, test = cifar.load_cifar10_pickles(folder)
    assert train.x.shape == (5 * PER_BATCH, 3, 32, 32) and test.x.shape == (PER_BATCH, 3, 32, 32)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64 and train.num_classes == 10
    expected_labels = [label for name in cifar.TRAIN_BATCHES for label in written[name][1]]
    assert train.y.tolist() == expected_labels  # batches 1..5 in order, rows in file order
    rows = written["data_batch_2"][0]
    image = train.x[PER_BATCH + 1]  # second row of the second batch
    for channel in range(3):
        for r, c in [(0, 0), (0, 31), (5, 7), (31, 0), (31, 31)]:
            byte = rows[1, channel * 1024 + r * 32 + c]
            assert image[channel, r, c].item() == pytest.approx(byte / 255.0)
    assert float(train.x.min()) >= 0.0 and float(train.x.max()) <= 1.0
    assert test.y.tolist() == written["test_batch"][1]


def test_pickle_folder_or_parent_and_pool_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, _ = make_pickle_dir(tmp_path / "data" / "cifar10")
    reference, _ = cifar.load_cifar10_pickles(folder)
    for where in (folder, folder.parent):
        train, _ = cifar.load_cifar10_pickles(where)
        assert torch.equal(train.x, reference.x)
    for where in (str(folder), str(folder.parent), str(tmp_path / "data")):  # folder, parent, cifar10/ subfolder
        train, test = load_cifar10_pool(where)
        assert torch.equal(train.x, reference.x) and len(test) == PER_BATCH
    monkeypatch.setenv("KDGAN_DATA", str(tmp_path / "data"))
    assert torch.equal(load_cifar10_pool(None)[0].y, reference.y)


def test_missing_batch_file_lists_expected_files(tmp_path: Path) -> None:
    folder, _ = make_pickle_dir(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3") as info:
        load_cifar10_pool(str(tmp_path))
    message = str(info.value)
    assert "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5, test_batch" in message
    assert "cifar-10-python.tar.gz" in message  # the fix: where to get the files


def test_truncated_and_malformed_batches(tmp_path: Path) -> None:
    folder, _ = make_pickle_dir(tmp_path)
    path = folder / "data_batch_2"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        cifar.load_cifar10_pickles(folder)
    write_batch(path, np.zeros((2, 3000), np.uint8), [0, 1])
    with pytest.raises(DataError, match=r"shape \(N, 3072\)"):
        cifar.load_cifar10_pickles(folder)
    write_batch(path, fake_rows(2, 0), [0, 10])
    with pytest.raises(DataError, match="labels must be 0..9"):
        cifar.load_cifar10_pickles(folder)
    write_batch(path, fake_rows(2, 0), [0])
    with pytest.raises(DataError, match="labels of shape"):
        cifar.load_cifar10_pickles(folder)


class _Exploit:
    def __reduce__(self) -> tuple:
        return (os.getcwd, ())


def test_pickle_reader_refuses_foreign_globals() -> None:
    with pytest.raises(DataError, match="refusing to load global"):
        cifar.parse_pickle_batch(io.BytesIO(pickle.dumps({b"data": _Exploit()}, protocol=2)), "evil")


def test_tarball_matches_folder(tmp_path: Path) -> None:
    folder, _ = make_pickle_dir(tmp_path / "src")
    tarball = tmp_path / "data" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")
    expected, expected_test = cifar.load_cifar10_pickles(folder)
    for train, test in (load_cifar10_pool(str(tarball.parent)), load_cifar10_pool(str(tarball))):
        assert torch.equal(train.x, expected.x) and torch.equal(test.y, expected_test.y)
    tarball.write_bytes(tarball.read_bytes()[:200])
    with pytest.raises(DataError, match="truncated or corrupt"):
        cifar.load_cifar10_tarball(tarball)


# ---- JPEG zips -------------------------------------------------------------------------------

COLOURS = [(255 * (i & 1), 255 * ((i >> 1) & 1), 100 + 15 * i) for i in range(10)]


def jpeg_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def make_zip(path: Path, split: str, folders: list[str] | None = None, per_class: int = 2) -> None:
    """Members written in reverse class order, folders capitalised: labels must still follow CLASSES."""
    folders = [c.capitalize() for c in CLASSES] if folders is None else folders
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{split}/", b"")
        for index in reversed(range(len(folders))):
            for j in range(per_class):
                archive.writestr(f"{split}/{folders[index]}/{j:04d}.jpg", jpeg_bytes(COLOURS[index % 10]))


def make_jpeg_dir(root: Path, per_class: int = 2) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    make_zip(root / "cifar10-jpg-train.zip", "train", per_class=per_class)
    make_zip(root / "cifar10-jpg-test.zip", "test", per_class=1)
    return root


def test_jpeg_reader_labels_values_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDGAN_CACHE", str(tmp_path / "cache"))
    data = make_jpeg_dir(tmp_path / "data" / "cifar10")
    train, test = load_cifar10_pool(str(tmp_path / "data"))
    assert train.x.shape == (20, 3, 32, 32) and test.x.shape == (10, 3, 32, 32)
    assert train.y.tolist() == [i for i in range(10) for _ in range(2)]
    assert test.y.tolist() == list(range(10))
    means = train.x.mean(dim=(2, 3)) * 255  # solid colours survive JPEG to within a few levels
    expected = torch.tensor([COLOURS[i] for i in train.y.tolist()], dtype=torch.float32)
    assert (means - expected).abs().max() < 4
    cached = sorted(p.name for p in (tmp_path / "cache" / "cifar10-jpg").iterdir())
    assert len(cached) == 4 and all(name.endswith(".npy") for name in cached)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(cifar, "read_jpeg_zip", no_decoding)
    again, _ = cifar.load_cifar10_jpeg(data)
    assert torch.equal(again.x, train.x) and torch.equal(again.y, train.y)


def test_jpeg_cache_invalidated_by_new_archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDGAN_CACHE", str(tmp_path / "cache"))
    data = make_jpeg_dir(tmp_path / "data", per_class=1)
    assert len(cifar.load_cifar10_jpeg(data)[0]) == 10
    make_zip(data / "cifar10-jpg-train.zip", "train", per_class=3)
    assert len(cifar.load_cifar10_jpeg(data)[0]) == 30


def test_jpeg_unwritable_cache_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("KDGAN_CACHE", str(tmp_path / "file" / "cache"))
    data = make_jpeg_dir(tmp_path / "data", per_class=1)
    with pytest.warns(UserWarning, match="KDGAN_CACHE"):
        train, _ = cifar.load_cifar10_jpeg(data)
    assert len(train) == 10


def test_jpeg_folder_names_are_verified(tmp_path: Path) -> None:
    path = tmp_path / "bad.zip"
    make_zip(path, "train", folders=[*CLASSES[:9], "lorry"])
    with pytest.raises(DataError, match="unknown: lorry; missing: truck"):
        cifar.zip_class_counts(path, "train")
    make_zip(path, "train", folders=list(CLASSES[:9]))
    with pytest.raises(DataError, match="missing: truck"):
        cifar.read_jpeg_zip(path, "train")


def test_jpeg_wrong_split_missing_and_corrupt_archives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KDGAN_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "test.zip"
    make_zip(path, "test", per_class=1)
    with pytest.raises(DataError, match=r"no 'train/<class>/\*\.jpg' members"):
        cifar.zip_class_counts(path, "train")
    data = make_jpeg_dir(tmp_path / "data", per_class=1)
    (data / "cifar10-jpg-test.zip").unlink()
    with pytest.raises(DataError, match="lacks cifar10-jpg-test.zip"):
        cifar.load_cifar10_jpeg(data)
    (data / "cifar10-jpg-test.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable zip archive"):
        cifar.load_cifar10_jpeg(data)


def test_pool_without_files_explains_layouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KDGAN_DATA", raising=False)
    with pytest.raises(DataError, match="--data-dir"):
        load_cifar10_pool(None)
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10_pool(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="cifar-10-batches-py.*cifar10-jpg-train.zip"):
        load_cifar10_pool(str(tmp_path))


@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="shared/data/cifar10 is not available")
def test_shared_jpeg_archives_light() -> None:
    """Class counts from the member lists, and one decoded image per class (not all 60k)."""
    for split, per_class in (("train", 5000), ("test", 1000)):
        path = SHARED_CIFAR / cifar.JPEG_ZIPS[split]
        assert cifar.zip_class_counts(path, split) == dict.fromkeys(CLASSES, per_class)
        with zipfile.ZipFile(path) as archive:
            members = cifar.list_jpeg_members(archive, split)
            first = [members[i * per_class] for i in range(10)]
            assert [label for _, label in first] == list(range(10))
            assert [name for name, _ in first] == [f"{split}/{c}/0000.jpg" for c in CLASSES]
            images = cifar.decode_jpeg_members(archive, [name for name, _ in first])
        assert images.shape == (10, 3, 32, 32) and images.dtype == np.uint8
        assert 20 < images.mean() < 235 and images.std() > 10
