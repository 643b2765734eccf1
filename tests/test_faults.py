"""Faults: ``kill -9`` of a training process at random moments (one of them inside a checkpoint
write), resumed with ``--resume`` until it finishes, must give exactly the uninterrupted run; and
``atomic_save`` must leave the previous file intact when a write fails part-way.

The killed runs are real ``python -m kdgan train`` subprocesses. A subprocess cannot be
monkeypatched, so the kill moments are chosen by watching the run directory: the moment
config.yaml appears (before any checkpoint), the moment a checkpoint's temporary file appears
(inside ``atomic_save``, before its rename), and seeded random delays after a checkpoint write
starts. The reference run and the last resume run in this process through the same ``cli.main``.
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kdgan import storage
from kdgan.cli import main
from kdgan.errors import OutputError
from kdgan.storage import atomic_save

from .conftest import tiny_overrides

EPOCHS = 4  # game epochs; with tiny_overrides' pretraining: 2 + 2 + 1 + 4 = 9 checkpoints
SETS = [*tiny_overrides(epochs=EPOCHS), "train.checkpoint_every=1"]
CHECKPOINTS = 2 + 2 + 1 + EPOCHS
POLL = 0.001  # seconds between looks at the run directory (a checkpoint write takes ~30 ms here)
ROUND_TIMEOUT = 120.0


def train_args(out: Path, resume: bool = False) -> list[str]:
    args = ["train", "digits_kdgan", "--out", str(out)]
    for item in SETS:
        args += ["--set", item]
    return [*args, "--resume"] if resume else args


def temp_files(run: Path, name: str = "") -> list[Path]:
    """atomic_save's temporary files: ``.<name>.<random>.tmp``."""
    prefix = f".{name}"
    with os.scandir(run) as entries:
        return sorted(run / e.name for e in entries if e.name.startswith(prefix) and e.name.endswith(".tmp"))


def strip_seconds(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in records]


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


class Killer:
    """Starts ``python -m kdgan train`` and kills it with SIGKILL when a condition on its run
    directory becomes true (or lets it finish)."""

    def __init__(self, out: Path, log: Path) -> None:
        self.out, self.log = out, log
        self.seconds: list[float] = []  # wall time of each process
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}

    def run(self, resume: bool, kill_when: Callable[[], bool] | None, delay: float = 0.0) -> str:
        """Returns 'killed' or 'finished'. ``delay`` seconds pass between the condition and the kill."""
        began = time.monotonic()
        try:
            return self._run(resume, kill_when, delay)
        finally:
            self.seconds.append(round(time.monotonic() - began, 2))

    def _run(self, resume: bool, kill_when: Callable[[], bool] | None, delay: float) -> str:
        with open(self.log, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "kdgan", *train_args(self.out, resume)],
                stdout=log, stderr=subprocess.STDOUT, env=self.env,
            )
            deadline = time.monotonic() + ROUND_TIMEOUT
            try:
                while proc.poll() is None:
                    if kill_when is not None and kill_when():
                        if delay:
                            time.sleep(delay)
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        return "killed"
                    if time.monotonic() > deadline:
                        raise AssertionError(f"kdgan train did not finish within {ROUND_TIMEOUT} s")
                    time.sleep(POLL)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert proc.returncode == 0, f"kdgan train failed (exit {proc.returncode}); see {self.log}:\n" + (
            self.log.read_text()[-3000:]
        )
        return "finished"


class CheckpointWatch:
    """True once the ``count``-th new temporary file of ``name`` has been seen in the run directory
    (a checkpoint write in progress)."""

    def __init__(self, run: Path, name: str, count: int) -> None:
        self.run, self.name, self.count = run, name, count
        self.before = set(temp_files(run, name))
        self.seen: set[Path] = set()

    def __call__(self) -> bool:
        try:
            self.seen |= set(temp_files(self.run, self.name)) - self.before
        except FileNotFoundError:
            return False
        return len(self.seen) >= self.count


