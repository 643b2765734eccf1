"""CIFAR-10 n=500 under the shipped cifar10_kdgan config, from runs already made (docs/RESULTS.md).

The shipped config gives KDGAN and NaGAN a game learning rate of 1e-4 (``per_method``) and the
distillation baselines the config's own; those runs exist in two tables that start every method of a
seed from the same teacher and student: docs/data/table1-cifar10.json (the baselines) and
docs/data/table1-cifar10-gamelr.json (KDGAN and NaGAN at 1e-4). This joins them, checks the shared
networks agree, and prints test accuracy with and without the start as a selection candidate
(``train.select_start``, on in the shipped config; the runs predate it, and ``with_start`` is exact
for them) and KDGAN's paired differences with 95 % intervals.

    python scripts/cifar10_shipped_table.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from kdgan.experiments.tables import paired_table, with_start

DATA = Path(__file__).resolve().parent.parent / "docs" / "data"
SHARED = ("teacher", "supervised")


def load(name: str) -> dict[str, list[dict]]:
    return json.loads((DATA / name).read_text())["results"]["500"]


def joined() -> dict[str, list[dict]]:
    """The baselines' runs and the game-lr runs of KDGAN and NaGAN, after checking both files hold
    the same teacher and student results for every seed."""
    baselines, game = load("table1-cifar10.json"), load("table1-cifar10-gamelr.json")
    for role in SHARED:
        if baselines[role] != game[role]:
            raise SystemExit(f"the two tables' {role} runs differ: they did not start from the same networks")
    return {**{m: rows for m, rows in baselines.items() if m not in ("nagan", "kdgan")},
            "nagan": game["nagan"], "kdgan": game["kdgan"]}


def start_included(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Every method's runs with the shared student as a selection candidate."""
    starts = {r["seed"]: r for r in runs["supervised"]}
    return {m: rows if m in SHARED else
            [{**r, "test": {"accuracy": with_start(r, starts[r["seed"]], "accuracy")}} for r in rows]
            for m, rows in runs.items()}


def cell(rows: list[dict]) -> str:
    values = [100 * r["test"]["accuracy"] for r in rows]
    return f"{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})"


def main() -> None:
    runs = joined()
    included = start_included(runs)
    print("| method | start a candidate (shipped) | game epochs only |")
    print("|---|---|---|")
    for method in runs:
        print(f"| {method} | {cell(included[method])} | {cell(runs[method])} |")
    print("\nStart a candidate:\n")
    print(paired_table(included, "kdgan"))
    print("\nGame epochs only:\n")
    print(paired_table(runs, "kdgan"))


if __name__ == "__main__":
    main()
