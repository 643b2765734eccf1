"""Learning curves drawn to PNG files: of one or several runs from their metrics.jsonl
(``kdgan plot``), and of a comparison's methods averaged over seeds (``kdgan reproduce``).

Matplotlib is used through its object-oriented API on the Agg canvas (no pyplot): nothing about
the process's plotting backend changes, and no display is needed.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from kdgan.errors import ConfigError, DataError, KDGANError, UnsafeFileError

XAxis = Literal["epoch", "seconds"]
X_AXES = ("epoch", "seconds")
X_LABELS = {"epoch": "epoch", "seconds": "training time (s)"}
LINESTYLES = {"train": "-", "pretrain-teacher": ":", "pretrain-student": "--", "pretrain-discriminator": "-."}


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch records of a run directory's metrics.jsonl, in order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run directory {run_dir} does not exist")
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise DataError(f"{run_dir} has no metrics.jsonl; pass the directory of a run written by `kdgan train`")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path} line {number} is not valid JSON ({err}); the file is corrupt") from None
        if not isinstance(record, dict):
            raise DataError(f"{path} line {number} is not a JSON object")
        records.append(record)
    if not records:
        raise DataError(f"{path} is empty: the run has not finished an epoch yet")
    return records


def run_label(run_dir: str | Path) -> str:
    """The run's method from its config.yaml (or student.pt), read as typed config, else the
    directory name (for a damaged, partial or older run)."""
    from kdgan.config import saved_config
    from kdgan.config.files import read_config_file
    from kdgan.storage import load_checkpoint

    run_dir = Path(run_dir)
    if (run_dir / "config.yaml").is_file():
        try:
            config = run_dir / "config.yaml"
            return saved_config(read_config_file(config), str(config)).method
        except (KDGANError, yaml.YAMLError, OSError):
            pass
    if (run_dir / "student.pt").is_file():
        try:
            saved = load_checkpoint(run_dir / "student.pt", map_location="cpu")
            return saved_config(saved["run_info"]["config"], str(run_dir / "student.pt")).method
        except UnsafeFileError:  # a file that could run code is an error, not a missing label
            raise
        except (KDGANError, KeyError, TypeError):  # a damaged or older file
            pass
    return run_dir.name


def curves(
    records: Sequence[dict[str, Any]], metric: str, x: XAxis = "epoch", include_pretrain: bool = False,
) -> list[tuple[str, list[float], list[float]]]:
    """(stage, xs, ys) for each stage that records ``metric``. With pretraining stages included
    and ``x="epoch"``, epochs count on across stages so that the stages follow each other."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    offset, last_stage, stage_epochs = 0, None, 0
    for record in records:
        stage = str(record.get("stage", "train"))
        if stage != last_stage:
            offset += stage_epochs
            last_stage, stage_epochs = stage, 0
        stage_epochs += 1
        if stage != "train" and not include_pretrain:
            continue
        value = record.get(metric)
        if not _is_number(value):
            continue
        position = record.get("seconds") if x == "seconds" else record.get("epoch", stage_epochs - 1)
        if not _is_number(position):
            continue
        if x == "epoch" and include_pretrain:
            position = offset + position
        xs, ys = out.setdefault(stage, ([], []))
        xs.append(float(position))
        ys.append(float(value))
    return [(stage, xs, ys) for stage, (xs, ys) in out.items()]