def check_invariants(run: Path, progress: list[tuple[int, int]]) -> dict:
    """What must hold after any kill: last.pt and student.pt load (never half-written), the saved
    progress never goes back, every complete metrics line parses."""
    state: dict = {"temp": [p.name for p in temp_files(run)]}
    if (run / "last.pt").exists():
        last = torch.load(run / "last.pt", weights_only=False)
        assert {"stage", "epoch", "players", "selection", "rng", "history", "run_info"} <= set(last)
        assert set(last["players"]) == {"student", "teacher", "discriminator"}
        point = (last["stage"], last["epoch"])
        assert not progress or point >= progress[-1], f"checkpoint went back from {progress[-1]} to {point}"
        progress.append(point)
        state["last"] = point
    if (run / "student.pt").exists():
        student = torch.load(run / "student.pt", weights_only=False)
        assert {"state_dict", "epoch", "run_info"} <= set(student)
    if (run / "metrics.jsonl").exists():
        lines = (run / "metrics.jsonl").read_text().split("\n")
        for line in lines[:-1]:  # the last piece may be a line cut by the kill
            json.loads(line)
    return state


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run, through the same CLI entry point, in this process."""
    out = tmp_path_factory.mktemp("faults") / "reference"
    assert main(train_args(out)) == 0
    return out


@pytest.mark.slow
def test_kill_minus_9_at_random_moments_then_resume_equals_uninterrupted(reference, tmp_path):
    rng = random.Random(6)
    run = tmp_path / "killed"
    killer = Killer(run, tmp_path / "train.log")
    progress: list[tuple[int, int]] = []
    kills: list[dict] = []

    # 1. before the first checkpoint: as soon as run.json exists (written right after config.yaml;
    # a kill inside the config.yaml write itself is test_resume_with_a_cut_config_yaml...)
    assert killer.run(False, lambda: (run / "run.json").is_file()) == "killed"
    state = check_invariants(run, progress)
    assert (run / "config.yaml").is_file() and not (run / "last.pt").exists(), state
    kills.append({"moment": "run.json written, no checkpoint yet", **state})

    # 2. inside a checkpoint write: the moment the k-th temporary last.pt appears; --resume must
    # start from scratch here (no last.pt), and the kill must leave last.pt loadable
    mid_write = 0
    for _ in range(3):
        count = rng.randint(1, 3)
        watch = CheckpointWatch(run, "last.pt", count)
        outcome = killer.run(True, watch)
        state = check_invariants(run, progress)
        landed = bool(set(temp_files(run, "last.pt")) - watch.before)  # its temp file is still there
        mid_write += landed
        kills.append({"moment": f"temp file of checkpoint write #{count} seen", "outcome": outcome,
                      "left_temp_file": landed, **state})
        if landed or outcome == "finished":
            break
    assert mid_write >= 1, f"no kill landed inside a checkpoint write: {kills}"

    # 3. seeded random delays after a checkpoint write starts: anywhere in training, evaluation,
    # logging, student.pt or last.pt writes
    for _ in range(1):
        if (run / "final.json").exists():
            break
        delay = rng.uniform(0.0, 0.4)
        outcome = killer.run(True, CheckpointWatch(run, "", 1), delay=delay)
        kills.append({"moment": f"{delay:.3f} s after a checkpoint write began", "outcome": outcome,
                      **check_invariants(run, progress)})

    # 4. resume until it finishes (in this process, as the reference)
    for _ in range(3):
        if (run / "final.json").exists():
            break
        assert main(train_args(run, resume=True)) == 0
    assert (run / "final.json").exists()
    check_invariants(run, progress)
    print("\n".join(json.dumps(k) for k in kills), "\nprocess seconds:", killer.seconds)  # pytest -s shows it

    final, expected = json.loads((run / "final.json").read_text()), json.loads((reference / "final.json").read_text())
    for key in ("test", "val", "selected_epoch", "best_test", "method"):
        assert final[key] == expected[key], (key, kills)
    assert strip_seconds(read_metrics(run)) == strip_seconds(read_metrics(reference))
    mine = torch.load(run / "student.pt", weights_only=False)
    theirs = torch.load(reference / "student.pt", weights_only=False)
    assert mine["epoch"] == theirs["epoch"]
    assert all(torch.equal(mine["state_dict"][k], v) for k, v in theirs["state_dict"].items())
    last, ref_last = (torch.load(p / "last.pt", weights_only=False) for p in (run, reference))
    assert (last["stage"], last["epoch"]) == (ref_last["stage"], ref_last["epoch"])
    for role, player in ref_last["players"].items():
        for k, v in player["module"].items():
            assert torch.equal(last["players"][role]["module"][k], v), (role, k)
    # the temporary files left by killed writes are inert: nothing above read them
    assert all(name.endswith(".tmp") and name.startswith(".") for name in (p.name for p in temp_files(run)))


def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_from_scratch(reference, tmp_path):
    """What a kill between config.yaml and the first checkpoint leaves (config.yaml, run.json, a
    cut metrics.jsonl, no last.pt), resumed: the same run as the reference."""
    run = tmp_path / "early"
    run.mkdir()
    for name in ("config.yaml", "run.json"):
        shutil.copy(reference / name, run / name)
    (run / "metrics.jsonl").write_text('{"stage": "pretrain-teacher", "epo')
    assert main(train_args(run, resume=True)) == 0
    assert strip_seconds(read_metrics(run)) == strip_seconds(read_metrics(reference))
    assert json.loads((run / "final.json").read_text())["test"] == json.loads((reference / "final.json").read_text())[
        "test"
    ]


def test_resume_of_a_finished_run_changes_nothing(reference, tmp_path):
    run = tmp_path / "again"
    shutil.copytree(reference, run)
    assert main(train_args(run, resume=True)) == 0
    assert json.loads((run / "final.json").read_text())["test"] == json.loads((reference / "final.json").read_text())[
        "test"
    ]
    assert strip_seconds(read_metrics(run)) == strip_seconds(read_metrics(reference))


def test_resume_removes_temporary_files_of_killed_checkpoint_writes(reference, tmp_path):
    run = tmp_path / "stray"
    shutil.copytree(reference, run)
    stray = run / ".last.pt.abc123.tmp"
    stray.write_bytes((run / "last.pt").read_bytes()[:1000])
    assert main(train_args(run, resume=True)) == 0
    assert not stray.exists()


# ------------------------------------------------------------------ atomic_save


@pytest.fixture
def saved(tmp_path) -> tuple[Path, dict]:
    path = tmp_path / "ck" / "last.pt"
    old = {"epoch": 1, "weights": torch.arange(1000.0)}
    atomic_save(old, path)
    return path, old


def assert_intact(path: Path, old: dict) -> None:
    loaded = torch.load(path, weights_only=False)
    assert loaded["epoch"] == old["epoch"] and torch.equal(loaded["weights"], old["weights"])
    assert [p.name for p in path.parent.iterdir()] == [path.name], "a temporary file was left behind"


def test_atomic_save_crash_inside_torch_save_keeps_the_previous_file(saved, monkeypatch):
    path, old = saved
    real_save = torch.save

    def half_then_crash(obj, handle, *args, **kwargs):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", half_then_crash)
    with pytest.raises(OSError, match="No space left"):
        atomic_save({"epoch": 2, "weights": torch.zeros(1000)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert_intact(path, old)


def test_atomic_save_interrupt_inside_torch_save_keeps_the_previous_file(saved, monkeypatch):
    path, old = saved

    def interrupted(obj, handle, *args, **kwargs):
        handle.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"epoch": 2, "weights": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert_intact(path, old)


def test_atomic_save_crash_in_fsync_or_rename_keeps_the_previous_file(saved, monkeypatch):
    path, old = saved
    for name in ("fsync", "replace"):
        def crash(*args, name=name, **kwargs):
            raise OSError(5, f"Input/output error in {name}")

        monkeypatch.setattr(storage.os, name, crash)
        with pytest.raises(OSError, match=f"error in {name}"):
            atomic_save({"epoch": 2, "weights": torch.zeros(1000)}, path)
        monkeypatch.undo()
        assert_intact(path, old)


def test_atomic_save_first_write_that_fails_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "new" / "student.pt"
    monkeypatch.setattr(storage.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("rename failed")))
    with pytest.raises(OSError, match="rename failed"):
        atomic_save({"x": 1}, path)
    assert list(path.parent.iterdir()) == []


def test_atomic_save_replaces_the_file_whole(saved):
    path, _ = saved
    atomic_save({"epoch": 2, "weights": torch.zeros(5)}, path)
    loaded = torch.load(path, weights_only=False)
    assert loaded["epoch"] == 2 and loaded["weights"].shape == (5,)
    assert [p.name for p in path.parent.iterdir()] == [path.name]


# ------------------------------------------------------------------ half-created runs


def test_a_run_killed_before_it_wrote_config_yaml_starts_again_with_or_without_resume(reference, tmp_path):
    """A kill right after mkdir (or inside config.yaml's write) leaves the lock file of a dead
    process and perhaps a temporary file: both commands start the run, as the reference."""
    for resume in (False, True):
        run = tmp_path / f"resume-{resume}"
        run.mkdir()
        (run / ".kdgan.lock").write_text('{"pid": 1, "host": "gone", "since": "-", "command": "kdgan train"}\n')
        (run / ".config.yaml.tmp").write_text("method: kdg")
        assert main(train_args(run, resume=resume)) == 0
        assert not (run / ".config.yaml.tmp").exists()
        assert strip_seconds(read_metrics(run)) == strip_seconds(read_metrics(reference))


def test_a_run_killed_inside_run_json_write_resumes_and_gets_its_run_json(reference, tmp_path, capsys):
    run = tmp_path / "cut"
    run.mkdir()
    shutil.copy(reference / "config.yaml", run / "config.yaml")
    (run / ".run.json.tmp").write_text('{"kdgan": "0.')
    assert main(train_args(run)) == 2
    assert ("already holds a run; pass --resume to continue it (it stopped before its first checkpoint, so it "
            "starts again from scratch with the same config)") in capsys.readouterr().err
    assert main(train_args(run, resume=True)) == 0
    assert json.loads((run / "run.json").read_text())["torch"] == torch.__version__
    assert not (run / ".run.json.tmp").exists()
    assert json.loads((run / "final.json").read_text())["test"] == json.loads((reference / "final.json").read_text())[
        "test"
    ]


# ------------------------------------------------------------------ --out problems and a full disk


def out_error(capsys, out: str) -> str:
    assert main(["train", "digits_kdgan", "--out", out, "--set", "train.progress=false"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_out_that_cannot_be_a_run_folder_is_refused_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "--out is empty; give the run's folder, or leave --out out for runs/METHOD-TIMESTAMP" in out_error(
        capsys, "")
    assert list(tmp_path.iterdir()) == []  # not silently written to runs/
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    assert f"{a_file} is a file, not a folder; choose a folder for the run (--out)" in out_error(capsys, str(a_file))
    assert f"cannot create the run folder {a_file / 'run'}: {a_file} is a file, not a folder" in out_error(
        capsys, str(a_file / "run"))
    assert a_file.read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    assert f"cannot write the run folder {locked / 'a' / 'run'}: permission denied on {locked}; choose a folder " \
           "you can write to (--out)" in out_error(capsys, str(locked / "a" / "run"))
    assert list(locked.iterdir()) == []


def test_permission_denied_when_the_run_folder_is_made_is_reported(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if self == run:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert main(train_args(run)) == 2
    assert f"cannot write {run}: permission denied. To fix: choose a folder you can write to" in capsys.readouterr().err


class NearlyFullDisk(io.FileIO):
    """A file on a disk with 1,000 bytes left."""

    def write(self, data) -> int:
        if self.tell() + len(data) > 1000:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


def test_atomic_save_on_a_full_disk_says_so_and_keeps_the_previous_file(saved, monkeypatch):
    """The real torch.save, whose writes fail with ENOSPC: torch reports that as a RuntimeError
    ('unexpected pos ...'); atomic_save reports the disk-full error it hides."""
    path, old = saved
    monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: io.BufferedWriter(NearlyFullDisk(fd, mode)))
    with pytest.raises(OutputError) as caught:
        atomic_save({"epoch": 2, "weights": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert isinstance(caught.value, OSError) and caught.value.errno == errno.ENOSPC
    assert str(caught.value) == (f"cannot write {path}: the disk is full (No space left on device); the previous "
                                 f"{path} is intact. To fix: free some space and try again")
    assert_intact(path, old)


def test_atomic_write_text_on_a_full_disk_says_so_and_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "run.json"
    path.write_text("{}\n")

    monkeypatch.setattr(storage.os, "fdopen", lambda fd, mode: io.BufferedWriter(NearlyFullDisk(fd, mode)))
    with pytest.raises(OutputError, match=f"cannot write {path}: the disk is full .* the previous {path} is intact"):
        storage.atomic_write_text(path, "{" + "x" * 2000 + "}")
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"] and path.read_text() == "{}\n"


def test_a_full_disk_during_training_is_reported_and_the_run_resumes(reference, tmp_path, capsys, monkeypatch):
    """The 2nd checkpoint write fails with ENOSPC: exit 2 with the path and the fix, the 1st
    checkpoint intact and no temporary file; after that, --resume ends as the reference."""
    run = tmp_path / "full"
    real_save, checkpoints, previous = torch.save, [], {}

    def disk_full_at_the_second_checkpoint(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "players" in obj:
            checkpoints.append((obj["stage"], obj["epoch"]))
            if len(checkpoints) == 2:
                previous["bytes"] = (run / "last.pt").read_bytes()
                f.write(b"PK\x03\x04 part of a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", disk_full_at_the_second_checkpoint)
    assert main(train_args(run)) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert (f"cannot write {run / 'last.pt'}: the disk is full (No space left on device); the previous "
            f"{run / 'last.pt'} is intact. To fix: free some space and try again (then the run continues from its "
            "last checkpoint with --resume)") in err
    assert "Traceback" not in err
    assert (run / "last.pt").read_bytes() == previous["bytes"]
    last = torch.load(run / "last.pt", weights_only=False)
    assert (last["stage"], last["epoch"]) == checkpoints[0] == (0, 1)
    assert temp_files(run) == []
    assert main(train_args(run, resume=True)) == 0
    assert strip_seconds(read_metrics(run)) == strip_seconds(read_metrics(reference))
