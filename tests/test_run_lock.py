"""One writer per run directory (``kdgan.training.runlock``), and run directories written by the Python API.

The lock is tested with real processes: a child that holds a run's lock (or a real ``kdgan train``)
while this process tries to write the same run, then is killed with SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgan import Player, Splits, Supervised, TensorData, TrainConfig, Trainer
from kdgan.cli import main
from kdgan.config import load_config
from kdgan.errors import ConfigError, RunInUseError
from kdgan.training.build import build_trainer
from kdgan.training.runlock import LOCK_NAME, acquire, check_not_in_use, release, run_lock
from kdgan.training.runs import find_config

from .conftest import tiny_overrides

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
HOLD = "import sys, time; from pathlib import Path; from kdgan.training.runlock import acquire; " \
       "acquire(Path(sys.argv[1])); print('locked', flush=True); time.sleep(120)"


def train_args(out: Path, *extra: str, resume: bool = False) -> list[str]:
    args = ["train", "digits_kdgan", "--out", str(out)]
    for item in [*tiny_overrides(epochs=1), *extra]:
        args += ["--set", item]
    return [*args, "--resume"] if resume else args


class Holder:
    """A child process holding ``run``'s lock until it is killed."""

    def __init__(self, run: Path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run), "child-marker"], env=ENV,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "locked"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def holder(tmp_path):
    held = Holder(tmp_path / "run")
    yield held
    if held.proc.poll() is None:
        held.kill()


def cli_error(capsys, args: list[str]) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_a_second_writer_is_refused_naming_the_holder_until_the_holder_is_killed(holder, tmp_path, capsys,
                                                                                monkeypatch):
    run = tmp_path / "run"
    (run / ".last.pt.abc.tmp").write_bytes(b"the holder's checkpoint being written")
    refuse = lambda *a, **k: pytest.fail("refused only after the build")  # noqa: E731
    monkeypatch.setattr("kdgan.training.build.build_trainer", refuse)
    for resume in (False, True):
        err = cli_error(capsys, train_args(run, resume=resume))
        assert f"{run} is in use: another kdgan process is writing it (pid {holder.proc.pid} on host " \
               f"{socket.gethostname()}, since " in err
        assert "child-marker" in err  # the holder's command line
        assert f"Wait for it to finish, or choose another --out; its lock on {run / LOCK_NAME} is released when " \
               "that process ends, even if it is killed" in err
    assert sorted(p.name for p in run.iterdir()) == [".kdgan.lock", ".last.pt.abc.tmp"]  # nothing written or removed
    holder.kill()  # kill -9: the kernel releases the flock, nothing has to be cleaned up
    monkeypatch.undo()
    assert main(train_args(run, resume=True)) == 0
    assert (run / "final.json").is_file() and not (run / ".last.pt.abc.tmp").exists()
    assert (run / LOCK_NAME).read_text() == ""  # released at the end of the run


@pytest.mark.slow
def test_two_trains_of_one_run_started_together_one_refuses(tmp_path):
    """Two real ``kdgan train --out R`` started at once (seeds 0 and 7): one exits 2 naming the
    other's pid and writes nothing; the run directory holds the other's run alone."""
    run = tmp_path / "run"
    procs = {
        seed: subprocess.Popen([sys.executable, "-m", "kdgan", *train_args(run, "train.epochs=100000", f"seed={seed}")],
                               env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for seed in (0, 7)
    }
    try:
        deadline = time.monotonic() + 120
        while all(p.poll() is None for p in procs.values()):
            assert time.monotonic() < deadline, "neither run was refused"
            time.sleep(0.05)
        [(loser, refused)] = [(seed, p) for seed, p in procs.items() if p.poll() is not None]
        [(winner, running)] = [(seed, p) for seed, p in procs.items() if p.poll() is None]
        err = refused.stderr.read()
        assert refused.returncode == 2, err
        assert f"is in use: another kdgan process is writing it (pid {running.pid} on host" in err
        assert "Traceback" not in err
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
            assert running.poll() is None and time.monotonic() < deadline, "the other run did not start"
            time.sleep(0.05)
        assert load_config(run / "config.yaml").seed == winner != loser
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()[:-1]]
        teacher = [r["epoch"] for r in records if r["stage"] == "pretrain-teacher"]
        assert teacher == list(range(len(teacher)))  # one run's lines, not two interleaved
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    with run_lock(run):  # free after kill -9
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_the_python_api_takes_the_lock_and_writes_nothing_when_refused(holder, tmp_path):
    run = tmp_path / "run"
    config = load_config(find_config("digits_kdgan"), tiny_overrides(epochs=1))
    trainer = build_trainer(config, out_dir=run)
    with pytest.raises(RunInUseError, match=f"pid {holder.proc.pid} on host"):
        trainer.fit()
    assert [p.name for p in run.iterdir()] == [LOCK_NAME]


