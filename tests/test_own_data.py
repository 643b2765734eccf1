"""`kdgan train` on a user's own data: an image folder and NPY / NPZ / CSV feature arrays,
end to end through the CLI, plus the readers' checks of what they are given."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits

from kdgan.cli import main
from kdgan.config import DataConfig, load_config
from kdgan.data import load_splits
from kdgan.deploy.student_file import open_student
from kdgan.errors import ConfigError, DataError
from kdgan.models.two_view import TwoView
from kdgan.training.build import build_trainer

DIGITS = load_digits()
TINY = {
    "method": "kdgan",
    "student": {"model": {"name": "mlp", "hidden": [16]}, "pretrain_epochs": 2},
    "teacher": {"model": {"name": "mlp", "hidden": [32]}, "pretrain_epochs": 2},
    "discriminator": {"model": {"name": "mlp", "hidden": [16]}, "pretrain_epochs": 1},
    "train": {"epochs": 1, "progress": False},
}


def write_config(path: Path, data: dict, **sections) -> Path:
    path.write_text(yaml.safe_dump({**TINY, "data": data, **sections}))
    return path


def write_digit_folder(root: Path, classes=(0, 1, 2), per_class=20, start=0, rgb=False) -> dict[Path, np.ndarray]:
    """Digits as 8x8 PNGs in root/d<class>/; returns each file's pixel values (0..240)."""
    pixels = {}
    for digit in classes:
        folder = root / f"d{digit}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in np.flatnonzero(DIGITS.target == digit)[start : start + per_class]:
            image = (DIGITS.images[i] * 15).astype(np.uint8)
            path = folder / f"{i}.png"
            (Image.fromarray(np.stack([image] * 3, -1), "RGB") if rgb else Image.fromarray(image, "L")).save(path)
            pixels[path] = image
    return pixels


# --------------------------------------------------------------------------- image folder
def test_train_on_an_image_folder_end_to_end(tmp_path, capsys):
    pixels = write_digit_folder(tmp_path / "images", per_class=25)
    config = write_config(tmp_path / "c.yaml", {"name": "folder", "dir": str(tmp_path / "images"), "n": 30,
                                                "val_size": 15, "batch_size": 10})  # test_fraction 0.2
    out = tmp_path / "run"
    assert main(["train", str(config), "--out", str(out)]) == 0
    final = json.loads((out / "final.json").read_text())
    student = open_student(out)
    assert student.label_names == ["d0", "d1", "d2"] and tuple(student.in_shape) == (1, 8, 8)
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0  # the held-out test set is the same when read again
    assert json.loads(capsys.readouterr().out)["test"]["accuracy"] == pytest.approx(final["test"]["accuracy"])
    assert main(["predict", str(out), str(tmp_path / "images" / "d1"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["predictions"]
    assert len(rows) == 25 and all(row["top_k"][0]["name"] in student.label_names for row in rows)
    # predict reads an image as training did: its prediction is the trained network's on pixels / 255
    files = sorted(p for p in pixels if p.parent.name == "d1")
    x = torch.from_numpy(np.stack([pixels[p] for p in files])[:, None] / np.float32(255))
    with torch.no_grad():
        expected = torch.softmax(student.module(x), dim=1).max(1)
    assert [row["prediction"] for row in rows] == expected.indices.tolist()
    assert [row["score"] for row in rows] == pytest.approx(expected.values.tolist(), abs=1e-6)


def test_image_folder_holds_out_a_stratified_fixed_test_fraction_and_scales_pixels(tmp_path):
    pixels = write_digit_folder(tmp_path, per_class=20)
    config = DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=6, test_fraction=0.25)
    splits = load_splits(config, seed=0)
    assert splits.label_names == ["d0", "d1", "d2"]
    assert splits.test.y.bincount().tolist() == [5, 5, 5]  # 25 % of each class's 20
    assert len(splits.train) + len(splits.val) == 45
    assert splits.train.x.shape[1:] == (1, 8, 8) and splits.train.x.dtype == torch.float32
    everything = {tuple(x.flatten().tolist()) for part in (splits.train, splits.val, splits.test) for x in part.x}
    assert everything == {tuple((p / np.float32(255)).flatten().tolist()) for p in pixels.values()}
    default = load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=6), seed=0)
    assert default.test.y.bincount().tolist() == [4, 4, 4]  # test_fraction null: 0.2
    other_seed = load_splits(config, seed=1)
    assert torch.equal(other_seed.test.x, splits.test.x)  # the test set does not move with the seed


def test_image_folder_with_train_and_test_subfolders_rgb_and_resizing(tmp_path):
    write_digit_folder(tmp_path / "train", per_class=10, rgb=True)
    write_digit_folder(tmp_path / "test", classes=(0, 2), per_class=4, start=10, rgb=True)
    splits = load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=3), seed=0)
    assert len(splits.test) == 8 and splits.test.y.tolist() == [0] * 4 + [2] * 4
    assert splits.train.x.shape[1:] == (3, 8, 8) and splits.label_names == ["d0", "d1", "d2"]
    gray = load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=3, channels=1), seed=0)
    with pytest.raises(DataError, match="data.test_fraction has nothing to hold out"):
        load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=3, test_fraction=0.5), seed=0)
    assert gray.test.x.shape[1:] == (1, 8, 8)
    Image.new("RGB", (12, 10)).save(tmp_path / "train" / "d1" / "big.png")
    with pytest.raises(DataError, match=r"differ in size.*data.image_size"):
        load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=3), seed=0)
    resized = load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=3, image_size=[6, 5]), 0)
    assert resized.train.x.shape[1:] == (3, 6, 5) and resized.test.x.shape[1:] == (3, 6, 5)


FOLDER_ERRORS = [
    ("no class folders", lambda root: (root / "a.png").write_bytes(b""), "no class subfolders"),
    ("empty class", lambda root: (write_digit_folder(root, per_class=3), (root / "empty").mkdir()),
     "holds no images"),
    ("unknown test class", lambda root: (write_digit_folder(root / "train", per_class=3),
                                         write_digit_folder(root / "test", classes=(7,), per_class=2)),
     "class folders d7 that"),
    ("not an image", lambda root: (write_digit_folder(root, per_class=3),
                                   (root / "d0" / "bad.png").write_bytes(b"not a png")),
     "could not be read as an image"),
    ("too few to hold out", lambda root: write_digit_folder(root, per_class=1), "too few to hold out"),
    ("train next to a val folder", lambda root: (write_digit_folder(root / "train", per_class=3),
                                                 write_digit_folder(root / "val", per_class=3)),
     r"mixes train/ or test/ with other folders \(val\)"),
]


