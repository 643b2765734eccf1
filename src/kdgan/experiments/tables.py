"""The one table writer of the comparisons: rows of methods, columns described by data, for
multi-class runs (accuracy, in percent) and multi-label runs (the ranking metrics, as fractions)
alike."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy.stats import t as t_distribution

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


def with_start(run: Mapping[str, Any], start: Mapping[str, Any], metric: str) -> float:
    """The test ``metric`` of ``run`` had its model selection included the student its game started
    from (``train.select_start``): ``start``'s (the comparison's shared supervised student of the
    same seed) when its validation score is at least the run's, since the start is scored first
    and a game epoch must beat it, else the run's own. Exact for runs made with or without the
    option, because both pick the best validation score and differ only in whether the start is
    a candidate."""
    if run["seed"] != start["seed"]:
        raise ValueError(f"seed {run['seed']} paired with the start of seed {start['seed']}")
    return start["test"][metric] if start["val"][metric] >= run["val"][metric] else run["test"][metric]


def paired_difference(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float]:
    """The mean of ``a - b`` over paired seeds and its 95 % confidence interval, from Student's t
    with n - 1 degrees of freedom (the interval is (nan, nan) for a single pair)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"paired differences need equal, non-empty lists; got {len(a)} and {len(b)} values")
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) == 1:
        return mean, math.nan, math.nan
    half = t_distribution.ppf(0.975, len(differences) - 1) * statistics.stdev(differences) / math.sqrt(len(differences))
    return mean, float(mean - half), float(mean + half)


def paired_table(runs: Runs, method: str, metric: str = "accuracy", scale: float = 100.0) -> str:
    """``method`` minus every other method of ``runs`` on the test ``metric``, seed by seed (only
    the seeds both ran): the differences, their mean and its 95 % confidence interval (in percent
    points for accuracy, ``scale`` 100)."""
    mine = {r["seed"]: r["test"][metric] for r in runs.get(method, [])}
    lines = [f"| {method} − | seeds | per seed | mean | 95 % CI |", "|---|---:|---|---:|---|"]
    for other, rows in runs.items():
        theirs = {r["seed"]: r["test"][metric] for r in rows if r["seed"] in mine and metric in r["test"]}
        if other == method or not theirs:
            continue
        seeds = sorted(theirs)
        a, b = [mine[s] * scale for s in seeds], [theirs[s] * scale for s in seeds]
        mean, low, high = paired_difference(a, b)
        interval = "—" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"
        per_seed = ", ".join(f"{x - y:+.2f}" for x, y in zip(a, b, strict=True))
        lines.append(f"| {other} | {len(seeds)} | {per_seed} | {mean:+.2f} | {interval} |")
    return "\n".join(lines)
