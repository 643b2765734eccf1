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


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATA}")
    return SHARED_DATA