@pytest.mark.parametrize(("make", "message"), [row[1:] for row in FOLDER_ERRORS], ids=[r[0] for r in FOLDER_ERRORS])
def test_image_folder_errors_name_the_problem(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(DataError, match=message):
        load_splits(DataConfig(name="folder", dir=str(tmp_path), n=None, val_size=1), seed=0)


# --------------------------------------------------------------------------- feature arrays
def test_train_on_npy_arrays_with_a_privileged_view_the_teacher_uses(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(400) % 4
    x = rng.normal(size=(400, 6)).astype(np.float32)          # noise: the student cannot learn
    privileged = np.eye(4, dtype=np.float32)[y] + 0.1 * rng.normal(size=(400, 4)).astype(np.float32)
    for name, rows in (("train", slice(0, 300)), ("test", slice(300, None))):
        np.save(tmp_path / f"{name}_x.npy", x[rows])
        np.save(tmp_path / f"{name}_y.npy", y[rows])
        np.save(tmp_path / f"{name}_p.npy", privileged[rows])
    data = {"name": "arrays", "dir": str(tmp_path), "n": None, "val_size": 40, "batch_size": 20,
            "train": {"x": "train_x.npy", "y": "train_y.npy", "privileged": "train_p.npy"},
            "test": {"x": "test_x.npy", "y": "test_y.npy", "privileged": "test_p.npy"}}
    config_path = write_config(tmp_path / "c.yaml", data)
    assert main(["train", str(config_path), "--out", str(tmp_path / "run")]) == 0
    assert tuple(open_student(tmp_path / "run").in_shape) == (6,)

    config = load_config(config_path, ["teacher.pretrain_epochs=40", "train.epochs=0"])
    trainer = build_trainer(config)
    assert torch.equal(trainer.splits.test.privileged, torch.from_numpy(privileged[300:]))
    assert isinstance(trainer.method.players["teacher"].module, TwoView)
    trainer.fit()
    assert trainer.evaluate("teacher", "test")["accuracy"] > 0.9   # it reads the privileged view
    assert trainer.evaluate("student", "test")["accuracy"] < 0.5


def test_train_on_csv_files_with_a_multi_hot_label_matrix(tmp_path, capsys):
    x = DIGITS.data[:240] / 16
    y = np.stack([DIGITS.target[:240] % 2 == 0, DIGITS.target[:240] < 5, DIGITS.target[:240] == 9], 1)
    y[~y.any(1), 2] = True  # every row needs a label
    header = ",".join(f"f{i}" for i in range(64))
    np.savetxt(tmp_path / "x.csv", x, delimiter=",", header=header, comments="")
    np.savetxt(tmp_path / "y.csv", y.astype(int), delimiter=",", fmt="%d", header="even,small,nine", comments="")
    data = {"name": "arrays", "dir": str(tmp_path), "n": None, "val_size": 30, "batch_size": 20,
            "train": {"x": "x.csv", "y": "y.csv"}, "test_fraction": 0.25}
    out = tmp_path / "run"
    assert main(["train", str(write_config(tmp_path / "c.yaml", data)), "--out", str(out)]) == 0
    final = json.loads((out / "final.json").read_text())
    assert "map" in final["test"]  # scored as multi-label
    assert open_student(out).label_names == ["even", "small", "nine"]
    splits = load_splits(load_config(tmp_path / "c.yaml").data, seed=0)
    assert len(splits.test) == 60 and splits.test.y.dtype == torch.float32
    rows = {tuple(r) for r in splits.test.x.numpy().round(5)}
    assert rows <= {tuple(r) for r in x.astype(np.float32).round(5)}


def test_npz_archive_scales_uint8_features_and_reads_label_names(tmp_path):
    x = (DIGITS.data[:100] * 15).astype(np.uint8)
    np.savez(tmp_path / "train.npz", x=x, y=DIGITS.target[:100], label_names=np.array([str(d) for d in range(10)]))
    np.savez(tmp_path / "test.npz", x=x[:20], y=DIGITS.target[:20])
    splits = load_splits(DataConfig(name="arrays", dir=str(tmp_path), train="train.npz", test="test.npz",
                                    n=None, val_size=10), seed=0)
    assert splits.label_names == [str(d) for d in range(10)]
    assert torch.allclose(splits.test.x, torch.from_numpy(x[:20] / np.float32(255)))
    assert splits.test.y.tolist() == DIGITS.target[:20].tolist()


def save_object_array(path: Path) -> None:
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)


def good_arrays(root: Path, **override) -> dict:
    """x/y/privileged .npy files for 30 rows, with ``override`` replacing any array."""
    arrays = {"x": np.zeros((30, 4), np.float32), "y": np.arange(30) % 3, "privileged": np.ones((30, 2))} | override
    spec = {}
    for key, value in arrays.items():
        if isinstance(value, str):
            (root / f"{key}.csv").write_text(value)
            spec[key] = f"{key}.csv"
        elif callable(value):
            value(root / f"{key}.npy")
            spec[key] = f"{key}.npy"
        else:
            np.save(root / f"{key}.npy", value)
            spec[key] = f"{key}.npy"
    return spec


ARRAY_ERRORS = [  # (case, overrides of good_arrays, expected message fragment)
    ("object array", {"x": save_object_array}, "Object arrays cannot be loaded"),
    ("text labels", {"y": np.array(["a"] * 30)}, "holds <U1 values"),
    ("row mismatch", {"y": np.arange(29) % 3}, r"has 29 rows but .*x.npy has 30"),
    ("privileged rows", {"privileged": np.ones((31, 2))}, "has 31 rows"),
    ("fractional labels", {"y": np.full(30, 0.5)}, "whole numbers 0..K-1"),
    ("negative labels", {"y": -np.ones(30, int)}, "whole numbers 0..K-1"),
    ("multi-hot not 0/1", {"y": np.full((30, 3), 2.0)}, "holds only 0 and 1"),
    ("multi-hot empty row", {"y": np.vstack([np.zeros((1, 3)), np.ones((29, 3))])}, "1 rows have no label"),
    ("NaN features", {"x": np.vstack([np.ones((2, 4)), [[np.nan] * 4], np.ones((27, 4))])}, r"row 2 .*NaN"),
    ("1-d features", {"x": np.zeros(30)}, "one row per example"),
    ("ragged csv", {"x": "1,2\n3\n"}, "different numbers of columns"),
    ("words in csv", {"x": "a,b\n1,2\nx,3\n"}, "row 3"),
    ("empty csv", {"x": "a,b\n"}, "no data rows"),
]


@pytest.mark.parametrize(("override", "message"), [r[1:] for r in ARRAY_ERRORS], ids=[r[0] for r in ARRAY_ERRORS])
def test_array_errors_name_the_file_and_the_problem(tmp_path, override, message):
    spec = good_arrays(tmp_path, **override)
    with pytest.raises(DataError, match=message):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train=spec, n=None, val_size=3), seed=0)


