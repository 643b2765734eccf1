"""``kdgan reproduce table2``: multi-label tag recommendation in the paper's Table 2 style, on
Mulan datasets: Corel5k (the teacher has more capacity) and the two-view sets yeast and emotions
(the teacher also sees a privileged view the student never gets). Every registered method plus a
KNN tag-propagation baseline; P@k, R@k, F@k, nDCG@k (k = 3, 5), MAP and MRR on the test split of
the epoch with the best validation MAP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kdgan.errors import ConfigError
from kdgan.evaluation.plot import plot_mean_curves
from kdgan.experiments.comparison import (
    Setting,
    Spec,
    commits_note,
    run_comparison,
    run_options,
    write_json,
)
from kdgan.experiments.reproduce import table_config
from kdgan.experiments.tables import method_table, metric_columns
from kdgan.storage import atomic_write_text

TABLE2_CONFIGS = {"corel5k": "corel5k_kdgan", "yeast": "yeast_kdgan", "emotions": "emotions_kdgan"}


def table2_spec(dataset: str, seeds: int, methods: Sequence[str] | None = None, overrides: Sequence[str] = (),
                config: str | None = None) -> Spec:
    """Table 2 as a comparison: one setting (the dataset), KNN beside every registered method unless
    ``methods`` names some, the test split scored every epoch (for the P@3 curves), on ``config``
    (default: the dataset's shipped config)."""
    if dataset not in TABLE2_CONFIGS:
        raise ConfigError(f"table2 datasets are {', '.join(TABLE2_CONFIGS)}; got {dataset!r}")
    setting = Setting(dataset, table_config(dataset, config, TABLE2_CONFIGS))
    return Spec((setting,), seeds, tuple(methods) if methods else None,
                overrides=(*overrides, "train.eval_test_each_epoch=true"), knn=True)


def reproduce_table2(
    dataset: str, seeds: int, out: Path, methods: Sequence[str] | None = None, epochs: int | None = None,
    device: str | None = None, data_dir: str | None = None, overrides: Sequence[str] = (), progress: bool = False,
    report_only: bool = False, jobs: int = 1, tuned: str | None = None, config: str | None = None,
) -> dict[str, Any]:
    """Run KNN and every method for each seed (resuming from ``out``) in ``jobs`` processes, each
    method at its best trial in the ``tuned`` storage when given, on ``config`` (default: the
    dataset's shipped config); write results.json, table2.md and p_at_3.png. With ``report_only``,
    train nothing: rewrite the reports from the runs recorded so far."""
    spec = table2_spec(dataset, seeds, methods, run_options(overrides, epochs, device, data_dir, progress), config)
    done = run_comparison(spec, out, report_only, device or "cpu", jobs, tuned)
    configs = done.pop("configs")
    report = {"dataset": dataset, "seeds": seeds, "results": done["results"], "params": done["params"],
              "config": configs[dataset], "environment": done["environment"],
              "seconds_this_invocation": done["seconds_this_invocation"],
              **({"tuned": done["tuned"]} if "tuned" in done else {})}
    write_json(out / "results.json", report)
    atomic_write_text(out / "table2.md", table2_markdown(report) + "\n")
    plot_p_at_3(report, out / "p_at_3.png")
    return report


def table2_markdown(report: dict[str, Any]) -> str:
    """Every metric, mean ± std over seeds, every method (the teacher's row uses privileged inputs)."""
    rows = report["results"][report["dataset"]]
    lines = [method_table(list(rows), metric_columns(rows, "test")), ""]
    lines.append(f"{report['dataset']}, {report['seeds']} seeds, test split of Mulan's distribution; each model is "
                 "the epoch with the best validation MAP. 'teacher' is the supervised teacher (it sees the privileged "
                 "view where there is one) that the distillation methods start from.")
    lines.append(commits_note({report["dataset"]: rows}))
    return "\n".join(lines)


def plot_p_at_3(report: dict[str, Any], path: Path, methods: Sequence[str] = ("kdgan", "nagan")) -> None:
    """Test P@3 against epoch for KDGAN and NaGAN (mean over seeds)."""
    results = report["results"][report["dataset"]]
    series = {m: [[p["test_p@3"] for p in r["curve"] if "test_p@3" in p and p["epoch"] >= 0]
                  for r in results.get(m, [])] for m in methods}  # epoch -1: the start (train.select_start)
    plot_mean_curves(series, path, xlabel="epoch", ylabel="test P@3",
                     title=f"{report['dataset']}, mean over {report['seeds']} seeds")
