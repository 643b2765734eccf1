"""Files a user hands us cannot run code: every command that loads a .pt refuses a crafted one
(whose unpickling would create a marker file) with a clear message, and the payload never runs.
Also: every .pt that kdgan writes loads with ``weights_only=True``, and resuming restores every
random-number generator from such a file."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from kdgan.cli import main
from kdgan.data.cifar import parse_pickle_batch
from kdgan.errors import DataError, UnsafeFileError
from kdgan.storage import atomic_save, load_checkpoint
from kdgan.training.seeding import rng_state, set_rng_state

from .conftest import SMALL_RUN_OVERRIDES

REFUSAL = "holds Python objects that kdgan does not load, because loading them could run code"


class Payload:
    """Unpickling this calls ``open(marker, "w")``: harmless, but visible as a new file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


class MkdirPayload(Payload):
    """Unpickling this calls ``os.mkdir(marker)``: a function of a module torch blocks outright."""

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "payload-ran"


def write_malicious(path: Path, marker: Path) -> Path:
    """A torch.save'd dict that looks like a student.pt / checkpoint and carries the payload."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(2)}, "run_info": {"payload": Payload(marker)}}, path)
    return path


def assert_refused(args: list[str], bad_file: Path, marker: Path, capsys) -> None:
    """The command exits with an error that names ``bad_file`` and says why, and the payload did not run."""
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2  # a KDGANError, shown without a traceback
    assert REFUSAL in err and str(bad_file) in err, err
    assert "weights_only=False" in err  # says how to load a file the user trusts
    assert not marker.exists()


@pytest.mark.parametrize("payload", [Payload, MkdirPayload])
def test_the_malicious_file_does_run_its_payload_when_unpickled_unsafely(tmp_path, marker, payload):
    """Guards the tests below: the files they use really are dangerous to an unsafe loader."""
    path = tmp_path / "bad.pt"
    torch.save({"state_dict": {}, "run_info": {"payload": payload(marker)}}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_refuses_the_payload_in_torch_and_plain_pickle_files(tmp_path, marker):
    zipped = write_malicious(tmp_path / "zipped.pt", marker)
    plain = tmp_path / "plain.pt"
    plain.write_bytes(pickle.dumps({"state_dict": {}, "x": Payload(marker)}, protocol=2))
    blocked = tmp_path / "blocked.pt"
    torch.save({"state_dict": {}, "x": MkdirPayload(marker)}, blocked)
    for path, named in ((zipped, "GLOBAL io.open"), (plain, "GLOBAL io.open"), (blocked, "GLOBAL posix.mkdir")):
        with pytest.raises(UnsafeFileError, match=REFUSAL) as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value) and named in str(caught.value)  # names the refused object
    newer = tmp_path / "protocol5.pt"  # opcodes the safe loader does not parse: refused as unreadable
    newer.write_bytes(pickle.dumps({"x": Payload(marker)}, protocol=5))
    with pytest.raises(DataError, match="is damaged or not a torch file"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch warns of the protocol before refusing it
        load_checkpoint(newer)
    assert not marker.exists()


def test_a_checkpoint_of_an_older_kdgan_with_numpy_objects_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"rng": [{"numpy": np.random.get_state()}]}, path)  # how last.pt held numpy's state before
    with pytest.raises(UnsafeFileError, match="written by an older kdgan .* retrain the run") as caught:
        load_checkpoint(path)
    assert "numpy" in str(caught.value)


def test_a_damaged_file_is_still_reported_as_damaged_not_as_unsafe(tmp_path):
    for content in (b"\x80\x04not a torch file", b"hello", b""):
        path = tmp_path / "last.pt"
        path.write_bytes(content)
        with pytest.raises(DataError, match="is damaged or not a torch file") as caught, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch warns of the pickle protocol it then refuses
            load_checkpoint(path, fix="restore it")
        assert not isinstance(caught.value, UnsafeFileError) and str(caught.value).endswith("restore it")


def test_every_file_a_run_writes_loads_with_weights_only(run_dir):
    for name in ("last.pt", "best.pt", "student.pt"):
        saved = torch.load(run_dir / name, weights_only=True)
        assert isinstance(saved, dict) and saved, name
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert {"players", "rng", "history", "selection", "run_info"} <= set(last)
    assert isinstance(last["rng"][0]["numpy"]["keys"], list)  # numpy's state as plain data


def test_rng_state_round_trips_through_a_weights_only_file(tmp_path):
    """Every generator (python, numpy incl. its cached Gaussian, torch, the batch generator)
    draws after a reload exactly what it drew after the save."""
    batches = torch.Generator().manual_seed(3)
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's state
    atomic_save({"rng": rng_state(batches)}, tmp_path / "rng.pt")

    def draws() -> tuple:
        return (random.random(), np.random.standard_normal(), np.random.rand(), torch.rand(1).item(),
                torch.randint(0, 1000, (3,), generator=batches).tolist())

    expected = draws()
    draws()  # move every generator on
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"], batches)
    assert draws() == expected


# ----------------------------------------------------------------- each command that loads a .pt
def test_evaluate_refuses_a_malicious_student(run_dir, tmp_path, marker, capsys):
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(run_dir / "config.yaml", run / "config.yaml")
    bad = write_malicious(run / "student.pt", marker)
    assert_refused(["evaluate", str(run)], bad, marker, capsys)


def test_export_refuses_a_malicious_student(tmp_path, marker, capsys):
    bad = write_malicious(tmp_path / "run" / "student.pt", marker)
    assert_refused(["export", str(tmp_path / "run"), "--out", str(tmp_path / "s.onnx")], bad, marker, capsys)
    assert not (tmp_path / "s.onnx").exists()


def test_predict_refuses_a_malicious_student(tmp_path, marker, capsys):
    bad = write_malicious(tmp_path / "run" / "student.pt", marker)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((2, 64), dtype=np.float32))
    assert_refused(["predict", str(tmp_path / "run"), str(inputs)], bad, marker, capsys)


def test_train_resume_refuses_a_malicious_last_checkpoint(run_dir, tmp_path, marker, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    for name in ("student.pt", "final.json"):  # an interrupted run: resume must read last.pt
        (run / name).unlink(missing_ok=True)
    bad = write_malicious(run / "last.pt", marker)
    args = ["train", "digits_kdgan", "--out", str(run), "--resume"]
    args += [a for override in SMALL_RUN_OVERRIDES for a in ("--set", override)]
    assert_refused(args, bad, marker, capsys)


def test_student_init_refuses_a_malicious_weights_file(tmp_path, marker, capsys):
    bad = write_malicious(tmp_path / "init.pt", marker)
    args = ["train", "digits_kdgan", "--out", str(tmp_path / "run"), "--set", f"student.init={bad}"]
    args += [a for override in SMALL_RUN_OVERRIDES for a in ("--set", override)]
    assert_refused(args, bad, marker, capsys)


def test_plot_refuses_a_malicious_student_of_a_run_without_config(tmp_path, marker, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"stage": "train", "epoch": 0, "val_accuracy": 0.5}) + "\n")
    bad = write_malicious(run / "student.pt", marker)
    assert_refused(["plot", str(run), "--out", str(tmp_path / "curves.png")], bad, marker, capsys)
    assert not (tmp_path / "curves.png").exists()


def test_reproduce_reloads_its_weights_safely_and_refuses_malicious_ones(shared_data, tmp_path, marker, capsys):
    out = tmp_path / "t2"
    args = ["reproduce", "table2", "--dataset", "emotions", "--seeds", "1", "--epochs", "1",
            "--methods", "supervised", "--data-dir", str(shared_data), "--out", str(out),
            "--set", "teacher.pretrain_epochs=1", "--set", "student.pretrain_epochs=1"]
    assert main(args) == 0
    weights = sorted((out / "weights").glob("*.pt"))
    assert [p.name for p in weights] == ["emotions-seed0-student.pt", "emotions-seed0-teacher.pt"]
    for path in weights:  # what a rerun reloads is plain tensors
        assert all(isinstance(v, torch.Tensor) for v in torch.load(path, weights_only=True).values())
    assert main(args) == 0  # the rerun reloads both through the safe loader
    capsys.readouterr()
    bad = write_malicious(out / "weights" / "emotions-seed0-teacher.pt", marker)
    assert_refused(args, bad, marker, capsys)


# ----------------------------------------------------------------- the other files we read
def test_yaml_python_tags_in_a_config_file_or_a_set_value_are_refused(tmp_path, marker, capsys):
    tag = f'!!python/object/apply:builtins.open ["{marker}", "w"]'
    config = tmp_path / "evil.yaml"
    config.write_text(f"method: {tag}\n")
    for args in (["train", str(config)], ["train", "digits_kdgan", "--set", f"method={tag}"]):
        assert main([*args, "--out", str(tmp_path / "run")]) == 2
        assert "could not determine a constructor for the tag" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_predict_refuses_an_npy_input_holding_pickled_objects(run_dir, tmp_path, marker, capsys):
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.array([Payload(marker)], dtype=object), allow_pickle=True)
    assert main(["predict", str(run_dir), str(inputs)]) == 2
    assert "Object arrays cannot be loaded when allow_pickle=False" in capsys.readouterr().err
    assert not marker.exists()


def test_a_cifar_pickle_batch_with_foreign_objects_is_refused(tmp_path, marker):
    batch = pickle.dumps({b"data": Payload(marker), b"labels": [0]}, protocol=2)
    with pytest.raises(DataError, match="refusing to load global io.open"):
        parse_pickle_batch(io.BytesIO(batch), "data_batch_1")
    assert not marker.exists()