SPLIT_ERRORS = [  # (case, test-split overrides, message)
    ("feature width", {"x": np.zeros((9, 5))}, r"shape \(5,\) per row"),
    ("no privileged", {"privileged": None}, "comes with privileged features but"),
    ("label kind", {"y": np.ones((9, 3))}, "class indices but the test labels are 3 multi-hot"),
]


@pytest.mark.parametrize(("override", "message"), [r[1:] for r in SPLIT_ERRORS], ids=[r[0] for r in SPLIT_ERRORS])
def test_test_split_must_match_the_training_split(tmp_path, override, message):
    train = good_arrays(tmp_path)
    (tmp_path / "test").mkdir()
    arrays = {"x": np.zeros((9, 4)), "y": np.arange(9) % 3, "privileged": np.ones((9, 2))} | override
    test = {k: f"test/{k}.npy" for k, v in arrays.items() if v is not None}
    for key in test:
        np.save(tmp_path / test[key], arrays[key])
    with pytest.raises(DataError, match=message):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train=train, test=test, n=None, val_size=3), 0)


def test_label_names_must_match_the_number_of_labels(tmp_path):
    np.savez(tmp_path / "classes.npz", x=np.zeros((6, 2)), y=np.arange(6) % 3, label_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="class label 2 needs 3 label names, but 2 are given"):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train="classes.npz", n=None, val_size=1), 0)
    np.savez(tmp_path / "tags.npz", x=np.zeros((6, 2)), y=np.ones((6, 3)), label_names=np.array(["a", "b"]))
    with pytest.raises(DataError, match="2 label names for 3 label columns"):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train="tags.npz", n=None, val_size=1), 0)


def test_npz_with_unexpected_arrays_or_a_missing_file_is_refused(tmp_path):
    np.savez(tmp_path / "guess.npz", features=np.zeros((5, 2)), labels=np.zeros(5))
    with pytest.raises(DataError, match=r"holds arrays \['features', 'labels'\]; an .npz needs x"):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train="guess.npz", n=None, val_size=1), 0)
    with pytest.raises(DataError, match="nope.npz does not exist"):
        load_splits(DataConfig(name="arrays", dir=str(tmp_path), train="nope.npz", n=None, val_size=1), 0)


