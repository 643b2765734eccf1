"""The demo: every method on the embedded digits data with few labels, several seeds, one table,
under the protocol of :mod:`kdgan.experiments.comparison`."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.config import load_config
from kdgan.data import load_splits
from kdgan.experiments.comparison import Comparison, mean_std
from kdgan.training.runs import find_config

DEMO_METHODS = ("mimic", "distn", "noisy", "codis", "nagan", "kdgan")


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
    comparison = Comparison(methods)
    started = time.perf_counter()
    for seed in range(seeds):
        comparison.run(base.data.name, replace(base, seed=seed), load_splits(base.data, seed))
    report = {
        "runs": comparison.results[base.data.name], "params": comparison.params,
        "settings": {"seeds": seeds, "config": config, "overrides": list(overrides),
                     "dataset": base.data.name, "n": base.data.n, "epochs": base.train.epochs,
                     "seconds": round(time.perf_counter() - started, 1)},
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "table.md").write_text(markdown_table(report) + "\n")
    return report


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
            f"| {name} | {role} | {params.get(role, 0):,} | {mean_std([r['test']['accuracy'] for r in rows])} "
            f"| {mean_std([r['val']['accuracy'] for r in rows])} "
            f"| {statistics.fmean(r['seconds'] for r in rows):.1f} |"
        )
    settings = report["settings"]
    lines.append(
        f"\n{settings['dataset']}, n={settings['n']} labelled, {settings['seeds']} seeds, "
        f"{settings['epochs']} epochs per method; total {settings['seconds']} s."
    )
    return "\n".join(lines)
