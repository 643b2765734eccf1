"""Bad inputs: each must end in a KDGANError (exit code 2 and ``kdgan: error: ...`` on the command
line) whose message names the problem and the fix, never in a traceback, or in a correct result.

Most cases are rows of tables (``OUT_OF_RANGE``, ``CONFIG_FILES``, ``DATA_FILES``, ``BAD_SPLITS``,
``BAD_CHECKPOINTS``, ``COMMAND_ARGUMENTS``, ``DIVERGENCES``): one row per input with the expected
message fragment beside it, so that a new case is one more row. docs/RELIABILITY.md lists them.
"""

from __future__ import annotations

import gzip
import json
import math
import pickle
import re
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from kdgan.cli import main
from kdgan.config import DataConfig, OptimizerConfig, TrainConfig, load_config
from kdgan.data import Splits, TensorData, load_splits
from kdgan.data.arff import read_arff
from kdgan.data.checksums import SHA256, sha256_file, verify_file, verify_folder
from kdgan.data.cifar import load_cifar10_pool
from kdgan.data.idx import load_idx_pool
from kdgan.errors import ConfigError, DataError, DivergenceError, KDGANError
from kdgan.methods import Method, get_method
from kdgan.models import MLP
from kdgan.training.build import build_trainer
from kdgan.training.engine import LOSS_WARNING, Trainer
from kdgan.training.players import Player
from kdgan.training.runs import find_config

# a run that trains one game epoch and nothing else: the fastest full run of digits_kdgan
FAST = [
    "train.progress=false", "train.epochs=1", "student.pretrain_epochs=0", "teacher.pretrain_epochs=0",
    "discriminator.pretrain_epochs=0", "data.val_size=100",
]


def train_args(out: Path, *sets: str, config: str = "digits_kdgan", resume: bool = False) -> list[str]:
    args = ["train", config, "--out", str(out)]
    for item in (*FAST, *sets):
        args += ["--set", item]
    return [*args, "--resume"] if resume else args


