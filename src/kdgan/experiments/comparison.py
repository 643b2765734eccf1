"""Comparing methods under one protocol, resumably: the machinery behind ``kdgan demo`` and
``kdgan reproduce``.

For each (setting, seed), the teacher and the student are first trained alone (supervised, the
epoch picked on validation); every other method then starts from those two networks and trains for
the same number of epochs, so each method's gain over the supervised student is its own. Results
are written after every run, and a rerun skips runs already recorded, so a killed comparison
continues where it stopped.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.config import RunConfig
from kdgan.data import Splits
from kdgan.models import count_parameters
from kdgan.storage import atomic_save, load_checkpoint
from kdgan.training.build import build_trainer
from kdgan.training.engine import RunResult, Trainer
from kdgan.training.runs import environment, git_commit

BASELINE_RUNS = ("teacher", "supervised")
WEIGHTS_HINT = "delete it to train that baseline again"


def variant(base: RunConfig, method: str, seed: int, **changes: Any) -> RunConfig:
    """``base`` with another method, seed, options, and section fields replaced."""
    config = replace(base, method=method, seed=seed, options=changes.pop("options", {}))
    for section, values in changes.items():
        setattr(config, section, replace(getattr(config, section), **values))
    return config


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` in percent (sample std); one value alone has no spread to show."""
    mean = statistics.fmean(values) * 100
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values) * 100:.2f}"


def commits_note(results: dict[str, dict[str, list[dict[str, Any]]]]) -> str:
    """Which commits produced the recorded runs, e.g. 'Runs by commit: 1d4bf8b (16), 4c18025 (8).'"""
    counts: dict[str, int] = {}
    for runs in results.values():
        for rows in runs.values():
            for row in rows:
                commit = (row.get("git_commit") or "")[:7] or "not recorded"
                counts[commit] = counts.get(commit, 0) + 1
    return "Runs by commit: " + ", ".join(f"{c} ({n})" for c, n in counts.items()) + "." if counts else ""


def summarize(result: RunResult, seed: int) -> dict[str, Any]:
    """What a comparison keeps of a run: scores, timing, and the per-epoch validation and test
    curves."""
    curve = [
        {k: v for k, v in r.items() if k in ("epoch", "seconds") or k.startswith(("val_", "test_"))}
        for r in result.history if r["stage"] == "train"
    ]
    return {
        "seed": seed, "test": result.test, "val": result.val, "best_test": result.best_test,
        "selected_epoch": result.selected_epoch, "seconds": result.seconds, "curve": curve,
    }


class Comparison:
    """Runs methods against shared supervised teacher and student; ``results`` maps a setting name
    to ``{method: [per-seed summaries]}``. With ``out``, results.json and the two pretrained
    networks of each (setting, seed) are saved as they are made, and reused on a rerun."""

    def __init__(self, methods: Sequence[str], out: Path | None = None) -> None:
        self.methods, self.out = list(methods), out
        self.results: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.params: dict[str, int] = {}
        self.seconds = 0.0
        self.environment: dict[str, Any] | None = None  # of the invocation that last trained here
        self.commit = git_commit()  # stamped on every run this process records
        if out is not None and (out / "results.json").is_file():
            saved = json.loads((out / "results.json").read_text())
            self.results, self.params = saved["results"], saved["params"]
            self.environment = saved.get("environment")

    def report_environment(self, device: str, report_only: bool) -> dict[str, Any]:
        """The environment a report names: this process's (taken before it trains), or, for a
        report-only rewrite, that of the invocation that trained the runs, when recorded."""
        if report_only and self.environment is not None:
            return self.environment
        return environment(device)

    def done(self, setting: str, method: str, seed: int) -> bool:
        return any(r["seed"] == seed for r in self.results.get(setting, {}).get(method, []))

    def record(self, setting: str, method: str, summary: dict[str, Any]) -> None:
        """Keep a run's summary, stamped with the commit that produced it (a table resumed over
        several sessions may mix code), and save results.json at once."""
        summary = {**summary, "git_commit": self.commit}
        self.results.setdefault(setting, {}).setdefault(method, []).append(summary)
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            saved = {"results": self.results, "params": self.params, "environment": self.environment}
            tmp = self.out / "results.json.tmp"
            tmp.write_text(json.dumps(saved, indent=1) + "\n")
            tmp.replace(self.out / "results.json")

    def _baseline(self, setting: str, name: str, config: RunConfig, splits: Splits, role: str) -> dict:
        """Train (or reload) the supervised teacher or student of this setting and seed."""
        path = None if self.out is None else self.out / "weights" / f"{setting}-seed{config.seed}-{role}.pt"
        trainer = build_trainer(config, splits=splits)
        module = trainer.method.players[role].module
        self.params[role] = count_parameters(module)
        if path is not None and path.is_file() and self.done(setting, name, config.seed):
            module.load_state_dict(load_checkpoint(path, map_location=splits.train.x.device, fix=WEIGHTS_HINT))
        else:
            started = time.perf_counter()
            summary = summarize(trainer.fit(), config.seed)
            self.seconds += time.perf_counter() - started
            if path is not None:
                atomic_save(module.state_dict(), path)
            if not self.done(setting, name, config.seed):  # recorded before, weights since lost
                self.record(setting, name, summary)
        return module.state_dict()

    def baselines(self, setting: str, base: RunConfig, splits: Splits) -> tuple[dict, dict]:
        """The supervised teacher's and student's weights at ``base.seed`` (trained or reloaded)."""
        seed, off = base.seed, {"pretrain_epochs": 0}
        teacher_cfg = variant(base, "supervised", seed, options={"player": "teacher"}, teacher=off,
                              train={"epochs": base.teacher.pretrain_epochs, "eval_test_each_epoch": False})
        teacher = self._baseline(setting, "teacher", teacher_cfg, splits, "teacher")
        epochs = base.student.pretrain_epochs + base.train.epochs
        student_cfg = variant(base, "supervised", seed, train={"epochs": epochs}, student=off)
        return teacher, self._baseline(setting, "supervised", student_cfg, splits, "student")

    def start_from(self, config: RunConfig, splits: Splits, teacher: dict, student: dict) -> Trainer:
        """A trainer for ``config`` whose student and teacher start from the given weights."""
        off = {"pretrain_epochs": 0}
        trainer = build_trainer(variant(config, config.method, config.seed, options=config.options,
                                        student=off, teacher=off), splits=splits)
        players = trainer.method.players
        players["student"].module.load_state_dict(student)
        if "teacher" in players:
            players["teacher"].module.load_state_dict(teacher)
        return trainer

    def run(self, setting: str, base: RunConfig, splits: Splits) -> None:
        """Every method at ``base.seed`` on ``splits``, skipping runs already recorded."""
        seed = base.seed
        teacher, student = self.baselines(setting, base, splits)
        for method in self.methods:
            if method in BASELINE_RUNS or self.done(setting, method, seed):
                continue
            options = base.options if method == base.method else {}
            trainer = self.start_from(replace(base, method=method, options=options), splits, teacher, student)
            started = time.perf_counter()
            self.record(setting, method, summarize(trainer.fit(), seed))
            self.seconds += time.perf_counter() - started
