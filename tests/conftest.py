"""Shared fixtures: one CPU thread (this machine has two cores shared with others), small runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def tiny_overrides(epochs: int = 3) -> list[str]:
    """Config overrides that make a digits run take about a second."""
    return [
        "train.progress=false", f"train.epochs={epochs}", "student.pretrain_epochs=2",
        "teacher.pretrain_epochs=2", "discriminator.pretrain_epochs=1", "data.val_size=100",
    ]


def fit_until_killed(trainer, epoch: int, stage: str = "train") -> None:
    """Run ``trainer.fit()`` and stop it, as a kill would, when epoch ``epoch`` of ``stage`` begins."""
    original = trainer._train_epoch

    def die_there(current, number):
        if current.name == stage and number == epoch:
            raise KeyboardInterrupt
        return original(current, number)

    trainer._train_epoch = die_there
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()


# A KDGAN run small enough for a test (about a second): a small teacher, a briefly trained student.
SMALL_RUN_OVERRIDES = [
    "train.progress=false", "train.epochs=2", "student.pretrain_epochs=10", "teacher.pretrain_epochs=1",
    "discriminator.pretrain_epochs=1", "teacher.model={name: lenet, channels: [8, 16], kernel: 3, fc: 32}",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished small digits KDGAN run directory (one per test module)."""
    from kdgan.config import load_config
    from kdgan.training.build import build_trainer
    from kdgan.training.runs import find_config

    out = tmp_path_factory.mktemp("run")
    build_trainer(load_config(find_config("digits_kdgan"), SMALL_RUN_OVERRIDES), out_dir=out).fit()
    return out


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA
