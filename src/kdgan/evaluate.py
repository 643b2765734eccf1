"""Re-evaluate a finished run's selected model on its test split."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.build import build_trainer, load_weights
from kdgan.config import load_config
from kdgan.errors import ConfigError


def evaluate_run(run_dir: Path, data_dir: str | None = None) -> dict[str, Any]:
    """Rebuild the run from its config.yaml, load student.pt, and score it on val and test."""
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "student.pt").is_file():
        raise ConfigError(f"{run_dir} is not a finished run: it needs config.yaml and student.pt")
    config = load_config(run_dir / "config.yaml")
    if data_dir:
        config = replace(config, data=replace(config.data, dir=data_dir))
    trainer = build_trainer(config)
    role = trainer.method.evaluated
    trainer.method.players[role].module.load_state_dict(load_weights(run_dir / "student.pt"))
    return {"run": str(run_dir), "model": role, "val": trainer.evaluate(role, "val"),
            "test": trainer.evaluate(role, "test")}
