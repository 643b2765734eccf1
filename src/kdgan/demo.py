"""The demo: every method on the embedded digits data with few labels, several seeds, one table.

Per seed, the teacher and the student are first trained alone (supervised) and selected on
validation; every distillation method then starts from those two networks and trains for the same
number of epochs, so each row's gain over the supervised student is the method's own.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.build import build_trainer
from kdgan.config import RunConfig, load_config
from kdgan.data import load_splits
from kdgan.models import count_parameters
from kdgan.runs import find_config

DEMO_METHODS = ("mimic", "distn", "noisy", "codis", "nagan", "kdgan")


def _variant(base: RunConfig, method: str, seed: int, **changes: Any) -> RunConfig:
    config = replace(base, method=method, seed=seed, options=changes.pop("options", {}))
    for section, values in changes.items():
        setattr(config, section, replace(getattr(config, section), **values))
    return config


def run_demo(
    seeds: int = 3, methods: Sequence[str] = DEMO_METHODS, config: str = "digits_kdgan",
    overrides: Sequence[str] = (), out: Path | None = None, progress: bool = False,
) -> dict[str, Any]:
    """Train the teacher, the supervised student and each method for ``seeds`` seeds.

    ``config`` supplies networks, data and the KDGAN options; other methods use their defaults.
    Returns ``{"runs": {method: [per-seed results]}, "params": {...}, "settings": {...}}``.
    """
    base = load_config(find_config(config), list(overrides))
    base = replace(base, train=replace(base.train, progress=progress))
    runs: dict[str, list[dict[str, Any]]] = {}
    params: dict[str, int] = {}
    started = time.perf_counter()

    def record(name: str, trainer: Any, seed: int) -> None:
        result = trainer.fit()
        runs.setdefault(name, []).append(
            {"seed": seed, "test_accuracy": result.test["accuracy"], "val_accuracy": result.val["accuracy"],
             "selected_epoch": result.selected_epoch, "seconds": result.seconds}
        )

    for seed in range(seeds):
        splits = load_splits(base.data, seed)
        no_pretrain = {"pretrain_epochs": 0}
        teacher_cfg = _variant(base, "supervised", seed, options={"player": "teacher"},
                               train={"epochs": base.teacher.pretrain_epochs}, teacher=no_pretrain)
        teacher_run = build_trainer(teacher_cfg, splits=splits)
        record("teacher", teacher_run, seed)
        teacher_state = teacher_run.method.players["teacher"].module.state_dict()
        params["teacher"] = count_parameters(teacher_run.method.players["teacher"].module)

        student_epochs = base.student.pretrain_epochs + base.train.epochs
        student_cfg = _variant(base, "supervised", seed, train={"epochs": student_epochs}, student=no_pretrain)
        student_run = build_trainer(student_cfg, splits=splits)
        record("supervised", student_run, seed)
        student_state = student_run.method.players["student"].module.state_dict()
        params["student"] = count_parameters(student_run.method.players["student"].module)

        for method in methods:
            options = base.options if method == base.method else {}
            cfg = _variant(base, method, seed, options=options, student=no_pretrain, teacher=no_pretrain)
            trainer = build_trainer(cfg, splits=splits)
            players = trainer.method.players
            players["student"].module.load_state_dict(student_state)
            if "teacher" in players:
                players["teacher"].module.load_state_dict(teacher_state)
            record(method, trainer, seed)

    report = {
        "runs": runs, "params": params,
        "settings": {"seeds": seeds, "config": config, "overrides": list(overrides),
                     "dataset": base.data.name, "n": base.data.n, "epochs": base.train.epochs,
                     "seconds": round(time.perf_counter() - started, 1)},
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "table.md").write_text(markdown_table(report) + "\n")
    return report


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` in percent (sample std; 0 for one value)."""
    mean = statistics.fmean(values) * 100
    std = statistics.stdev(values) * 100 if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The demo's table: test accuracy (validation-selected) per method, with network sizes."""
    params = report["params"]
    lines = [
        "| method | network | parameters | test accuracy % (mean ± std) | val accuracy % | seconds/run |",
        "|---|---|---:|---|---|---:|",
    ]
    for name, rows in report["runs"].items():
        role = "teacher" if name == "teacher" else "student"
        lines.append(
            f"| {name} | {role} | {params.get(role, 0):,} | {mean_std([r['test_accuracy'] for r in rows])} "
            f"| {mean_std([r['val_accuracy'] for r in rows])} "
            f"| {statistics.fmean(r['seconds'] for r in rows):.1f} |"
        )
    settings = report["settings"]
    lines.append(
        f"\n{settings['dataset']}, n={settings['n']} labelled, {settings['seeds']} seeds, "
        f"{settings['epochs']} epochs per method; total {settings['seconds']} s."
    )
    return "\n".join(lines)