def cli_error(capsys, args: list[str]) -> str:
    """Run the CLI, expect exit code 2, return the one-line error (without the prefix)."""
    capsys.readouterr()
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, f"exit code {code}; stderr: {err}"
    assert err.startswith("kdgan: error: "), err
    assert "Traceback" not in err
    return err[len("kdgan: error: "):]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A finished one-epoch run, copied by the tests that damage a run directory."""
    out = tmp_path_factory.mktemp("bad") / "run"
    assert main(train_args(out)) == 0
    return out


def copy_run(finished_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    return run


# =============================================================== config


@pytest.mark.parametrize(
    ("setting", "key", "valid"),
    [
        ("foo=1", "'foo'", "valid keys here: method, seed, device"),
        ("train.epoch=3", "'train.epoch'", "epochs, eval_test_each_epoch"),
        ("student.optimizer.learning_rate=0.1", "'student.optimizer.learning_rate'", "name, lr, weight_decay"),
        ("options.alpah=0.3", "'options.alpah'", "alpha, beta, gamma"),
    ],
    ids=["depth1", "depth2", "depth3", "method-option"],
)
def test_unknown_key_at_any_depth_names_it_and_the_valid_keys(capsys, tmp_path, setting, key, valid):
    err = cli_error(capsys, train_args(tmp_path / "x", setting))
    assert f"unknown config key {key}" in err and valid in err
    assert not (tmp_path / "x").exists()


def test_unknown_key_in_a_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("method: kdgan\ndata: {name: digits, nn: 5}\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'data.nn'; valid keys here: name, dir, n, "):
        load_config(path)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.epochs=abc", "train.epochs must be an integer, got 'abc'"),
        ("seed=1.5", "seed must be an integer, got 1.5"),
        ("train.progress=maybe", "train.progress must be true or false, got 'maybe'"),
        ("privileged=teacher", "privileged must be a list, got 'teacher'"),
        ("data=3", "data must be a mapping of keys to values, got 3"),
    ],
    ids=["int", "int-not-float", "bool", "list", "section"],
)
def test_wrong_types_name_the_key_the_type_and_the_value(capsys, tmp_path, setting, message):
    err = cli_error(capsys, train_args(tmp_path / "x", setting))
    assert message in err


# One row per bad value: the --set, the message fragment the CLI must print. Each is refused when the
# config is read, before data, networks or the run directory exist.
OUT_OF_RANGE = [
    pytest.param("options.alpha=1.5", "options.alpha must be in [0, 1], got 1.5", id="alpha>1"),
    pytest.param("options.alpha=-0.1", "options.alpha must be in [0, 1], got -0.1", id="alpha<0"),
    pytest.param("options.tau_start=0", "options.tau_start and tau_end must be > 0, got 0.0", id="tau_start=0"),
    pytest.param("options.tau_end=-1", "options.tau_start and tau_end must be > 0, got 1.0, -1.0", id="tau_end<0"),
    pytest.param("student.optimizer.lr=-0.1", "student.optimizer: optimizer.lr must be > 0, got -0.1", id="lr<0"),
    pytest.param("teacher.optimizer.lr=0", "teacher.optimizer: optimizer.lr must be > 0, got 0.0", id="lr=0"),
    pytest.param("data.n=0", "data.n must be a positive number of labelled examples, got 0", id="n=0"),
    pytest.param("train.on_nonfinite=ignore", "train.on_nonfinite must be 'stop' or 'skip', got 'ignore'",
                 id="on_nonfinite"),
    pytest.param("privileged=[student]", "privileged may list teacher and discriminator only, got ['student']",
                 id="privileged"),
    # non-finite numbers: refused where they are read, by key (config._convert, for every float field)
    pytest.param("student.optimizer.lr=.nan", "student.optimizer.lr must be a finite number, got nan", id="lr-nan"),
    pytest.param("student.optimizer.lr=nan", "student.optimizer.lr must be a finite number, got 'nan'",
                 id="lr-nan-string"),
    pytest.param("options.tau_start=.inf", "options.tau_start must be a finite number, got inf", id="tau_start-inf"),
    pytest.param("options.beta=.inf", "options.beta must be a finite number, got inf", id="beta-inf"),
    pytest.param("options.gamma=.nan", "options.gamma must be a finite number, got nan", id="gamma-nan"),
    pytest.param("train.grad_clip=.inf", "train.grad_clip must be a finite number, got inf", id="grad_clip-inf"),
    pytest.param("student.optimizer.momentum=.nan", "student.optimizer.momentum must be a finite number, got nan",
                 id="momentum-nan"),
    pytest.param("teacher.optimizer.game_lr=-.inf", "teacher.optimizer.game_lr must be a finite number, got -inf",
                 id="game_lr-inf"),
    pytest.param("options.alpha=1" + "0" * 400, "options.alpha must be a finite number, got 1000", id="alpha-huge-int"),
    pytest.param("student.model.dropout=.nan", "student: model.dropout must hold finite numbers, got nan",
                 id="model-option-nan"),
    # ranges the optimizer or the seeding would only refuse with a traceback
    pytest.param("student.optimizer.weight_decay=-5", "optimizer.weight_decay must be >= 0, got -5.0",
                 id="weight_decay<0"),
    pytest.param("student.optimizer.momentum=-1", "optimizer.momentum must be in [0, 1), got -1.0", id="momentum<0"),
    pytest.param("student.optimizer.momentum=1", "optimizer.momentum must be in [0, 1), got 1.0", id="momentum=1"),
    pytest.param("seed=-1", "seed must be in [0, 4294967295], got -1", id="seed<0"),
    pytest.param("seed=100000000000000000000", "seed must be in [0, 4294967295], got 100000000000000000000",
                 id="seed-1e20"),
    pytest.param("data.subset_seed=-3", "data.subset_seed must be in [0, 4294967295] or null, got -3",
                 id="subset_seed<0"),
    pytest.param("data.val_size=0", "data.val_size must be >= 1: the validation split selects the epoch", id="val=0"),
    # a dataset no reader knows: refused when the config is read, with the known names
    pytest.param("data.name=digit", "data.name 'digit' is not a known dataset; known: digits, mnist, fashion-mnist",
                 id="dataset-name"),
]


# The same sections built in Python (past the YAML reader): NaN and inf are refused there too.
CONFIG_OBJECTS = [
    pytest.param(lambda: OptimizerConfig(lr=float("nan")), "optimizer.lr must be a finite number, got nan",
                 id="optimizer-lr-nan"),
    pytest.param(lambda: OptimizerConfig(name="sgd", momentum=float("nan")),
                 "optimizer.momentum must be a finite number, got nan", id="optimizer-momentum-nan"),
    pytest.param(lambda: TrainConfig(grad_clip=float("inf")), "train.grad_clip must be a finite number, got inf",
                 id="train-grad_clip-inf"),
]


@pytest.mark.parametrize(("build", "message"), CONFIG_OBJECTS)
def test_config_sections_built_in_python_refuse_non_finite_numbers(build, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build()


@pytest.mark.parametrize(("setting", "message"), OUT_OF_RANGE)
def test_out_of_range_values_name_the_range(capsys, tmp_path, setting, message):
    err = cli_error(capsys, train_args(tmp_path / "x", setting))
    assert message in err
    assert not (tmp_path / "x").exists()


def test_a_learning_rate_written_1e_minus_3_is_understood(tmp_path):
    try:
        config = load_config(find_config("digits_kdgan"), ["student.optimizer.lr=1e-3"])
    except ConfigError as err:
        assert "1.0e-3" in str(err)
    else:
        assert config.student.optimizer.lr == 1e-3


def test_unknown_method_lists_the_known_ones(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "method=kdgna"))
    assert "unknown method 'kdgna'; known methods:" in err and "kdgan" in err and "supervised" in err


def test_options_of_another_method_are_refused(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "method=supervised", "options.alpha=0.5"))
    assert "unknown config key 'options.alpha'" in err and "valid keys here: player" in err


def test_unknown_model_lists_the_known_ones(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "student.model.name=cnn"))
    assert "unknown model 'cnn'; known models: mlp, lenet, resnet" in err


def test_unknown_model_option_lists_the_valid_ones(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "student.model.hiden=[32]"))
    assert "unknown option 'hiden' for model 'mlp'; valid options: hidden, dropout" in err


def test_model_option_of_the_wrong_type(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "student.model.hidden=abc"))
    assert "student.model" in err and "hidden" in err


def test_model_option_out_of_range(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "student.model.hidden=[-3]"))
    assert "student.model" in err and "hidden" in err


def test_bad_device_names_the_valid_ones(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "device=gpu"))
    assert "device must be cpu, cuda, cuda:N or auto; got 'gpu'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_device_without_cuda(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "device=cuda"))
    assert "CUDA is not available; use device=cpu" in err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("pair", ["options.alpha", "=0.5"], ids=["no-equals", "no-key"])
def test_set_without_key_equals_value(capsys, tmp_path, pair):
    err = cli_error(capsys, ["train", "digits_kdgan", "--out", str(tmp_path / "x"), "--set", pair])
    assert f"--set expects key=value (e.g. options.alpha=0.5), got {pair!r}" in err


def test_set_of_a_value_and_a_section(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "data=3", "data.n=5"))
    assert "--set data.n: data is set both as a value and as a section" in err


def test_set_value_that_is_not_valid_yaml(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "train.epochs=[1"))
    assert "--set train.epochs" in err and "YAML" in err


# One row per damaged config file: its bytes, and the message fragments (after "config file PATH").
CONFIG_FILES = [
    pytest.param(b"method: kdgan\ndata: {name: digits\n", [" is not valid YAML", "line 2"], id="syntax"),
    pytest.param(bytes(range(256)) * 4, [" is not UTF-8 text", "pass a YAML config file"], id="binary"),
    pytest.param(b"method: kdgan\x00\n", [" is not valid YAML", "unacceptable character"], id="nul-byte"),
    pytest.param(b"method: kdgan\nseed: 1\nmethod: distn\n",
                 [": key 'method' appears twice in one mapping, on line 1 and line 3; keep one of them"],
                 id="duplicate-top-level"),
    pytest.param(b"method: kdgan\nstudent:\n  optimizer:\n    lr: 0.1\n    lr: 0.001\n",
                 [": key 'lr' appears twice in one mapping, on line 4 and line 5"], id="duplicate-nested"),
    pytest.param(b"method: kdgan\ndata: {name: digits, n: 5, n: 50}\n", [": key 'n' appears twice", "line 2"],
                 id="duplicate-flow"),
    pytest.param(b"- method\n- kdgan\n", [" must hold a mapping at its top level"], id="list"),
]


@pytest.mark.parametrize(("content", "fragments"), CONFIG_FILES)
def test_damaged_config_files_are_refused_naming_the_file(capsys, tmp_path, content, fragments):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    err = cli_error(capsys, ["train", str(path), "--out", str(tmp_path / "x")])
    assert err.startswith(f"config file {path}")
    for fragment in fragments:
        assert fragment in err
    assert not (tmp_path / "x").exists()


def test_yaml_merge_keys_still_override_without_a_duplicate_error(tmp_path):
    path = tmp_path / "merge.yaml"
    path.write_text("student:\n  optimizer:\n    <<: {lr: 0.1, name: sgd}\n    lr: 0.01\n")
    optimizer = load_config(path).student.optimizer
    assert (optimizer.lr, optimizer.name) == (0.01, "sgd")


def test_duplicate_key_in_a_set_value(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "student.optimizer={lr: 0.1, lr: 0.2}"))
    assert "--set student.optimizer: key 'lr' appears twice in one mapping" in err


def test_the_known_dataset_names_are_one_list_a_reader_can_extend(monkeypatch):
    from kdgan.data import DATASETS

    with pytest.raises(ConfigError, match="data.name 'mine' is not a known dataset; known: digits"):
        load_config(None, ["data.name=mine"])
    monkeypatch.setitem(DATASETS, "mine", ("a user's reader", lambda config: None))
    assert load_config(None, ["data.name=mine"]).data.name == "mine"


def test_config_that_does_not_exist(capsys, tmp_path):
    err = cli_error(capsys, ["train", "digits_kdgn", "--out", str(tmp_path / "x")])
    assert "config 'digits_kdgn' is neither a file nor a built-in config; built-in: " in err and "digits_kdgan" in err


def test_unknown_selection_metric(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "train.select_metric=f1"))
    assert "select_metric" in err and "accuracy" in err


@pytest.mark.parametrize(
    "setting",
    ["student.model.name=cnn", "student.model.hiden=[32]", "data.n=5000", "student.init=/nonexistent/w.pt"],
    ids=["model", "model-option", "n", "init"],
)
def test_errors_found_while_building_leave_no_run_directory(capsys, tmp_path, setting):
    cli_error(capsys, train_args(tmp_path / "x", setting))
    assert not (tmp_path / "x").exists()


# =============================================================== data


def write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    """A tiny, well-formed MNIST-style folder (gzipped IDX files)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10, 2049)
    load_idx_pool("mnist", str(folder))  # well-formed
    return folder


