"""``kdgan tune --report``: every study in an Optuna database, as markdown (best parameters per
study and method, the trial table) and Optuna's matplotlib plots (optimisation history, parameter
importance, slice) saved as PNG."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import optuna
from optuna.visualization import matplotlib as optuna_plots

from kdgan.errors import ConfigError
from kdgan.experiments.tune import DEFAULT_HEARTBEAT, as_override, fail_stale_trials, open_storage, storage_url

PLOTS = {"history": optuna_plots.plot_optimization_history, "importance": optuna_plots.plot_param_importances,
         "slice": optuna_plots.plot_slice}


def write_report(source: str, out: Path) -> str:
    """Write ``report.md`` and each study's PNGs into ``out``; ``source`` is a folder holding a
    study.db or a database URL. Returns the markdown."""
    url = storage_url(source)
    storage = open_storage(url, DEFAULT_HEARTBEAT)  # so that stale trials can be marked failed
    names = [s.study_name for s in optuna.get_all_study_summaries(storage=storage)]
    if not names:
        raise ConfigError(f"{source} holds no study yet; run kdgan tune with this --storage first")
    out.mkdir(parents=True, exist_ok=True)
    sections = [f"# Tuning report: {source}\n"]
    for name in names:
        study = optuna.load_study(study_name=name, storage=storage)
        fail_stale_trials(study)  # a killed worker's trial shows as failed, not running
        sections.append(study_section(study, out))
    text = "\n".join(sections)
    (out / "report.md").write_text(text)
    return text


def study_section(study: optuna.Study, out: Path) -> str:
    """One study: its method, best trial and parameters, trial table and plots."""
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    method = study.user_attrs.get("method", "?")
    lines = [f"## {study.study_name} (method {method})\n"]
    if complete:
        best = study.best_trial
        metric = best.user_attrs.get("result", {}).get("metric", "value")
        lines.append(f"Best: trial {best.number}, validation {metric} {best.value:.4f}, with "
                     + " ".join(f"`--set {as_override(k, v)}`" for k, v in best.params.items()) + "\n")
    else:
        lines.append("No trial has completed yet.\n")
    lines += [trial_table(study), ""]
    for kind, path in save_plots(study, out, len(complete)).items():
        lines.append(f"![{kind}]({path.name})" if path else f"({kind}: needs at least two completed trials)")
    return "\n".join(lines) + "\n"


def trial_table(study: optuna.Study) -> str:
    """Every trial: number, state, validation value, parameters, seconds, worker and commit."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    lines = ["| trial | state | value | " + " | ".join(keys) + " | seconds | worker | commit |",
             "|---:|---|---:|" + "---:|" * len(keys) + "---:|---|---|"]
    for t in trials:
        seconds = f"{t.duration.total_seconds():.1f}" if t.duration else ""
        value = "" if t.value is None else f"{t.value:.4f}"
        params = " | ".join(f"{t.params[k]:.4g}" if k in t.params else "" for k in keys)
        lines.append(f"| {t.number} | {t.state.name} | {value} | {params} | {seconds} | "
                     f"{t.user_attrs.get('worker', '')} | {(t.user_attrs.get('commit') or '')[:7]} |")
    return "\n".join(lines)


def save_plots(study: optuna.Study, out: Path, completed: int) -> dict[str, Path | None]:
    """Each of Optuna's plots as ``STUDY-KIND.png`` (None where there are too few trials)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", study.study_name)
    saved: dict[str, Path | None] = {}
    matplotlib.use("Agg")  # files only; no display is needed
    for kind, plot in PLOTS.items():
        if completed < 2:
            saved[kind] = None
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = plot(study)
        figure = np.ravel(axes)[0].figure
        path = out / f"{stem}-{kind}.png"
        figure.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(figure)
        saved[kind] = path
    return saved
