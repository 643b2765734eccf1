"""Shared pieces of the benchmarks: command line, machine description, timing, tables, JSON.

Not part of the package: the benchmarks import kdgan like any user would and never change it.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("KDGAN_DATA", REPO.parent / "shared" / "data"))


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--quick", action="store_true", help="small run (under ~2 minutes on 2 CPU cores)")
    p.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR, help=f"datasets folder (default {DATA_DIR})")
    return p


def setup(args: argparse.Namespace) -> torch.device:
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"--device {args.device} asked for but CUDA is not available")
    return torch.device(args.device)


def load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine(device: torch.device) -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "device": str(device),
        "load_average_start": load_average(),
        "clock": clock_name(device),
    }
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu"] = platform.processor()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        info["git_commit"] = None
    return info


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cpu_clock(device: torch.device) -> bool:
    """Whether to time with the process's CPU time rather than the wall clock.

    On a shared machine other processes take turns on the cores, which stretches wall-clock times
    by whatever they happen to run; a one-thread CPU computation's CPU time is nearly immune to
    that. So CPU runs with one thread are timed with ``time.process_time`` (CPU seconds of this
    process); GPU runs and multi-threaded CPU runs with the wall clock (device synchronised)."""
    return device.type == "cpu" and torch.get_num_threads() == 1


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds taken by ``fn()``: CPU seconds (see :func:`cpu_clock`) or wall seconds."""
    clock = time.process_time if cpu_clock(device) else time.perf_counter
    sync(device)
    began = clock()
    fn()
    sync(device)
    return clock() - began


def clock_name(device: torch.device) -> str:
    return "process CPU time (time.process_time)" if cpu_clock(device) else "wall clock (perf_counter, synchronised)"


def interleaved(variants: dict[str, Callable[[], Any]], reps: int, device: torch.device,
                warmup: int = 1) -> dict[str, list[float]]:
    """Time every variant ``reps`` times, rotating their order each repetition so that drift in
    the machine's load falls on all of them alike. ``warmup`` untimed runs of each come first."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        order = names[rep % len(names):] + names[: rep % len(names)]
        for name in order:
            times[name].append(timed(variants[name], device))
    return times


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        if abs(value) >= 0.01:
            return f"{value:.3f}"
        return f"{value:.2e}"
    return str(value)


def finish(args: argparse.Namespace, name: str, info: dict[str, Any], results: Any, began: float,
           text: str) -> None:
    """Print the table(s) and write the JSON (``--out``)."""
    info = dict(info, load_average_end=load_average(), wall_seconds=round(time.perf_counter() - began, 1),
                command=" ".join(["python", *sys.argv]), quick=bool(args.quick))
    print(text)
    print(f"\n{name}: {info['wall_seconds']} s wall; load average start {info['load_average_start']} "
          f"end {info['load_average_end']}; {info['threads']} thread(s); torch {info['torch']}; "
          f"timed with {info['clock']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"benchmark": name, "machine": info, "results": results}, indent=2) + "\n")
        print(f"wrote {args.out}")


# ---------------------------------------------------------------- the players
def save_figure(fig: Any, path: Path) -> None:
    """Lay out, write as PNG (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def mnist_specs() -> dict[str, dict[str, Any]]:
    """The paper's MNIST players: student MLP 784-800-800-10; teacher and D LeNet conv32/conv64/fc1024."""
    lenet = {"name": "lenet", "channels": [32, 64], "kernel": 5, "fc": 1024}
    return {"student": {"name": "mlp", "hidden": [800, 800]}, "teacher": dict(lenet), "discriminator": dict(lenet)}


def digits_specs() -> dict[str, dict[str, Any]]:
    """The players of configs/digits_kdgan.yaml."""
    from kdgan.config import load_config
    from kdgan.training.runs import find_config

    config = load_config(find_config("digits_kdgan"))
    return {role: dict(config.player(role).model) for role in ("student", "teacher", "discriminator")}


def load_data(name: str, data_dir: Path, n: int | None, val_size: int, seed: int = 0):
    from kdgan.config import DataConfig
    from kdgan.data import load_splits

    return load_splits(DataConfig(name=name, dir=str(data_dir), n=n, val_size=val_size), seed)
