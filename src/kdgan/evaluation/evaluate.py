"""Re-evaluate a finished run's selected model on its test split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.config import read_config_file, saved_config
from kdgan.errors import ConfigError
from kdgan.storage import load_checkpoint
from kdgan.training.build import build_trainer, load_weights

API_EVALUATE = ("Evaluate it in Python instead, with the trainer that trained it: "
                "trainer.evaluate(trainer.method.evaluated, 'test')")


def refuse_runs_written_without_a_config(run_dir: Path) -> None:
    """Say why a run written by ``Trainer(out_dir=...)`` has no config.yaml, from what its
    student.pt records: no config (networks built in Python) or data that did not come from it."""
    run_info = load_checkpoint(run_dir / "student.pt", map_location="cpu").get("run_info") or {}
    if "config" not in run_info:
        raise ConfigError(
            f"{run_dir} was written from the Python API (Trainer(out_dir=...)) without a config, so kdgan "
            f"evaluate cannot rebuild its data and networks (there is no config.yaml). {API_EVALUATE}; or "
            "build the run from a config with kdgan.build_trainer(config, out_dir=...), which writes the "
            "config.yaml that kdgan evaluate reads"
        )
    if not run_info.get("data_from_config", True):
        raise ConfigError(
            f"{run_dir} was written from the Python API on tensors passed to build_trainer(config, splits=...), "
            f"which its config cannot reload, so it has no config.yaml for kdgan evaluate. {API_EVALUATE}"
        )


def evaluate_run(run_dir: Path, data_dir: str | None = None) -> dict[str, Any]:
    """Rebuild the run from its config.yaml, load student.pt, and score it on val and test."""
    if (run_dir / "student.pt").is_file() and not (run_dir / "config.yaml").is_file():
        refuse_runs_written_without_a_config(run_dir)
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "student.pt").is_file():
        raise ConfigError(f"{run_dir} is not a finished run: it needs config.yaml and student.pt")
    config = saved_config(read_config_file(run_dir / "config.yaml"), str(run_dir / "config.yaml"))
    if data_dir:
        config = replace(config, data=replace(config.data, dir=data_dir))
    trainer = build_trainer(config)
    role = trainer.method.evaluated
    trainer.method.players[role].module.load_state_dict(load_weights(run_dir / "student.pt"))
    return {"run": str(run_dir), "model": role, "val": trainer.evaluate(role, "val"),
            "test": trainer.evaluate(role, "test")}
