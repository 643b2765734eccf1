"""The optional TensorBoard logger: scalars per stage and key, replay of a finished run."""

from __future__ import annotations

import json
import sys

import pytest

from kdgan.optional import MissingDependencyError, available

needs_tensorboard = pytest.mark.skipif(
    not available("torch.utils.tensorboard"), reason="tensorboard is not installed (pip install tensorboard)"
)


def scalars(log_dir) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@needs_tensorboard
def test_every_numeric_key_becomes_a_scalar_of_its_stage(tmp_path):
    from kdgan.training.tracking import TensorBoardLogger

    with TensorBoardLogger(tmp_path / "tb") as logger:
        record = {"stage": "train", "epoch": 0, "loss_student": 0.5, "val_accuracy": 0.75, "tau": 1,
                  "flag": True, "note": "text", "seconds": 0.1}
        assert logger.log(record) == 4  # strings, bools and the step itself are not scalars
        logger.log({"stage": "train", "epoch": 1, "loss_student": 0.25, "val_accuracy": 0.8, "seconds": 0.2})
        logger.log({"stage": "pretrain-teacher", "epoch": 0, "loss_teacher": 2.0}, step=7)
    found = scalars(tmp_path / "tb")
    assert set(found) == {"train/loss_student", "train/val_accuracy", "train/tau", "train/seconds",
                          "pretrain-teacher/loss_teacher"}
    assert found["train/loss_student"] == [(0, 0.5), (1, 0.25)]
    assert found["pretrain-teacher/loss_teacher"] == [(7, 2.0)]


@needs_tensorboard
def test_replay_of_a_run_directory(tmp_path):
    from kdgan.training.tracking import replay_run

    run = tmp_path / "run"
    run.mkdir()
    records = [{"stage": "train", "epoch": e, "loss_student": 1.0 / (e + 1), "val_accuracy": 0.5} for e in range(3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    log_dir = replay_run(run)
    assert log_dir == run / "tensorboard"
    assert [step for step, _ in scalars(log_dir)["train/val_accuracy"]] == [0, 1, 2]


def test_missing_tensorboard_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    from kdgan.training.tracking import TensorBoardLogger

    with pytest.raises(MissingDependencyError, match="needs the 'tensorboard' package.*pip install tensorboard"):
        TensorBoardLogger(tmp_path / "tb")
