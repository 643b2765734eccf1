"""The one table writer of the comparisons: rows of methods, columns described by data, for
multi-class runs (accuracy, in percent) and multi-label runs (the ranking metrics, as fractions)
alike."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kdgan.experiments.comparison import mean_std

RANKING_METRICS = ("p@3", "p@5", "r@3", "r@5", "f@3", "f@5", "ndcg@3", "ndcg@5", "map", "mrr")

Runs = Mapping[str, Sequence[Mapping[str, Any]]]  # method -> per-seed summaries


@dataclass(frozen=True)
class Column:
    """A table column: its title, the text of its cell for a method, its markdown alignment."""

    title: str
    cell: Callable[[str], str]
    align: str = "---"


def method_table(methods: Sequence[str], columns: Sequence[Column]) -> str:
    """A markdown table, one row per method."""
    lines = ["| method | " + " | ".join(c.title for c in columns) + " |",
             "|---|" + "".join(f"{c.align}|" for c in columns)]
    lines += [f"| {m} | " + " | ".join(c.cell(m) for c in columns) + " |" for m in methods]
    return "\n".join(lines)


def is_multilabel(runs: Runs) -> bool:
    """Whether the runs were scored with ranking metrics (multi-label data) rather than accuracy."""
    return any("map" in row["test"] for rows in runs.values() for row in rows)


def fraction_cell(values: Sequence[float]) -> str:
    """``mean ± std`` of fractions to four places (0.0000 spread for one run), as Table 2 shows them."""
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {std:.4f}"


def metric_column(runs: Runs, split: str, metric: str, title: str) -> Column:
    """Mean ± std over seeds of ``split``'s ``metric``: percent for accuracy, fractions otherwise."""
    def cell(method: str) -> str:
        values = [row[split][metric] for row in runs.get(method, []) if metric in row[split]]
        if metric == "accuracy":
            return mean_std(values) if values else "—"
        return fraction_cell(values)
    return Column(title, cell)


def metric_columns(runs: Runs, split: str = "test") -> list[Column]:
    """One column per metric the runs report on ``split``: accuracy, or every ranking metric."""
    if is_multilabel(runs):
        return [metric_column(runs, split, m, m) for m in RANKING_METRICS]
    return [metric_column(runs, split, "accuracy", f"{split} accuracy % (mean ± std)")]


def summary_table(runs: Runs, params: Mapping[str, int]) -> str:
    """The demo's table: the test scores of the validation-selected epoch per method, the
    validation score that selected it, network sizes and time per run."""
    def network(method: str) -> str:
        return "teacher" if method == "teacher" else "student"

    multilabel = is_multilabel(runs)
    selected_by = "map" if multilabel else "accuracy"
    columns = [
        Column("network", network),
        Column("parameters", lambda m: f"{params.get(network(m), 0):,}", "---:"),
        *metric_columns(runs, "test"),
        metric_column(runs, "val", selected_by, "val MAP" if multilabel else "val accuracy %"),
        Column("seconds/run", lambda m: f"{statistics.fmean(r['seconds'] for r in runs[m]):.1f}", "---:"),
    ]
    return method_table(list(runs), columns)
