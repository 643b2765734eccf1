"""Bad inputs: each must end in a KDGANError (exit code 2 and ``kdgan: error: ...`` on the command
line) whose message names the problem and the fix, never in a traceback.

Tests marked ``xfail(strict=True)`` document inputs that currently get a traceback or a weak
message; each reason says what is wrong. When the source is fixed the test passes, strict xfail
turns that into a failure, and the marker is removed.
"""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from kdgan.build import build_trainer
from kdgan.cli import main
from kdgan.config import DataConfig, load_config
from kdgan.data import Splits, TensorData, load_splits
from kdgan.data.arff import read_arff
from kdgan.data.checksums import SHA256, sha256_file, verify_dataset, verify_file
from kdgan.data.cifar import load_cifar10_pool
from kdgan.data.idx import load_idx_pool
from kdgan.engine import Trainer
from kdgan.errors import ConfigError, DataError, KDGANError
from kdgan.methods import get_method
from kdgan.models import MLP
from kdgan.players import Player
from kdgan.runs import find_config

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


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("options.alpha=1.5", "options.alpha must be in [0, 1], got 1.5"),
        ("options.alpha=-0.1", "options.alpha must be in [0, 1], got -0.1"),
        ("options.tau_start=0", "options.tau_start and tau_end must be > 0, got 0.0"),
        ("options.tau_end=-1", "options.tau_start and tau_end must be > 0, got 1.0, -1.0"),
        ("student.optimizer.lr=-0.1", "student.optimizer: optimizer.lr must be > 0, got -0.1"),
        ("teacher.optimizer.lr=0", "teacher.optimizer: optimizer.lr must be > 0, got 0.0"),
        ("data.n=0", "data.n must be a positive number of labelled examples, got 0"),
        ("train.on_nonfinite=ignore", "train.on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
        ("privileged=[student]", "privileged may list teacher and discriminator only, got ['student']"),
    ],
    ids=["alpha>1", "alpha<0", "tau_start=0", "tau_end<0", "lr<0", "lr=0", "n=0", "on_nonfinite", "privileged"],
)
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
    err = cli_error(capsys, train_args(tmp_path / "x", "method=supervised"))
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


def test_config_file_with_a_yaml_syntax_error(capsys, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("method: kdgan\ndata: {name: digits\n")
    err = cli_error(capsys, ["train", str(path), "--out", str(tmp_path / "x")])
    assert f"config file {path} is not valid YAML" in err and "line 2" in err


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
    for call in (lambda: verify_file(path), lambda: verify_dataset("mnist", tmp_path)):
        with pytest.raises(DataError) as info:
            call()
        message = str(info.value)
        assert str(path) in message and f"has SHA-256 {found}, expected {expected}" in message
        assert "Download it again" in message and "verify=False" in message


def test_checksums_of_unknown_files_and_datasets(tmp_path):
    path = tmp_path / "weird.bin"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="no published SHA-256 for .*weird.bin.*pass expected="):
        verify_file(path)
    with pytest.raises(DataError, match="not found: cannot verify"):
        verify_file(tmp_path / "absent.gz", "0" * 64)
    with pytest.raises(DataError, match="no published checksums for dataset 'svhn'; known: mnist"):
        verify_dataset("svhn", tmp_path)
    with pytest.raises(DataError, match="none of the mnist files"):
        verify_dataset("mnist", tmp_path)
    assert verify_file(path, sha256_file(path).upper()) == sha256_file(path)


def test_real_dataset_files_match_their_published_checksums(shared_data):
    for name in ("mnist", "fashion-mnist", "cifar10", "emotions", "yeast"):
        results = verify_dataset(name, shared_data)
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


def test_evaluate_a_directory_that_is_not_a_run(capsys, tmp_path):
    err = cli_error(capsys, ["evaluate", str(tmp_path)])
    assert f"{tmp_path} is not a finished run: it needs config.yaml and student.pt" in err


# =============================================================== divergence


def test_nan_loss_names_player_epoch_step_and_the_fixes(capsys, tmp_path):
    # a huge learning rate sends the student's weights, then its loss, to inf/NaN within a few steps
    err = cli_error(capsys, train_args(tmp_path / "x", "method=supervised", "options={}",
                                       "student.optimizer.lr=1.0e+30"))
    assert "the student's loss became NaN or infinite at step" in err and "of epoch 0 (train)" in err
    assert "Lower the learning rate, set train.grad_clip, or set train.on_nonfinite=skip" in err
    assert not (tmp_path / "x" / "final.json").exists()


def test_every_error_class_is_a_kdgan_error():
    for cls in (ConfigError, DataError):
        assert issubclass(cls, KDGANError) and issubclass(cls, ValueError)
