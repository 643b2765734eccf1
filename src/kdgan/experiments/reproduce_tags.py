"""``kdgan reproduce table2``: multi-label tag recommendation in the paper's Table 2 style, on
Mulan datasets: Corel5k (the teacher has more capacity) and the two-view sets yeast and emotions
(the teacher also sees a privileged view the student never gets). Every method of the core plus a
KNN tag-propagation baseline; P@k, R@k, F@k, nDCG@k (k = 3, 5), MAP and MRR on the test split of
the epoch with the best validation MAP."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kdgan.config import load_config
from kdgan.data import Splits, load_splits
from kdgan.errors import ConfigError
from kdgan.evaluation.knn import knn_scores
from kdgan.evaluation.ranking import ranking_metrics
from kdgan.experiments.comparison import Comparison, commits_note
from kdgan.training.runs import find_config

TABLE2_METHODS = ("supervised", "mimic", "distn", "noisy", "codis", "nagan", "kdgan")
TABLE2_CONFIGS = {"corel5k": "corel5k_kdgan", "yeast": "yeast_kdgan", "emotions": "emotions_kdgan"}
METRICS = ("p@3", "p@5", "r@3", "r@5", "f@3", "f@5", "ndcg@3", "ndcg@5", "map", "mrr")
KNN_NEIGHBOURS = (5, 10, 20, 50)

# The paper's Table 2 on YFCC100M (popular 200 tags): a different dataset, shown for orientation only.
PAPER_TABLE2 = {"kdgan": {"p@3": ".3047", "p@5": ".1968", "f@3": ".3678", "f@5": ".2526", "map": ".7787",
                          "mrr": ".7905"},
                "knn": {"p@3": ".2320", "p@5": ".1680", "f@3": ".2339", "f@5": ".1633", "map": ".5755",
                        "mrr": ".5852"}}


def knn_baseline(splits: Splits, seed: int) -> dict[str, Any]:
    """KNN tag propagation in the student's feature space; k picked by validation MAP."""
    def scores(k: int, data) -> dict[str, float]:
        predicted = knn_scores(data.x, splits.train.x, splits.train.y, k=min(k, len(splits.train)),
                               metric="cosine", weights="distance")
        return {name: float(v) for name, v in ranking_metrics(predicted, data.y, ks=(3, 5)).items()}

    val = {k: scores(k, splits.val) for k in KNN_NEIGHBOURS}
    best = max(KNN_NEIGHBOURS, key=lambda k: val[k]["map"])
    return {"seed": seed, "k": best, "val": val[best], "test": scores(best, splits.test), "best_test": {},
            "selected_epoch": -1, "seconds": 0.0, "curve": []}


def reproduce_table2(
    dataset: str, seeds: int, out: Path, methods: Sequence[str] | None = None, epochs: int | None = None,
    device: str | None = None, data_dir: str | None = None, overrides: Sequence[str] = (), progress: bool = False,
    report_only: bool = False,
) -> dict[str, Any]:
    """Run KNN and every method for each seed (resuming from ``out``); write results.json,
    table2.md and p_at_3.png. With ``report_only``, train nothing: rewrite the reports from the
    runs recorded so far."""
    if dataset not in TABLE2_CONFIGS:
        raise ConfigError(f"table2 datasets are {', '.join(TABLE2_CONFIGS)}; got {dataset!r}")
    extra = list(overrides)
    extra += [f"train.epochs={epochs}"] if epochs is not None else []
    extra += [f"device={device}"] if device is not None else []
    extra += [f"data.dir={data_dir}"] if data_dir is not None else []
    base = load_config(find_config(TABLE2_CONFIGS[dataset]), extra)
    base = replace(base, train=replace(base.train, progress=progress, eval_test_each_epoch=True))
    comparison = Comparison(["teacher", *(methods or TABLE2_METHODS)], out)
    env = comparison.report_environment(device or "cpu", report_only)
    started = time.perf_counter()
    for seed in range(0 if report_only else seeds):
        splits = load_splits(base.data, seed)
        if not comparison.done(dataset, "knn", seed):
            comparison.record(dataset, "knn", knn_baseline(splits, seed))
        comparison.run(dataset, replace(base, seed=seed), splits)
    report = {
        "dataset": dataset, "seeds": seeds, "results": comparison.results, "params": comparison.params,
        "config": base.to_dict(), "environment": env,
        "seconds_this_invocation": round(time.perf_counter() - started, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "table2.md").write_text(table2_markdown(report) + "\n")
    plot_p_at_3(report, out / "p_at_3.png")
    return report


def table2_markdown(report: dict[str, Any]) -> str:
    """Every metric, mean ± std over seeds, every method (the teacher's row uses privileged inputs)."""
    rows = report["results"][report["dataset"]]
    lines = ["| method | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for method, runs in rows.items():
        cells = []
        for metric in METRICS:
            values = [r["test"][metric] for r in runs if metric in r["test"]]
            if not values:
                cells.append("—")
                continue
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.4f} ± {std:.4f}")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"{report['dataset']}, {report['seeds']} seeds, test split of Mulan's distribution; each model is "
                 "the epoch with the best validation MAP. 'teacher' is the supervised teacher (it sees the privileged "
                 "view where there is one) that the distillation methods start from.")
    lines.append(commits_note({report["dataset"]: rows}))
    return "\n".join(lines)


def plot_p_at_3(report: dict[str, Any], path: Path, methods: Sequence[str] = ("kdgan", "nagan")) -> None:
    """Test P@3 against epoch for KDGAN and NaGAN (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in methods:
        runs = report["results"][report["dataset"]].get(method, [])
        curves = [[p["test_p@3"] for p in r["curve"] if "test_p@3" in p] for r in runs]
        curves = [c for c in curves if c]
        if curves:
            length = min(len(c) for c in curves)
            ax.plot(range(1, length + 1), [statistics.fmean(c[i] for c in curves) for i in range(length)], label=method)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test P@3")
    ax.set_title(f"{report['dataset']}, mean over {report['seeds']} seeds")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
