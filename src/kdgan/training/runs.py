"""Run directories: what a run records about itself, and the rule that runs never overwrite."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

import kdgan
from kdgan.config import RunConfig, load_saved_config
from kdgan.errors import ConfigError
from kdgan.storage import atomic_write_text
from kdgan.training.runlock import LOCK_NAME, remove_stale_temporaries, run_lock, stale_temporaries

BUILTIN_CONFIGS = Path(__file__).parents[1] / "configs"


def find_config(name: str) -> Path:
    """A config path, or the name of a built-in config (``digits_kdgan`` or ``digits_kdgan.yaml``)."""
    path = Path(name)
    if path.is_file():
        return path
    builtin = BUILTIN_CONFIGS / (name if name.endswith(".yaml") else f"{name}.yaml")
    if builtin.is_file():
        return builtin
    known = ", ".join(sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))
    raise ConfigError(f"config {name!r} is neither a file nor a built-in config; built-in: {known}")


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str) -> dict[str, Any]:
    return {
        "kdgan": kdgan.__version__, "git_commit": git_commit(), "torch": torch.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(), "device": device,
        "cuda_device": torch.cuda.get_device_name() if device.startswith("cuda") and torch.cuda.is_available()
        else None,
        "command": sys.argv,
    }


def differences(saved: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config mappings, as 'key: saved -> now'."""
    changed = []
    for key in sorted(set(saved) | set(now)):
        a, b = saved.get(key), now.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed


def run_dir_contents(out: Path) -> list[Path]:
    """What ``out`` holds besides its lock file and the temporary files of killed writes."""
    if not out.is_dir():
        return []
    ignored = {LOCK_NAME, *(p.name for p in stale_temporaries(out))}
    return [p for p in out.iterdir() if p.name not in ignored]


def prepare_run_dir(out: Path, config: RunConfig, resume: bool) -> None:
    """Create ``out`` for a new run, or check it holds the run being resumed. Takes (or shares) the
    run's lock, so a second writer is refused before anything is written.

    A folder left by a run killed before it wrote config.yaml (empty, or holding only the lock and
    temporary files) is a new run, with or without ``resume``; with ``resume``, a missing run.json
    is written again."""
    with run_lock(out):
        contents = run_dir_contents(out)
        if contents and not resume:
            if not (out / "last.pt").exists() and (out / "config.yaml").is_file():
                raise ConfigError(f"{out} already holds a run; pass --resume to continue it (it stopped before its "
                                  "first checkpoint, so it starts again from scratch with the same config) or "
                                  "choose another --out")
            raise ConfigError(
                f"{out} already holds a run; pass --resume to continue it or choose another --out"
            )
        remove_stale_temporaries(out)
        resumed = resume and bool(contents)
        if resumed:
            check_saved_config(out, config)
        record_run(out, config.to_dict(), config.device, starts=not resumed)


def check_saved_config(out: Path, config: RunConfig) -> None:
    """Refuse to resume ``out`` when its config.yaml is missing, damaged, or differs from ``config``."""
    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {out} has no config.yaml, so it is not a kdgan run directory (or it was "
                          "damaged); choose another --out to start a new run")
    try:
        saved = load_saved_config(saved_path)
    except ConfigError as err:
        raise ConfigError(f"--resume: the saved {saved_path} is incomplete or damaged ({err}); start a new run "
                          "in another --out") from None
    changed = differences(saved.to_dict(), config.to_dict())
    if changed:
        raise ConfigError(
            f"--resume: the config differs from the one saved in {saved_path} ({'; '.join(changed[:5])}); "
            "resume with the same config and --set values"
        )


def record_run(out: Path, config: dict[str, Any] | None, device: str, starts: bool) -> None:
    """Write what a run records about itself: config.yaml (the resolved config, which ``kdgan
    evaluate`` rebuilds the run from) and run.json (versions, machine, command).

    A resumed run (``starts`` False) only gets what is missing, e.g. the run.json of a run killed
    between its two writes. A run that ``starts`` in ``out`` also replaces a config.yaml that
    differs (an earlier run there), and run.json with it. ``config`` None (a run built from the
    Python API without a config) then removes such a config.yaml, which would describe another run."""
    config_path, info_path = out / "config.yaml", out / "run.json"
    if config is None:
        changed = starts and config_path.is_file()
        if changed:
            config_path.unlink()
    else:
        text = yaml.safe_dump(config, sort_keys=False)
        changed = not config_path.is_file() or (starts and config_path.read_bytes() != text.encode())
        if changed:
            atomic_write_text(config_path, text)
    if changed or not info_path.is_file():
        atomic_write_text(info_path, json.dumps(environment(device), indent=2) + "\n")


@dataclass
class RunResult:
    """What ``Trainer.fit`` returns: the selected student's scores and the per-epoch history."""

    method: str
    selected_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    best_test: dict[str, float]
    seconds: float
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}
