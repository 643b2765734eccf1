"""A finished run's deployable student with what is known about its inputs, for export and
prediction. The network itself is rebuilt by :func:`kdgan.build.load_student`; this adds the
input shape, label count and run settings recorded next to it in student.pt."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgan.build import load_student
from kdgan.errors import ConfigError, DataError

# The value range each built-in dataset was trained on: images scaled to [0, 1] (MNIST and
# Fashion-MNIST and CIFAR-10 pixels /255, scikit-learn digits /16). Inputs outside it are refused.
INPUT_RANGES: dict[str, tuple[float, float]] = {
    "digits": (0.0, 1.0), "mnist": (0.0, 1.0), "fashion-mnist": (0.0, 1.0), "cifar10": (0.0, 1.0),
}


@dataclass
class LoadedStudent:
    """The student network (eval mode, CPU) and its recorded input shape and label count."""

    module: nn.Module
    in_shape: tuple[int, ...]
    num_classes: int
    path: Path
    method: str | None = None
    dataset: str | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def input_range(self) -> tuple[float, float] | None:
        """The (low, high) range of the training inputs, when the dataset is a known one."""
        return INPUT_RANGES.get(self.dataset or "")

    @property
    def standardize(self) -> bool:
        """Whether the run standardised every image (data.standardize): new inputs must be too."""
        return bool((self.config.get("data") or {}).get("standardize", False))


def student_file(run_dir: str | Path) -> Path:
    """The student.pt of ``run_dir`` (a run directory or the file itself), checked to exist."""
    path = Path(run_dir)
    if not path.exists():
        raise ConfigError(f"run directory {path} does not exist; pass a run directory written by `kdgan train`")
    if path.is_dir():
        file = path / "student.pt"
        if not file.is_file():
            hint = (" (it has last.pt: the run stopped before its student was selected; resume it with "
                    "`kdgan train CONFIG --out DIR --resume`)") if (path / "last.pt").is_file() else ""
            raise ConfigError(f"{path} holds no student.pt{hint}; pass the directory of a finished run")
        return file
    return path


def open_student(run_dir: str | Path) -> LoadedStudent:
    """Load the student of ``run_dir`` with its input shape, label count, method and dataset."""
    path = student_file(run_dir)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # a corrupt or foreign file: torch raises many types
        raise DataError(f"{path} could not be read as a kdgan student.pt ({err})") from None
    info = saved.get("run_info", {}).get("model") if isinstance(saved, dict) else None
    if not info:
        raise DataError(
            f"{path} does not record its network (run_info['model']); it was written by an older kdgan "
            "or is a raw state dict: retrain, or rebuild the network yourself and load the weights"
        )
    config = saved["run_info"].get("config") or {}
    return LoadedStudent(
        module=load_student(path), in_shape=tuple(int(d) for d in info["in_shape"]),
        num_classes=int(info["num_classes"]), path=path, method=config.get("method"),
        dataset=(config.get("data") or {}).get("name"), config=config,
    )
