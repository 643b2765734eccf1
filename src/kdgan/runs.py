"""Run directories: what a run records about itself, and the rule that runs never overwrite."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

import kdgan
from kdgan.checkpoint import atomic_write_text
from kdgan.config import RunConfig, dump_config, load_config
from kdgan.errors import ConfigError

BUILTIN_CONFIGS = Path(__file__).parent / "configs"


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


def prepare_run_dir(out: Path, config: RunConfig, resume: bool) -> None:
    """Create ``out`` for a new run, or check it holds the run being resumed."""
    holds_run = out.exists() and any(out.iterdir())
    if holds_run and not resume:
        raise ConfigError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )
    if resume and holds_run:
        saved_path = out / "config.yaml"
        if not saved_path.is_file():
            raise ConfigError(f"--resume: {out} has no config.yaml, so it is not a kdgan run directory (or it was "
                              "damaged); choose another --out to start a new run")
        try:
            raw = yaml.safe_load(saved_path.read_text())
            missing = sorted(set(config.to_dict()) - set(raw or {})) if isinstance(raw, dict | None) else ["all"]
            if missing:
                raise ConfigError(f"keys missing: {', '.join(missing)}")
            saved = load_config(saved_path)
        except (ConfigError, yaml.YAMLError) as err:
            raise ConfigError(f"--resume: the saved {saved_path} is incomplete or damaged ({err}); start a new run "
                              "in another --out") from None
        changed = differences(saved.to_dict(), config.to_dict())
        if changed:
            raise ConfigError(
                f"--resume: the config differs from the one saved in {saved_path} ({'; '.join(changed[:5])}); "
                "resume with the same config and --set values"
            )
        return
    out.mkdir(parents=True, exist_ok=True)
    dump_config(config, out / "config.yaml")
    atomic_write_text(out / "run.json", json.dumps(environment(config.device), indent=2) + "\n")