def test_missing_data_directory_via_the_cli(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "data.name=mnist", "student.model.name=mlp",
                                       "teacher.model.name=mlp") + ["--data-dir", str(tmp_path / "nowhere")])
    assert f"data directory {tmp_path / 'nowhere'} does not exist" in err


def test_missing_data_directory_names_the_fix(tmp_path):
    with pytest.raises(DataError, match="--data-dir"):
        load_idx_pool("mnist", str(tmp_path / "nowhere"))


def test_missing_idx_file_lists_the_four_files_and_how_to_pass_them(idx_dir):
    (idx_dir / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as info:
        load_idx_pool("mnist", str(idx_dir))
    message = str(info.value)
    assert f"t10k-labels-idx1-ubyte[.gz] not found in {idx_dir}" in message
    assert "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz]" in message and "--data-dir" in message


def test_wrong_idx_magic_names_the_file(idx_dir):
    images = idx_dir / "t10k-images-idx3-ubyte.gz"
    shutil.copy(idx_dir / "t10k-labels-idx1-ubyte.gz", images)
    with pytest.raises(DataError, match=rf"{images} has IDX magic 2049, expected 2051; is it the right file\?"):
        load_idx_pool("mnist", str(idx_dir))


@pytest.mark.parametrize("damage", ["truncated", "not-gzip"])
def test_truncated_or_corrupt_gzip_names_the_file(idx_dir, damage):
    path = idx_dir / "train-images-idx3-ubyte.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncated" else bytes(range(256)) * 8)
    with pytest.raises(DataError, match=rf"{path} could not be read .*the file is corrupt or truncated"):
        load_idx_pool("mnist", str(idx_dir))


def test_truncated_gzip_names_the_fix(idx_dir):
    path = idx_dir / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="(?i)download"):
        load_idx_pool("mnist", str(idx_dir))


def test_idx_label_out_of_range_is_refused(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 12, 3, 4, 5, 6, 7, 8]), 2049)
    with pytest.raises(DataError, match=rf"{idx_dir}: test labels must be 0..9, found 12"):
        load_idx_pool("mnist", str(idx_dir))


def test_idx_label_out_of_range_names_the_file(idx_dir):
    write_idx(idx_dir / "t10k-labels-idx1-ubyte.gz", np.array([0, 1, 2, 12, 3, 4, 5, 6, 7, 8]), 2049)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_idx_pool("mnist", str(idx_dir))


ARFF_HEADER = "@relation r\n@attribute a numeric\n@attribute b numeric\n@attribute lab {0,1}\n@data\n"


def test_arff_malformed_row_names_file_line_and_fix(tmp_path):
    path = tmp_path / "bad.arff"
    path.write_text(ARFF_HEADER + "1,2,0\n3,4\n")
    with pytest.raises(DataError, match=rf"{path}, line 7: expected 3 comma-separated values, found 2; the row "
                       r"is truncated or malformed \(fix or remove it\)"):
        read_arff(path, labels=-1)