def test_the_lock_is_an_flock_recording_its_holder_and_released_at_the_end(tmp_path):
    run = tmp_path / "new" / "run"
    with run_lock(run), open(run / LOCK_NAME) as other:
        info = json.loads((run / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        assert info["command"] == " ".join(sys.argv)
        with pytest.raises(BlockingIOError):  # another open file description: refused, as in another process
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert (run / LOCK_NAME).read_text() == ""
    with open(run / LOCK_NAME) as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free once released
        with pytest.raises(RunInUseError, match="a process that has not recorded itself yet"):
            check_not_in_use(run)


def test_the_lock_is_shared_by_one_thread_and_refused_to_another(tmp_path):
    run = tmp_path / "run"
    acquire(run)
    acquire(run)  # the CLI holds it and Trainer.fit takes it again
    release(run)
    errors: list[Exception] = []

    def other_thread() -> None:
        try:
            acquire(run)
        except RunInUseError as err:
            errors.append(err)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert len(errors) == 1 and "another thread of this process" in str(errors[0])
    release(run)  # the last hold: now free for any thread
    thread = threading.Thread(target=lambda: release(run) if acquire(run) is None else None)
    thread.start()
    thread.join()
    with run_lock(run):
        pass


# ------------------------------------------------------------------ runs written by the Python API


def test_a_run_built_from_a_config_by_the_python_api_works_with_kdgan_evaluate(run_dir, capsys):
    """conftest's run_dir is ``build_trainer(config, out_dir=...).fit()``: it gets config.yaml."""
    assert load_config(run_dir / "config.yaml").to_dict()["train"]["epochs"] == 2
    assert json.loads((run_dir / "run.json").read_text())["torch"] == torch.__version__
    assert main(["evaluate", str(run_dir)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test"] == pytest.approx(json.loads((run_dir / "final.json").read_text())["test"])


def tiny_splits() -> Splits:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = torch.tensor(digits.data / 16, dtype=torch.float32), torch.tensor(digits.target)
    part = lambda rows: TensorData(x[rows], y[rows], num_classes=10)  # noqa: E731
    return Splits(train=part(slice(0, 200)), val=part(slice(1000, 1300)), test=part(slice(1300, None)))


def test_a_run_of_a_custom_network_says_why_kdgan_evaluate_cannot_rebuild_it(tmp_path, capsys):
    run = tmp_path / "custom"
    run.mkdir()
    (run / "config.yaml").write_text("method: kdgan\n")  # left by an earlier run: it would describe another run
    torch.manual_seed(0)
    players = {"student": Player.create(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))}
    trainer = Trainer(Supervised(players), tiny_splits(), TrainConfig(epochs=2, progress=False), batch_size=20,
                      out_dir=run)
    trainer.fit()
    assert not (run / "config.yaml").exists() and (run / "run.json").is_file()
    err = cli_error(capsys, ["evaluate", str(run)])
    assert f"{run} was written from the Python API (Trainer(out_dir=...)) without a config, so kdgan evaluate " \
           "cannot rebuild its data and networks" in err
    assert "trainer.evaluate(trainer.method.evaluated, 'test')" in err
    assert "kdgan.build_trainer(config, out_dir=...)" in err


def test_a_run_on_tensors_passed_to_build_trainer_says_why_kdgan_evaluate_cannot_reload_them(tmp_path, capsys):
    run = tmp_path / "own"
    config = load_config(find_config("digits_kdgan"), ["method=supervised", "options={}", "train.epochs=1",
                                                       "student.pretrain_epochs=0", "train.progress=false"])
    build_trainer(config, out_dir=run, splits=tiny_splits()).fit()
    assert not (run / "config.yaml").exists()
    err = cli_error(capsys, ["evaluate", str(run)])
    assert "was written from the Python API on tensors passed to build_trainer(config, splits=...), which its " \
           "config cannot reload" in err


def test_an_empty_out_dir_is_refused_by_the_trainer():
    players = {"student": Player.create(nn.Linear(64, 10))}
    with pytest.raises(ConfigError, match="out_dir is empty; give the folder for the run's files, or None"):
        Trainer(Supervised(players), tiny_splits(), out_dir="")