def test_cli_reports_a_data_error_without_a_traceback(tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", {"name": "arrays", "dir": str(tmp_path), "train": "missing.npz"})
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "missing.npz does not exist" in err and "Traceback" not in err


CONFIG_ERRORS = [
    ({"name": "digits", "train": "a.npz"}, "read by data.name: arrays only"),
    ({"name": "arrays", "image_size": [8, 8], "train": "a.npz"}, "read by data.name: folder only"),
    ({"name": "arrays"}, "needs data.train"),
    ({"name": "arrays", "train": "a.npy"}, "must be an .npz archive"),
    ({"name": "arrays", "train": {"x": "a.npy", "labels": "b.npy"}}, "must map x"),
    ({"name": "arrays", "train": {"x": "a.npy", "y": 3}}, "every entry must be a file path"),
    ({"name": "folder", "test_fraction": 1.0}, "strictly between 0 and 1"),
    ({"name": "digits", "test_fraction": 0.3}, "read by data.name folder, arrays and yfcc only"),
    ({"name": "arrays", "train": "a.npz", "test": "b.npz", "test_fraction": 0.3}, "when there is no data.test"),
    ({"name": "folder", "image_size": [8]}, r"\[height, width\]"),
    ({"name": "folder", "channels": 2}, "must be 1"),
]


@pytest.mark.parametrize(("data", "message"), CONFIG_ERRORS)
def test_own_data_config_keys_are_checked_when_read(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write_config(tmp_path / "c.yaml", data))


def test_shipped_own_arrays_config_runs_on_files_given_by_data_dir(tmp_path):
    x, y = DIGITS.data / 16, DIGITS.target
    privileged = np.eye(10)[y]
    np.savez(tmp_path / "train.npz", x=x[:300], y=y[:300], privileged=privileged[:300])
    np.savez(tmp_path / "test.npz", x=x[300:400], y=y[300:400], privileged=privileged[300:400])
    tiny = ["train.epochs=1", "train.progress=false", "data.val_size=50", "student.pretrain_epochs=1",
            "teacher.pretrain_epochs=1", "discriminator.pretrain_epochs=1"]
    args = ["train", "own_arrays_kdgan", "--data-dir", str(tmp_path), "--out", str(tmp_path / "run")]
    assert main([*args, *(arg for item in tiny for arg in ("--set", item))]) == 0
    splits = load_splits(load_config(tmp_path / "run" / "config.yaml").data, seed=0)
    assert len(splits.test) == 100 and splits.train.privileged.shape[1] == 10

# --------------------------------------------------------------------------- YFCC-style folder
YFCC_GUESSES = [  # (case, tags.txt lines, message)
    ("JSON lists", ['["sunset", "sea"]', '["cat"]'], """line 1: tag '["sunset"' holds '['"""),
    ("semicolons", ["sunset;sea", "cat"], "line 1: tag 'sunset;sea' holds ';'"),
    ("pipes", ["sunset", "cat|dog"], "line 2: tag 'cat|dog' holds '|'"),
]


@pytest.mark.parametrize(("tags", "message"), [r[1:] for r in YFCC_GUESSES], ids=[r[0] for r in YFCC_GUESSES])
def test_yfcc_folder_refuses_a_guessed_tag_format(tmp_path, tags, message):
    from tests.test_yfcc import TAGS, make_folder

    folder = make_folder(tmp_path, tags=tags + TAGS[len(tags):])
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_splits(DataConfig(name="yfcc", dir=str(folder), n=None, val_size=1), seed=0)
    assert "separated by spaces and/or commas" in str(caught.value)


def test_yfcc_folder_without_split_file_holds_out_data_test_fraction(tmp_path):
    from kdgan.data.yfcc import read_yfcc
    from tests.test_yfcc import make_folder

    folder = make_folder(tmp_path, split=None)
    sizes = {}
    for fraction in (None, 0.5):
        config = DataConfig(name="yfcc", dir=str(folder), n=None, val_size=1, test_fraction=fraction)
        sizes[fraction] = len(load_splits(config, seed=0).test)
    assert sizes[None] == len(read_yfcc(folder, test_fraction=0.2).test)
    assert sizes[0.5] == len(read_yfcc(folder, test_fraction=0.5).test) > sizes[None]


def test_yfcc_folder_refuses_an_npz_or_pickled_features_file(tmp_path):
    from tests.test_yfcc import make_folder

    folder = make_folder(tmp_path)
    with open(folder / "features.npy", "wb") as handle:
        np.savez(handle, x=np.zeros((9, 3)))
    with pytest.raises(DataError, match="is an .npz archive, not a .npy array"):
        load_splits(DataConfig(name="yfcc", dir=str(folder), n=None, val_size=1), seed=0)
    save_object_array(folder / "features.npy")
    with pytest.raises(DataError, match="Object arrays cannot be loaded"):
        load_splits(DataConfig(name="yfcc", dir=str(folder), n=None, val_size=1), seed=0)
