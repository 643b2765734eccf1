"""kdgan: knowledge distillation with generative adversarial networks, in plain PyTorch.

The package reads as the system it implements:

- :mod:`kdgan.data` — datasets, splits, preprocessing and the readers of users' own files;
- :mod:`kdgan.models` — the students', teachers' and discriminators' networks;
- :mod:`kdgan.methods` — one file per method (``KDGAN``, ``NaGAN``, ``Distn``, ...): its players,
  their update order and ``loss(role, batch)``, with the losses and label samplers they use;
- :mod:`kdgan.training` — the :class:`Trainer` that runs a method (engine, players, checkpoints,
  run directories, seeding, torchrun);
- :mod:`kdgan.evaluation` — accuracy and ranking metrics, kNN tag scores, evaluating and plotting runs;
- :mod:`kdgan.experiments` — the comparison of methods behind ``kdgan demo`` and ``kdgan reproduce``;
- :mod:`kdgan.deploy` — the finished student: load, predict, export (imports nothing from training);
- :mod:`kdgan.config`, :mod:`kdgan.storage`, :mod:`kdgan.errors`, :mod:`kdgan.cli`.

The names below are imported on first use, so ``import kdgan.deploy.predict`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "DataConfig": "kdgan.config", "OptimizerConfig": "kdgan.config", "PlayerConfig": "kdgan.config",
    "RunConfig": "kdgan.config", "TrainConfig": "kdgan.config", "load_config": "kdgan.config",
    "Batch": "kdgan.data", "Splits": "kdgan.data", "TensorData": "kdgan.data", "load_splits": "kdgan.data",
    "export_student": "kdgan.deploy.export",
    "load_student": "kdgan.deploy.student_file", "open_student": "kdgan.deploy.student_file",
    "save_student": "kdgan.deploy.student_file",
    "KDGAN": "kdgan.methods", "METHODS": "kdgan.methods", "Codis": "kdgan.methods", "Distn": "kdgan.methods",
    "Mimic": "kdgan.methods", "NaGAN": "kdgan.methods", "Noisy": "kdgan.methods", "Supervised": "kdgan.methods",
    "DKD": "kdgan.methods", "DIST": "kdgan.methods", "LogitStandardizedKD": "kdgan.methods",
    "build_trainer": "kdgan.training.build", "RunResult": "kdgan.training.runs", "Trainer": "kdgan.training.engine",
    "Player": "kdgan.training.players",
}
__all__ = [
    "Batch", "Codis", "DIST", "DKD", "DataConfig", "Distn", "KDGAN", "LogitStandardizedKD", "METHODS", "Mimic",
    "NaGAN", "Noisy",
    "OptimizerConfig", "Player", "PlayerConfig", "RunConfig", "RunResult", "Splits", "Supervised",
    "TensorData", "TrainConfig", "Trainer", "build_trainer", "export_student", "load_config", "load_splits",
    "load_student", "open_student", "save_student",
]


def __getattr__(name: str) -> Any:
    """Import a public name from the module that defines it the first time it is asked for."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'kdgan' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:
    from kdgan.config import DataConfig, OptimizerConfig, PlayerConfig, RunConfig, TrainConfig, load_config
    from kdgan.data import Batch, Splits, TensorData, load_splits
    from kdgan.deploy.export import export_student
    from kdgan.deploy.student_file import load_student, open_student, save_student
    from kdgan.methods import (
        DIST,
        DKD,
        KDGAN,
        METHODS,
        Codis,
        Distn,
        LogitStandardizedKD,
        Mimic,
        NaGAN,
        Noisy,
        Supervised,
    )
    from kdgan.training.build import build_trainer
    from kdgan.training.engine import Trainer
    from kdgan.training.players import Player
    from kdgan.training.runs import RunResult