def plot_runs(
    run_dirs: Sequence[str | Path], out: str | Path, metric: str = "val_accuracy", x: XAxis = "epoch", *,
    include_pretrain: bool = False, labels: Sequence[str] | None = None, title: str | None = None,
    size: tuple[float, float] = (7.0, 4.5), dpi: int = 100,
) -> Path:
    """Draw ``metric`` against ``x`` for each run into the PNG file ``out``; return its path.

    Only the game's records (stage ``train``) are drawn unless ``include_pretrain``; pretraining
    stages are then dotted or dashed (their ``val_accuracy`` is the pretrained player's, e.g. the teacher's).
    Labels default to each run's method, with the directory name added when methods repeat.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if isinstance(run_dirs, str | Path):
        run_dirs = [run_dirs]
    if not run_dirs:
        raise ConfigError("plot needs at least one run directory")
    if x not in X_AXES:
        raise ConfigError(f"x must be one of {', '.join(X_AXES)}, got {x!r}")
    if labels is not None and len(labels) != len(run_dirs):
        raise ConfigError(f"{len(labels)} labels given for {len(run_dirs)} runs; give one per run")
    out = _png_path(out, metric)
    series = []
    for run_dir in run_dirs:
        records = read_metrics(run_dir)
        stages = curves(records, metric, x, include_pretrain)
        if not stages:
            raise DataError(_missing_metric(run_dir, records, metric, include_pretrain))
        series.append(stages)
    if labels is None:
        labels = default_labels(run_dirs)

    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for index, (label, stages) in enumerate(zip(labels, series, strict=True)):
        color = f"C{index % 10}"
        for stage, xs, ys in stages:
            pretrain = stage != "train"
            axes.plot(xs, ys, color=color, linestyle=LINESTYLES.get(stage, "--"), marker="." if len(xs) < 50 else None,
                      alpha=0.7 if pretrain else 1.0, label=f"{label} ({stage})" if include_pretrain else label)
    axes.set_xlabel(X_LABELS[x])
    axes.set_ylabel(metric)
    axes.set_title(title or metric)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, format="png")
    except OSError as err:  # a parent that is a file, no permission, disk full
        blocker = next((parent for parent in out.parents if parent.exists()), None)
        reason = f"{blocker} is a file, not a folder" if blocker and not blocker.is_dir() else err.strerror or err
        raise ConfigError(f"cannot write the plot {out} ({reason}); choose another --out") from None
    return out


def plot_mean_curves(
    series: Mapping[str, Sequence[Sequence[float]]], out: Path, *, xlabel: str, ylabel: str, title: str,
    scale: float = 1.0, size: tuple[float, float] = (6.0, 4.0), dpi: int = 100,
) -> dict[str, list[float]]:
    """One line per label: its curves (e.g. one per seed) averaged epoch by epoch over their common
    length and multiplied by ``scale``, against epochs 1, 2, ...; labels without a curve are left
    out. Drawn to the PNG file ``out`` (the comparisons' curves.png and p_at_3.png); returns the
    lines drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    drawn: dict[str, list[float]] = {}
    for label, runs in series.items():
        runs = [run for run in runs if run]
        if not runs:
            continue
        length = min(len(run) for run in runs)
        drawn[label] = [statistics.fmean(run[i] for run in runs) * scale for i in range(length)]
        axes.plot(range(1, length + 1), drawn[label], label=label)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if drawn:
        axes.legend()
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, format="png")
    return drawn


def _png_path(out: str | Path, metric: str) -> Path:
    """The PNG file plot_runs writes: ``out`` itself, or METRIC.png inside ``out`` when it is a folder."""
    if str(out).endswith(("/", os.sep)) or Path(out).is_dir():  # a folder: the plot goes in it
        out = Path(out) / f"{metric}.png"
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"plot output {out} must be a .png file (or a folder to write METRIC.png in)")
    if out.is_dir():
        raise ConfigError(f"plot output {out} is a folder; choose another file name")
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def default_labels(run_dirs: Sequence[str | Path]) -> list[str]:
    methods = [run_label(d) for d in run_dirs]
    return [m if methods.count(m) == 1 else f"{m} ({Path(d).name})" for m, d in zip(methods, run_dirs, strict=True)]


def _missing_metric(run_dir: str | Path, records: Sequence[dict[str, Any]], metric: str, pretrain: bool) -> str:
    """An error naming the numeric keys that the records do have."""
    chosen = [r for r in records if pretrain or r.get("stage", "train") == "train"]
    keys = sorted({k for r in chosen for k, v in r.items() if _is_number(v) and k not in ("epoch", "seconds")})
    where = "its records" if pretrain else "its training (stage 'train') records"
    if not chosen:
        return f"{run_dir} has no stage 'train' records yet; pass include_pretrain (--pretrain) to plot pretraining"
    return f"metric {metric!r} is not in {where} of {run_dir}; available: {', '.join(keys) or 'none'}"
