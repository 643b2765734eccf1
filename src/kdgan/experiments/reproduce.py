"""``kdgan reproduce table1``: the paper's deep-model-compression comparison (its Table 1) under an
honest protocol: the epoch is chosen on a validation split disjoint from the n labelled images and
from the test set, and the test accuracy of that epoch is reported; the best test accuracy over
epochs (the authors' protocol) is reported beside it, labelled as such."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgan.config import load_config
from kdgan.errors import ConfigError
from kdgan.evaluation.plot import plot_mean_curves
from kdgan.experiments.comparison import (
    BASELINE_RUNS,
    Setting,
    Spec,
    commits_note,
    mean_std,
    run_comparison,
    run_options,
    write_json,
)
from kdgan.experiments.tables import Column, method_table, paired_table, with_start
from kdgan.storage import atomic_write_text
from kdgan.training.runs import find_config

TABLE1_CONFIGS = {"mnist": "mnist_kdgan", "cifar10": "cifar10_kdgan"}

# The authors' batch size for each number of labelled examples (their code); larger n use 128.
BATCH_SIZES = {50: 5, 100: 10, 500: 10, 1000: 50, 5000: 50, 10000: 100}

# The paper's Table 1 (authors' draft; mean ± std over 10 runs, best-test protocol), in percent.
PAPER_TABLE1: dict[str, dict[int, dict[str, str]]] = {
    "mnist": {
        100: {"nagan": "64.90±.31", "mimic": "67.35±.15", "distn": "68.34±.06", "noisy": "66.53±.18",
              "kdgan": "77.95±.05", "supervised": "54.94"},
        1000: {"nagan": "93.60±.22", "mimic": "93.78±.13", "distn": "93.97±.11", "noisy": "93.45±.08",
               "kdgan": "96.42±.05", "supervised": "86.57"},
        10000: {"nagan": "98.95±.19", "mimic": "98.65±.05", "distn": "98.79±.11", "noisy": "98.58±.07",
                "kdgan": "99.25±.02", "supervised": "97.13"},
    },
    "cifar10": {
        500: {"nagan": "46.29±.32", "mimic": "51.74±.23", "distn": "50.92±.18", "noisy": "50.18±.28",
              "kdgan": "57.56±.13", "supervised": "45.29"},
        5000: {"nagan": "76.11±.24", "mimic": "75.66±.17", "distn": "76.59±.15", "noisy": "75.42±.19",
               "kdgan": "79.36±.04", "supervised": "71.11"},
        50000: {"nagan": "85.34±.27", "mimic": "84.33±.10", "distn": "83.32±.08", "noisy": "82.99±.12",
                "kdgan": "86.50±.04", "supervised": "80.34"},
    },
}


def table_config(dataset: str, config: str | None, shipped: dict[str, str]) -> str:
    """The base config of a table on ``dataset``: ``config`` when given (a built-in name or a YAML
    path, e.g. ``mnist_kdgan_authors`` to run Table 1 under the authors' recipe), else the shipped
    one. A config of another dataset is refused: the table would be labelled with the wrong data."""
    if config is None:
        return shipped[dataset]
    data = load_config(find_config(config)).data.name
    if data.split("-")[0] != dataset:
        raise ConfigError(f"--config {config} trains on data.name={data!r}, not on --dataset {dataset}; "
                          f"give a config of {dataset} (e.g. {shipped[dataset]}) or --dataset {data.split('-')[0]}")
    return config


def table1_spec(dataset: str, sizes: Sequence[int], seeds: int, methods: Sequence[str] | None = None,
                overrides: Sequence[str] = (), config: str | None = None) -> Spec:
    """Table 1 as a comparison: one setting per labelled-set size (with the authors' batch size),
    every registered method unless ``methods`` names some, on ``config`` (default: the dataset's
    shipped config)."""
    base = table_config(dataset, config, TABLE1_CONFIGS)
    settings = tuple(Setting(str(size), base,
                             (f"data.n={size}", f"data.batch_size={BATCH_SIZES.get(size, 128)}")) for size in sizes)
    return Spec(settings, seeds, tuple(methods) if methods else None, overrides=tuple(overrides))


def reproduce_table1(
    dataset: str, sizes: Sequence[int], seeds: int, out: Path, methods: Sequence[str] | None = None,
    epochs: int | None = None, device: str | None = None, data_dir: str | None = None,
    overrides: Sequence[str] = (), progress: bool = False, report_only: bool = False, jobs: int = 1,
    tuned: str | None = None, config: str | None = None,
) -> dict[str, Any]:
    """Run every method at every size and seed (skipping those already in ``out``) in ``jobs``
    processes, each method at its best trial in the ``tuned`` storage when given, on ``config``
    (default: the dataset's shipped config); then write results.json, table1.md and curves.png.
    With ``report_only``, train nothing: rewrite the reports from the runs recorded so far (e.g. of
    an interrupted invocation)."""
    spec = table1_spec(dataset, sizes, seeds, methods, run_options(overrides, epochs, device, data_dir, progress),
                       config)
    done = run_comparison(spec, out, report_only, device or "cpu", jobs, tuned)
    report = {"dataset": dataset, "sizes": list(sizes), "seeds": seeds, **done}
    write_json(out / "results.json", report)
    atomic_write_text(out / "table1.md", table1_markdown(report) + "\n\n" + speed_markdown(report) + "\n")
    plot_curves(report, out / "curves.png")
    return report


def merge_results(folders: Sequence[Path], out: Path) -> int:
    """Gather the runs recorded in each folder's results.json into ``out/results.json`` (made by
    comparisons of one table with disjoint ``--methods``, e.g. on several machines), so that
    ``--report-only`` writes the whole table. A run recorded in several folders must be the same
    record (the shared teacher and student, copied from one folder); runs that differ are refused.
    Returns the number of runs in ``out``."""
    merged: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    first: dict[str, Any] = {}
    where: dict[tuple[str, str, int], Path] = {}
    for folder in folders:
        path = folder / "results.json"
        if not path.is_file():
            raise ConfigError(f"--merge {folder}: no results.json there; give the --out folders of the comparisons")
        report = json.loads(path.read_text())
        first = first or report
        for setting, methods in report["results"].items():
            for method, rows in methods.items():
                for row in rows:
                    key = (setting, method, row["seed"])
                    kept = merged.setdefault(setting, {}).setdefault(method, {}).setdefault(row["seed"], row)
                    if kept != row:
                        raise ConfigError(f"--merge: {method} seed {row['seed']} ({setting}) differs between "
                                          f"{where[key]} and {folder}; train the shared teacher and student once "
                                          "and copy that --out folder to every machine before splitting --methods")
                    where.setdefault(key, folder)
    results = {s: {m: [rows[seed] for seed in sorted(rows)] for m, rows in methods.items()}
               for s, methods in merged.items()}
    write_json(out / "results.json", {"results": results, "params": first.get("params", {}),
                                      "environment": first.get("environment")})
    return len(where)


def table1_markdown(report: dict[str, Any]) -> str:
    """Validation-selected and best-test accuracy (mean ± std over seeds) beside the paper's."""
    dataset, sizes = report["dataset"], report["sizes"]
    names = list(dict.fromkeys(m for s in sizes for m in report["results"].get(str(s), {})))

    def runs(method: str, size: int) -> list[dict[str, Any]]:
        return report["results"].get(str(size), {}).get(method, [])

    def selected(size: int) -> Column:
        def cell(method: str) -> str:
            rows = runs(method, size)
            text = mean_std([r["test"]["accuracy"] for r in rows]) if rows else "not run"
            return text + (f" ({len(rows)} of {report['seeds']} seeds)" if rows and len(rows) < report["seeds"] else "")
        return Column(f"n={size} val-selected", cell)

    def best_test(size: int) -> Column:
        def cell(method: str) -> str:
            best = [r["best_test"]["accuracy"] for r in runs(method, size) if r["best_test"]]
            return mean_std(best) if best else "—"
        return Column(f"n={size} best-test", cell)

    def start_included(size: int) -> Column:
        def cell(method: str) -> str:
            starts = {r["seed"]: r for r in runs("supervised", size)}
            rows = [r for r in runs(method, size) if r["seed"] in starts]
            if method in BASELINE_RUNS or not rows:
                return "—"
            return mean_std([with_start(r, starts[r["seed"]], "accuracy") for r in rows])
        return Column(f"n={size} start incl.", cell)

    def paper(size: int) -> Column:
        return Column(f"n={size} paper", lambda m: PAPER_TABLE1.get(dataset, {}).get(size, {}).get(m, "—"))

    columns = [c for s in sizes for c in (selected(s), start_included(s), best_test(s), paper(s))]
    lines = [method_table(names, columns)]
    seconds = {
        m: statistics.fmean(r["seconds"] for s in sizes for r in report["results"].get(str(s), {}).get(m, []))
        for m in names
    }
    lines.append("")
    lines.append(f"{dataset}, {report['seeds']} seeds; test accuracy in %. 'val-selected': the epoch with the best "
                 "validation accuracy; 'best-test': the best test accuracy over epochs (the authors' protocol, "
                 "optimistic; '—' where the test set was not scored every epoch, train.eval_test_each_epoch). "
                 "The teacher row is the supervised teacher every method starts from.")
    lines.append("'start incl.': the val-selected test accuracy had each method's selection included the "
                 "supervised student it starts from (train.select_start), computed from the same runs.")
    for size in sizes:
        for method in ("kdgan", "nagan"):
            if len(runs(method, size)) > 1:
                lines += ["", f"Paired differences at n={size}, test accuracy points, seeds both ran:", "",
                          paired_table(report["results"][str(size)], method)]
    lines.append("")
    lines.append("Mean seconds per run: " + ", ".join(f"{m} {v:.0f}" for m, v in seconds.items()) + ".")
    lines.append(commits_note({s: report["results"].get(str(s), {}) for s in sizes}))
    return "\n".join(lines)


def epochs_to_reach(curve: list[dict[str, Any]], target: float) -> tuple[int, float] | None:
    """(epochs, seconds) until a run's validation accuracy first reaches ``target`` in a game
    epoch (the start's record, epoch -1, trained nothing), or None."""
    for point in curve:
        if point["epoch"] >= 0 and point.get("val_accuracy", -1.0) >= target:
            return point["epoch"] + 1, point["seconds"]
    return None


def speed_markdown(report: dict[str, Any], methods: Sequence[str] = ("kdgan", "nagan", "distn")) -> str:
    """The paper's speed claim, measured: per size and seed, epochs and seconds each method needs
    to reach NaGAN's best validation accuracy of that seed over its game epochs."""
    lines = ["| n | seed | NaGAN best val % | " + " | ".join(f"{m} epochs (s)" for m in methods) + " |",
             "|---|---|---|" + "---|" * len(methods)]
    for size in report["sizes"]:
        rows = report["results"].get(str(size), {})
        for nagan in rows.get("nagan", []):
            target = max(p["val_accuracy"] for p in nagan["curve"] if p["epoch"] >= 0)
            cells = []
            for method in methods:
                run = next((r for r in rows.get(method, []) if r["seed"] == nagan["seed"]), None)
                reached = epochs_to_reach(run["curve"], target) if run else None
                cells.append("not run" if run is None else "never" if reached is None
                             else f"{reached[0]} ({reached[1]:.0f})")
            lines.append(f"| {size} | {nagan['seed']} | {target * 100:.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_curves(report: dict[str, Any], path: Path, methods: Sequence[str] = ("kdgan", "nagan", "distn")) -> str:
    """Test accuracy against game epoch for KDGAN, NaGAN and DISTN at the first size (mean over
    seeds); validation accuracy when the runs did not score the test set every epoch. Returns the split."""
    size = str(report["sizes"][0])
    results = report["results"].get(size, {})
    scored = any("test_accuracy" in p for m in methods for r in results.get(m, []) for p in r["curve"])
    split = "test" if scored else "val"
    series = {m: [[p[f"{split}_accuracy"] for p in r["curve"] if f"{split}_accuracy" in p and p["epoch"] >= 0]
                  for r in results.get(m, [])] for m in methods}  # epoch -1: the start (train.select_start)
    plot_mean_curves(series, path, xlabel="epoch", scale=100,
                     ylabel=f"{'test' if split == 'test' else 'validation'} accuracy (%)",
                     title=f"{report['dataset']} n={size}, mean over {report['seeds']} seeds")
    return split