def test_arff_label_missing_from_the_file(tmp_path):
    path = tmp_path / "bad.arff"
    path.write_text(ARFF_HEADER + "1,2,0\n")
    xml = tmp_path / "labels.xml"
    xml.write_text('<labels xmlns="http://mulan.sourceforge.net/labels"><label name="nolabel"/></labels>')
    with pytest.raises(DataError, match=r"label\(s\) named in label XML .* are not attributes of the file: "
                       r"'nolabel'; check that the XML belongs to this ARFF file"):
        read_arff(path, xml=xml)


def test_arff_without_a_label_source(tmp_path):
    path = tmp_path / "bad.arff"
    path.write_text(ARFF_HEADER + "1,2,0\n")
    with pytest.raises(DataError, match="cannot tell which attributes .* are labels: pass xml="):
        read_arff(path)


def test_cifar_missing_batch_lists_the_files_and_where_to_get_them(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]}
    for name in ("data_batch_1", "data_batch_2", "data_batch_4", "data_batch_5", "test_batch"):
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(DataError) as info:
        load_cifar10_pool(str(tmp_path))
    message = str(info.value)
    assert "lacks the CIFAR-10 batch file(s) data_batch_3" in message
    assert "download cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html" in message


def mnist_folder(tmp_path: Path, test_shape: tuple[int, ...] = (10, 28, 28)) -> Path:
    """An IDX folder whose test images have ``test_shape`` (N, height, width)."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for prefix, shape in (("train", (30, 28, 28)), ("t10k", test_shape)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros(shape), 2051)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.arange(shape[0]) % 10, 2049)
    return folder


def arff_file(tmp_path: Path, rows: str) -> Path:
    path = tmp_path / "bad.arff"
    path.write_text(ARFF_HEADER + rows)
    return path


def cifar_zip_with_a_flipped_bit(tmp_path: Path) -> Path:
    """A CIFAR-10 JPEG test archive (one deflated 32x32 image per class) with one bit of the
    compressed data of its first member flipped: zlib fails (a flip that zlib survives fails the CRC)."""
    import io
    import zipfile

    from PIL import Image

    from kdgan.data.cifar import CLASSES

    path = tmp_path / "cifar10-jpg-test.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for label in CLASSES:
            image = io.BytesIO()
            Image.fromarray(np.full((32, 32, 3), 7 * len(label), np.uint8)).save(image, "JPEG")
            archive.writestr(f"test/{label}/0001.jpg", image.getvalue())
    with zipfile.ZipFile(path) as archive:
        first = archive.infolist()[0]
    data = bytearray(path.read_bytes())
    data[first.header_offset + 30 + len(first.filename.encode())] ^= 0x02  # the first deflate block's type
    path.write_bytes(data)
    return path


def yfcc_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "yfcc"
    folder.mkdir()
    features = np.ones((4, 3), np.float32)
    features[2, 1] = np.nan
    np.save(folder / "features.npy", features)
    (folder / "texts.txt").write_text("a cat\na dog\nsun\nsea\n")
    (folder / "tags.txt").write_text("cat\ndog\nsun\nsea\n")
    return folder


def read_cifar_zip(path: Path) -> None:
    from kdgan.data.cifar import load_jpeg_split

    cache = path.parent / "cache"
    try:
        load_jpeg_split(path, "test", cache=cache)
    finally:
        assert not cache.exists() or not any(cache.iterdir())  # nothing cached from a damaged archive


def read_yfcc_folder(folder: Path) -> None:
    from kdgan.data.yfcc import read_yfcc

    read_yfcc(folder)


def mulan_on_a_file(tmp_path: Path) -> None:
    from kdgan.data.arff import read_mulan

    (tmp_path / "file").write_text("x")
    read_mulan("yeast", tmp_path / "file")


# One row per damaged data file: how to make it and load it, and the message fragment (a regular
# expression; TMP stands for the test's folder). Each must raise DataError naming the file (and the
# row, where the damage is in a row) before any training.
DATA_FILES = [
    pytest.param(lambda t: load_idx_pool("mnist", str(mnist_folder(t, (0, 28, 28)))),
                 r"TMP/mnist/t10k-images-idx3-ubyte.gz holds images of shape \[0, 28, 28\]; an IDX image file holds "
                 r"N >= 1 images", id="idx-zero-row-test-set"),
    pytest.param(lambda t: load_idx_pool("mnist", str(mnist_folder(t, (10, 32, 32)))),
                 r"TMP/mnist: the training images are 28x28 pixels but the test images 32x32 "
                 r"\(TMP/mnist/t10k-images-idx3-ubyte.gz\); the files come from different datasets",
                 id="idx-test-images-of-another-shape"),
    pytest.param(lambda t: read_arff(arff_file(t, ""), labels=-1),
                 r"TMP/bad.arff has no data rows after its @data line \(line 5\); the file is empty or truncated",
                 id="arff-no-data-rows"),
    pytest.param(lambda t: read_arff(arff_file(t, "% header comment\n\n"), labels=-1),
                 r"TMP/bad.arff has no data rows", id="arff-only-comments"),
    pytest.param(lambda t: read_arff(arff_file(t, "1,2,0\n3,nan,1\n"), labels=-1),
                 r"TMP/bad.arff, line 7: attribute 'b' has value nan; NaN and infinite values .* are not "
                 r"supported: impute or remove the row", id="arff-nan-row"),
    pytest.param(lambda t: read_arff(arff_file(t, "1,2,0\n{0 4,2 1}\n{1 -inf}\n"), labels=-1),
                 r"TMP/bad.arff, line 8: attribute 'b' has value -inf", id="arff-sparse-inf-row"),
    pytest.param(lambda t: read_arff(arff_file(t, "1,2,0\n1e39,2,0\n"), labels=-1),
                 r"TMP/bad.arff, line 7: attribute 'a' has value inf; .*beyond float32's range",
                 id="arff-beyond-float32"),
    pytest.param(lambda t: read_cifar_zip(cifar_zip_with_a_flipped_bit(t)),
                 r"TMP/cifar10-jpg-test.zip:test/airplane/0001.jpg could not be decoded \(Error -3 while "
                 r"decompressing data: [a-z ]+\); the archive is "
                 r"corrupt: copy it again", id="cifar-zip-bit-flip"),
    pytest.param(lambda t: read_yfcc_folder(yfcc_folder(t)),
                 r"TMP/yfcc/features.npy holds NaN or infinite values \(first in row 2, counting from 0\)",
                 id="yfcc-nan-row"),
    pytest.param(lambda t: (t / "file").write_text("x") and load_idx_pool("mnist", str(t / "file")),
                 r"data directory TMP/file is a file, not a folder; pass the folder that holds the dataset's files",
                 id="data-dir-is-a-file"),
    pytest.param(mulan_on_a_file, r"data directory TMP/file is a file, not a folder", id="mulan-data-dir-is-a-file"),
]


@pytest.mark.parametrize(("load", "message"), DATA_FILES)
def test_damaged_data_files_name_the_file_and_row(tmp_path, load, message):
    with pytest.raises(DataError, match=message.replace("TMP", re.escape(str(tmp_path)))):
        load(tmp_path)


def test_data_dir_that_is_a_file_via_the_cli(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    err = cli_error(capsys, train_args(tmp_path / "x", "data.name=mnist", "student.model.name=mlp",
                                       "teacher.model.name=mlp") + ["--data-dir", str(tmp_path / "file")])
    assert f"data directory {tmp_path / 'file'} is a file, not a folder" in err and "does not exist" not in err
    assert not (tmp_path / "x").exists()


def test_privileged_rows_must_match_input_rows():
    with pytest.raises(DataError, match="privileged inputs have 3 rows but inputs have 4"):
        TensorData(torch.zeros(4, 5), torch.zeros(4, dtype=torch.long), 2, privileged=torch.zeros(3, 7))


def test_n_larger_than_the_pool(capsys, tmp_path):
    err = cli_error(capsys, train_args(tmp_path / "x", "data.n=5000"))
    assert "the training pool has 1300 examples but n=5000 plus val_size=100 were asked" in err


def test_n_larger_than_the_pool_names_the_fix():
    with pytest.raises(DataError, match="lower data.n or data.val_size"):
        load_splits(DataConfig(name="digits", n=5000, val_size=100), seed=0)


def test_n_larger_than_a_class_allows():
    # 10 classes of digits; 1,300 pool images: 700 of each class cannot be drawn
    with pytest.raises(DataError, match="only .* available; lower data.n or data.val_size"):
        load_splits(DataConfig(name="digits", n=1200, val_size=100), seed=0)


def test_checksum_mismatch_names_file_hashes_and_fix(tmp_path):
    path = tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.parent.mkdir()
    path.write_bytes(b"\x1f\x8b not the published file")
    expected = SHA256["mnist"]["t10k-labels-idx1-ubyte.gz"]
    found = sha256_file(path)
    for call in (lambda: verify_file(path), lambda: verify_folder("mnist", tmp_path / "mnist")):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert str(path) in message and f"has SHA-256 {found}, expected {expected}" in message
        assert "Download it again" in message and "set data.verify=false" in message


def test_checksums_of_unknown_files_and_datasets(tmp_path):
    path = tmp_path / "weird.bin"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="no published SHA-256 for .*weird.bin.*pass expected="):
        verify_file(path)
    with pytest.raises(DataError, match="not found: cannot verify"):
        verify_file(tmp_path / "absent.gz", "0" * 64)
    with pytest.raises(DataError, match="no published checksums for dataset 'svhn'; known: mnist"):
        verify_folder("svhn", tmp_path)
    with pytest.raises(DataError, match="none of the mnist files"):
        verify_folder("mnist", tmp_path)
    assert verify_file(path, sha256_file(path).upper()) == sha256_file(path)


def test_real_dataset_files_match_their_published_checksums(shared_data):
    for name, folder in (("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("cifar10", "cifar10"),
                         ("emotions", "multilabel/emotions"), ("yeast", "multilabel/yeast")):
        results = verify_folder(name, shared_data / folder)
        assert sum(v is not None for v in results.values()) >= 2, (name, results)
    # same file names, different datasets: the folder decides
    assert verify_file(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")


# =============================================================== models


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(name="digits", n=100, val_size=100), seed=0)


def supervised(module: torch.nn.Module, splits: Splits) -> Trainer:
    method = get_method("supervised")({"student": Player.create(module)})
    return Trainer(method, splits)


def test_output_size_that_does_not_match_the_labels(digits):
    with pytest.raises(DataError, match=r"the student network outputs shape \(7,\) per example but the data has "
                       r"10 labels; build it with 10 outputs"):
        supervised(MLP((1, 8, 8), 7, hidden=[8]), digits)


def test_input_shape_the_network_cannot_take(digits):
    with pytest.raises(DataError, match=r"the student network cannot take inputs of shape \(1, 8, 8\)"):
        supervised(MLP((1, 28, 28), 10, hidden=[8]), digits)


def test_image_network_on_flat_features(digits):
    flat = TensorData(digits.train.x.flatten(1), digits.train.y, 10)
    config = load_config(find_config("digits_kdgan"), FAST)
    with pytest.raises(ConfigError, match=r"lenet needs image inputs \(channels, height, width\), got shape \(64,\)"):
        build_trainer(config, splits=Splits(flat, flat, flat))


def with_test(splits: Splits, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
              num_classes: int | None = None) -> Splits:
    test = splits.test
    return replace(splits, test=TensorData(test.x if x is None else x, test.y if y is None else y,
                                           num_classes or test.num_classes))


def nan_in_training_row(splits: Splits, row: int) -> Splits:
    x = splits.train.x.clone()
    x[row, 0, 3, 4] = float("inf")
    return replace(splits, train=replace(splits.train, x=x))


def multilabel(splits: Splits, labelled_val_rows: int | None) -> Splits:
    """Multi-hot copies of the splits; the validation split keeps labels on its first rows only."""
    def hot(part: TensorData, keep: int | None = None) -> TensorData:
        y = torch.nn.functional.one_hot(part.y, 10).float()
        if keep is not None:
            y[keep:] = 0
        return TensorData(part.x, y, 10)

    return Splits(hot(splits.train), hot(splits.val, labelled_val_rows), hot(splits.test))


# One row per set of splits a Trainer must refuse before its first step (the Python API's own
# tensors, or a reader that let them through): how to damage the digits splits, the message.
BAD_SPLITS = [
    pytest.param(lambda s: with_test(s, x=torch.zeros(len(s.test), 1, 9, 9)),
                 r"the test split's inputs have shape \(1, 9, 9\) per example but the training split's have "
                 r"\(1, 8, 8\); every split must have the same input shape", id="test-images-of-another-shape"),
    pytest.param(lambda s: replace(s, val=s.val.subset(torch.arange(0))),
                 r"the val split is empty; it needs at least one example", id="empty-val"),
    pytest.param(lambda s: with_test(s, x=s.test.x[:0], y=s.test.y[:0]), r"the test split is empty",
                 id="zero-row-test"),
    pytest.param(lambda s: nan_in_training_row(s, 7),
                 r"the train split's inputs hold NaN or infinite values \(first in row 7\); clean or impute the "
                 r"data file", id="inf-in-training-inputs"),
    pytest.param(lambda s: replace(s, train=replace(s.train, privileged=torch.zeros(len(s.train), 3))),
                 r"the val split lacks privileged inputs but the training split has them", id="privileged-train-only"),
    pytest.param(lambda s: with_test(s, num_classes=12),
                 r"the test split has 12 class targets but the training split 10 class targets", id="label-count"),
    pytest.param(lambda s: multilabel(s, 0), r"no example of the val split has any label", id="val-without-labels"),
]


@pytest.mark.parametrize(("damage", "message"), BAD_SPLITS)
def test_splits_are_checked_before_the_first_step(digits, tmp_path, damage, message):
    splits = damage(digits)
    module = MLP((1, 8, 8), 10, hidden=[8])
    before = [p.detach().clone() for p in module.parameters()]
    method = get_method("supervised")({"student": Player.create(module)})
    with pytest.raises(DataError, match=message):
        Trainer(method, splits, out_dir=tmp_path / "run").fit()
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))
    assert not (tmp_path / "run").exists()


def test_multilabel_rows_without_any_label_are_counted_in_a_warning(digits):
    splits = multilabel(digits, 60)
    method = get_method("supervised")({"student": Player.create(MLP((1, 8, 8), 10, hidden=[8]))})
    with pytest.warns(UserWarning, match=r"multi-label examples without any label: 40 of 100 val; they score 0 in "
                      r"P@k and are left out of R@k"):
        Trainer(method, splits)


def test_test_images_of_another_shape_via_the_cli(capsys, tmp_path):
    folder = mnist_folder(tmp_path, (10, 32, 32))
    err = cli_error(capsys, train_args(tmp_path / "x", "data.name=mnist", "student.model.name=mlp",
                                       "teacher.model.name=mlp", "data.n=10", "data.val_size=10")
                    + ["--data-dir", str(folder)])
    assert "the training images are 28x28 pixels but the test images 32x32" in err
    assert not (tmp_path / "x").exists()


def test_init_weights_holding_nan_are_refused_before_training(capsys, tmp_path):
    weights = tmp_path / "w.pt"
    module = MLP((1, 8, 8), 10, hidden=[8], dropout=0.1)  # the config's student, 8 units wide
    state = {k: torch.full_like(v, float("nan")) for k, v in module.state_dict().items()}
    torch.save(state, weights)
    err = cli_error(capsys, train_args(tmp_path / "x", f"student.init={weights}", "student.model.hidden=[8]"))
    assert "the student network's weights hold NaN or infinite values before training; check its init weights " \
           "file (student.init)" in err
    assert not (tmp_path / "x").exists()


def test_init_weights_that_do_not_fit(capsys, tmp_path):
    weights = tmp_path / "w.pt"
    torch.save(MLP((1, 8, 8), 10, hidden=[5]).state_dict(), weights)
    err = cli_error(capsys, train_args(tmp_path / "x", f"student.init={weights}"))
    assert f"student.init {weights} does not fit the student network" in err and "size mismatch" in err


def test_init_file_that_is_not_a_weights_file(capsys, tmp_path):
    weights = tmp_path / "w.pt"
    weights.write_text("not weights")
    err = cli_error(capsys, train_args(tmp_path / "x", f"student.init={weights}"))
    assert str(weights) in err


def test_init_from_a_runs_last_checkpoint(capsys, tmp_path, finished_run):
    assert main(train_args(tmp_path / "x", f"student.init={finished_run / 'last.pt'}")) == 0


# =============================================================== runs


def test_existing_run_directory_without_resume(capsys, finished_run):
    err = cli_error(capsys, train_args(finished_run))
    assert f"{finished_run} already holds a run; pass --resume to continue it or choose another --out" in err


def test_resume_with_a_changed_config(capsys, finished_run):
    err = cli_error(capsys, train_args(finished_run, "options.alpha=0.3", resume=True))
    assert "--resume: the config differs from the one saved in" in err
    assert "resume with the same config and --set values" in err


@pytest.mark.parametrize("keep", [1000, 0], ids=["cut", "empty"])
def test_resume_with_a_damaged_last_checkpoint(capsys, tmp_path, finished_run, keep):
    run = copy_run(finished_run, tmp_path)
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:keep])
    err = cli_error(capsys, train_args(run, resume=True))
    assert "last.pt" in err


def test_resume_without_the_saved_config(capsys, tmp_path, finished_run):
    run = copy_run(finished_run, tmp_path)
    (run / "config.yaml").unlink()
    err = cli_error(capsys, train_args(run, resume=True))
    assert "config.yaml" in err and "configs/ folder" not in err


@pytest.mark.parametrize("keep", [0, 300], ids=["empty", "cut"])
def test_resume_with_an_empty_or_cut_saved_config(capsys, tmp_path, finished_run, keep):
    run = copy_run(finished_run, tmp_path)
    (run / "config.yaml").write_text((run / "config.yaml").read_text()[:keep])
    err = cli_error(capsys, train_args(run, resume=True))
    assert "config.yaml" in err and "differs" not in err


def resized(state: dict, role: str) -> dict:
    """The checkpoint with the first weight matrix of ``role`` one unit wider, as a run of another
    config (another width) would have written it."""
    module = state["players"][role]["module"]
    key = next(k for k, v in module.items() if v.ndim == 2)
    module[key] = torch.zeros(module[key].shape[0] + 1, module[key].shape[1])
    return state


def without(state: dict, *keys: str) -> dict:
    for key in keys:
        del state[key]
    return state


# One row per damaged or foreign last.pt: how to change its content (a dict of plain data), and the
# message fragment (a regular expression). Each resume must be refused before anything is loaded
# or written, and name the file and the fix.
BAD_CHECKPOINTS = [
    pytest.param(lambda s: without(s, "rng"), r"last.pt lacks the key\(s\) rng; it is not a complete kdgan checkpoint",
                 id="missing-rng"),
    pytest.param(lambda s: without(s, "players", "history"), r"last.pt lacks the key\(s\) players, history",
                 id="missing-players-and-history"),
    pytest.param(lambda s: without(s["players"], "teacher") and s,
                 r"last.pt holds the players .* but this run has .*teacher.*; it was written by another config",
                 id="missing-player"),
    pytest.param(lambda s: resized(s, "student"),
                 r"last.pt does not fit this run's student \(RuntimeError: .*size mismatch.*\); it was written by "
                 r"another config or version", id="another-config-student-width"),
    pytest.param(lambda s: {**s, "stage": 5},
                 r"last.pt stops at stage 5, epoch 1, which this run's stages \(train \(1 epochs\)\) do not have",
                 id="stage-this-run-lacks"),
    pytest.param(lambda s: {**s, "selection": {"value": 1.0}}, r"last.pt has a damaged 'selection' entry",
                 id="damaged-selection"),
    pytest.param(lambda s: [1, 2, 3], r"last.pt holds a list, not a kdgan checkpoint", id="not-a-dict"),
]


@pytest.mark.parametrize(("change", "message"), BAD_CHECKPOINTS)
def test_resume_from_a_foreign_or_incomplete_last_checkpoint(capsys, tmp_path, finished_run, change, message):
    from kdgan.storage import load_checkpoint

    run = copy_run(finished_run, tmp_path)
    torch.save(change(load_checkpoint(run / "last.pt")), run / "last.pt")
    kept = {name: (run / name).read_bytes() for name in ("last.pt", "student.pt", "metrics.jsonl", "final.json")}
    err = cli_error(capsys, train_args(run, resume=True))
    assert re.search(message, err), err
    assert "Delete it to restart the run from scratch, or restore a good copy" in err
    assert all((run / name).read_bytes() == data for name, data in kept.items())


# One row per bad argument of the other commands: the arguments, the message fragment. Each is
# refused before anything runs or is written (the commands run in an empty folder that must stay so).
COMMAND_ARGUMENTS = [
    pytest.param(["demo", "--seeds", "0"], "--seeds must be at least 1, got 0", id="demo-seeds-0"),
    pytest.param(["reproduce", "table1", "--dataset", "mnist", "--sizes", "abc"],
                 "--sizes must be positive integers separated by commas (e.g. 100,1000), got 'abc'", id="sizes-abc"),
    pytest.param(["reproduce", "table1", "--dataset", "mnist", "--sizes", "100,0"],
                 "--sizes must be positive integers separated by commas (e.g. 100,1000), got '100,0'", id="sizes-0"),
    pytest.param(["reproduce", "table1", "--dataset", "../../etc"],
                 "--dataset for table1 must be one of mnist, cifar10; got '../../etc'", id="dataset-path"),
    pytest.param(["reproduce", "table2", "--dataset", "mnist"],
                 "--dataset for table2 must be one of corel5k, yeast, emotions; got 'mnist'", id="table2-dataset"),
    pytest.param(["reproduce", "table1", "--dataset", "mnist", "--seeds", "0"], "--seeds must be at least 1, got 0",
                 id="reproduce-seeds-0"),
    pytest.param(["reproduce", "table1", "--dataset", "mnist", "--config", "digits_kdgan"],
                 "--config digits_kdgan trains on data.name='digits', not on --dataset mnist",
                 id="config-of-other-data"),
]


@pytest.mark.parametrize(("args", "message"), COMMAND_ARGUMENTS)
def test_bad_command_arguments_are_refused_before_anything_runs(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    assert message in cli_error(capsys, args)
    assert not any(tmp_path.iterdir())


def test_plot_into_an_existing_folder_writes_the_metric_png_in_it(capsys, tmp_path, finished_run):
    folder = tmp_path / "plots"
    folder.mkdir()
    slashed = f"{tmp_path}/new/"  # a folder that does not exist yet, marked by its trailing slash
    for out, written in ((folder, folder / "val_accuracy.png"), (slashed, tmp_path / "new" / "val_accuracy.png")):
        capsys.readouterr()
        assert main(["plot", str(finished_run), "--out", str(out)]) == 0
        assert capsys.readouterr().out.strip() == str(written)
        assert written.read_bytes().startswith(b"\x89PNG")


def test_plot_under_a_file_names_the_fix(capsys, tmp_path, finished_run):
    (tmp_path / "file").write_text("x")
    err = cli_error(capsys, ["plot", str(finished_run), "--out", str(tmp_path / "file" / "c.png")])
    assert f"cannot write the plot {tmp_path / 'file' / 'c.png'} ({tmp_path / 'file'} is a file, not a folder); " \
           "choose another --out" in err
    assert (tmp_path / "file").read_text() == "x"


def test_evaluate_a_directory_that_is_not_a_run(capsys, tmp_path):
    err = cli_error(capsys, ["evaluate", str(tmp_path)])
    assert f"{tmp_path} is not a finished run: it needs config.yaml and student.pt" in err


# =============================================================== divergence


def test_nan_loss_names_player_epoch_step_and_the_fixes(capsys, tmp_path):
    # a huge learning rate sends the student's weights, then its loss, to inf/NaN within a few steps
    err = cli_error(capsys, train_args(tmp_path / "x", "method=supervised", "options={}",
                                       "student.optimizer.lr=1.0e+30"))
    assert "the student's loss became NaN or infinite at step" in err and "of epoch 0 (train)" in err
    assert "Lower the student's learning rate (now 1e+30), set train.grad_clip, or set train.on_nonfinite=skip" in err
    assert not (tmp_path / "x" / "final.json").exists()


def student_alone(module: torch.nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None) -> Method:
    torch.manual_seed(0)  # the same initial weights whatever ran before (a step-0 overflow depends on them)
    module = module or MLP((1, 8, 8), 10, hidden=[8])
    player = Player(module, optimizer or torch.optim.Adam(module.parameters(), lr=1e-3))
    return get_method("supervised")({"student": player})


def scaled_inputs(splits: Splits, factor: float) -> Splits:
    return replace(splits, train=replace(splits.train, x=splits.train.x * factor))


def kdgan_with(splits: Splits, **options: float) -> Method:
    trainer = build_trainer(load_config(find_config("digits_kdgan"), FAST), splits=splits)
    for name, value in options.items():
        setattr(trainer.method.options, name, value)
    return trainer.method


def sgd_with_nan_momentum() -> Method:
    module = MLP((1, 8, 8), 10, hidden=[8])
    return student_alone(module, torch.optim.SGD(module.parameters(), lr=0.1, momentum=float("nan")))


# One row per cause of a non-finite loss: the method (built in Python, past the config's checks),
# a change to the data, and what the divergence message must say instead of "lower the learning
# rate" when that is not the cause.
DIVERGENCES = [
    pytest.param(lambda s: kdgan_with(s, beta=float("inf")), None,
                 r"the student's loss became NaN or infinite at step 0 of epoch 0 \(train\); .* Set options.beta to "
                 r"a finite number \(it is inf\)", id="option-beta-inf"),
    pytest.param(lambda s: kdgan_with(s, gamma=float("nan")), None,
                 r"Set options.gamma to a finite number \(it is nan\)", id="option-gamma-nan"),
    pytest.param(lambda s: sgd_with_nan_momentum(), None,
                 r"Set the student's optimizer momentum to a finite number \(it is nan\)", id="momentum-nan"),
    pytest.param(lambda s: student_alone(), lambda s: scaled_inputs(s, 3e38),
                 r"at step 0 of epoch 0 \(train\); .* The loss was not finite before the student's first update, so "
                 r"the learning rate is not the cause: check the method's options and the inputs' scale \(largest "
                 r"\|value\| in the training inputs: 3e\+38; normalize them with data.normalize\)",
                 id="inputs-at-float32-max"),
]


@pytest.mark.parametrize(("method", "data", "message"), DIVERGENCES)
def test_divergence_names_its_cause(digits, tmp_path, method, data, message):
    splits = data(digits) if data else digits
    trainer = Trainer(method(splits), splits, TrainConfig(epochs=1, progress=False), out_dir=tmp_path / "run")
    with pytest.raises(DivergenceError, match=message) as info:
        trainer.fit()
    assert "Lower the" not in str(info.value) and "start again with a new --out" in str(info.value)
    assert not (tmp_path / "run" / "final.json").exists() and not (tmp_path / "run" / "last.pt").exists()


def test_skip_mode_counts_skipped_steps_and_stops_when_a_whole_epoch_is_skipped(digits, tmp_path):
    method = student_alone()
    loss, calls = method.loss, []

    def infinite_on_every_third_step_then_always(role, batch):
        calls.append(len(calls) >= 10 or len(calls) % 3 == 0)  # 10 steps per epoch: epoch 1 has no finite one
        return loss(role, batch) * (float("inf") if calls[-1] else 1.0)

    method.loss = infinite_on_every_third_step_then_always
    trainer = Trainer(method, digits, TrainConfig(epochs=3, progress=False, on_nonfinite="skip"), out_dir=tmp_path)
    with pytest.raises(DivergenceError, match=r"train.on_nonfinite=skip skipped all 10 steps of the student in epoch 1 "
                       r"\(train\): its loss or gradient was NaN or infinite at every step, so it no longer learns; "
                       r"checkpoints written before it are intact. Lower the student's learning rate \(now 0.001\) or "
                       r"set train.grad_clip, and start again"):
        trainer.fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r["skipped_student"]) for r in records] == [(0, 4)]  # steps 0, 3, 6 and 9 of epoch 0
    assert math.isfinite(records[0]["loss_student"])


def test_stop_mode_records_no_skipped_count(digits):
    result = Trainer(student_alone(), digits, TrainConfig(epochs=1, progress=False)).fit()
    assert "loss_student" in result.history[0] and "skipped_student" not in result.history[0]


def test_a_huge_but_finite_loss_warns_once_and_the_run_goes_on(digits):
    module = MLP((1, 8, 8), 10, hidden=[8])
    method = student_alone(module, torch.optim.Adam(module.parameters(), lr=1e6))
    with pytest.warns(RuntimeWarning, match=r"the student's mean loss in epoch 0 \(train\) is .*e\+\d+: training is "
                      r"probably diverging \(the run goes on; selection keeps the best validation epoch\)") as caught:
        result = Trainer(method, digits, TrainConfig(epochs=3, progress=False)).fit()
    assert len([w for w in caught if "mean loss" in str(w.message)]) == 1
    assert len(result.history) == 3 and min(r["loss_student"] for r in result.history) > LOSS_WARNING


def test_a_healthy_run_does_not_warn_of_divergence(digits):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        result = Trainer(student_alone(), digits, TrainConfig(epochs=3, progress=False)).fit()
    assert max(r["loss_student"] for r in result.history) < 10


def test_every_error_class_is_a_kdgan_error():
    for cls in (ConfigError, DataError):
        assert issubclass(cls, KDGANError) and issubclass(cls, ValueError)
