"""A deployable student: its network, input shape, label count, label names and the input
preprocessing its run applied, saved as plain data in student.pt and reloaded as a module that
takes raw inputs (preprocessing, then network) for prediction and export.

student.pt holds ``state_dict``; ``model`` (``spec``, the network's model spec, or None for a
network kdgan cannot rebuild; ``in_shape``; ``num_classes``; ``role``); ``preprocess`` (see
:mod:`kdgan.data.preprocess`); ``label_names`` (or None); and, when written by a run, ``role``,
``epoch``, ``metric``, ``val_value`` and ``run_info`` (``config``: the run's
:meth:`~kdgan.config.RunConfig.to_dict`, read back typed by :func:`kdgan.config.saved_config`). Only tensors, strings,
numbers, lists and dicts: it loads with ``weights_only=True``.

This module needs no data and no training engine (nor does :func:`load_student`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgan.config import RunConfig, saved_config
from kdgan.data.preprocess import Deployed, Preprocess, check_preprocess, describe, per_image
from kdgan.errors import ConfigError, DataError
from kdgan.models import build_model
from kdgan.storage import atomic_save, load_checkpoint

# The value range each built-in dataset was trained on: images scaled to [0, 1] (MNIST and
# Fashion-MNIST and CIFAR-10 pixels /255, scikit-learn digits /16). Inputs outside it are refused.
INPUT_RANGES: dict[str, tuple[float, float]] = {
    "digits": (0.0, 1.0), "mnist": (0.0, 1.0), "fashion-mnist": (0.0, 1.0), "cifar10": (0.0, 1.0),
}
CUSTOM_HINT = (
    "load it in Python with kdgan.load_student(path, module=YourNetwork(...)) or export it with "
    "kdgan.export_student(path, module=YourNetwork(...)); the command line can only rebuild networks "
    "built from a config's model spec"
)


@dataclass
class LoadedStudent:
    """A student ready to run on raw inputs. ``module`` applies ``preprocess`` and then the
    network (eval mode, CPU); ``module.network`` is the network alone."""

    module: Deployed
    in_shape: tuple[int, ...]
    num_classes: int
    path: Path
    preprocess: Preprocess = field(default_factory=lambda: {"kind": "none"})
    label_names: list[str] | None = None
    config: RunConfig | None = None

    @property
    def method(self) -> str | None:
        """The method that trained it, when a run wrote it."""
        return self.config.method if self.config else None

    @property
    def dataset(self) -> str | None:
        """The dataset it was trained on, when a run wrote it."""
        return self.config.data.name if self.config else None

    @property
    def input_range(self) -> tuple[float, float] | None:
        """The (low, high) range of the training inputs, when the dataset is a known one."""
        return INPUT_RANGES.get(self.dataset or "")

    def describe_preprocess(self) -> dict[str, Any]:
        """The preprocessing applied to raw inputs before the network, for people and JSON."""
        return describe(self.preprocess)


def student_record(
    state_dict: dict[str, Any], *, in_shape: tuple[int, ...] | list[int], num_classes: int,
    preprocess: Preprocess | str | None = None, label_names: list[str] | None = None,
    spec: dict[str, Any] | None = None, role: str = "student",
) -> dict[str, Any]:
    """The plain-data content of a student.pt: what any reader needs to rebuild and run it."""
    in_shape = tuple(int(d) for d in in_shape)
    if label_names is not None:
        label_names = [str(name) for name in label_names]
        if len(label_names) != num_classes:
            raise DataError(f"label_names has {len(label_names)} names but the network has {num_classes} outputs")
    return {
        "role": role, "state_dict": state_dict,
        "model": {"spec": spec, "in_shape": list(in_shape), "num_classes": int(num_classes), "role": role},
        "preprocess": check_preprocess(preprocess, in_shape, "preprocess"), "label_names": label_names,
    }


def save_student(
    module: nn.Module, path: str | Path, *, in_shape: tuple[int, ...], preprocess: Preprocess | str | None = None,
    label_names: list[str] | None = None,
) -> Path:
    """Save any student network with what deployment needs; return the written file.

    ``path`` is a file or a folder (which receives ``student.pt``). ``in_shape`` is one example's
    shape; ``preprocess`` what was done to the training inputs (None or ``"none"``, ``"per_image"``,
    or a ``Splits.preprocess`` dict); ``label_names`` one name per output. The network itself is
    not stored as code: reload it with ``load_student(path, module=...)``.
    """
    folder = Path(path).is_dir() or str(path).endswith(("/", "\\"))
    path = Path(path) / "student.pt" if folder else Path(path)
    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros(1, *in_shape, device=device))
    except Exception as err:  # any error of the user's forward
        raise DataError(f"the network does not accept inputs of shape {tuple(in_shape)}: {err}") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise DataError(f"the network must return logits of shape (batch, labels); it returned {_shape(out)}")
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    atomic_save(student_record(state, in_shape=in_shape, num_classes=out.shape[1], preprocess=preprocess,
                               label_names=label_names), path)
    return path


def _shape(out: object) -> str:
    return f"shape {tuple(out.shape)}" if isinstance(out, torch.Tensor) else type(out).__name__


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


def open_student(run_dir: str | Path, module: nn.Module | None = None) -> LoadedStudent:
    """The student of ``run_dir`` (a run directory or a student.pt) with everything deployment needs.

    ``module`` is the network to load the weights into: needed when the file holds a custom
    network (saved with :func:`save_student` or trained through the Python API), optional otherwise.
    """
    path = student_file(run_dir)
    saved = load_checkpoint(path, map_location="cpu", fix="pass a student.pt written by kdgan")
    if not isinstance(saved, dict) or not isinstance(saved.get("state_dict"), dict):
        raise DataError(
            f"{path} is not a kdgan student.pt (it holds no 'state_dict'; a raw state dict?): load it into your "
            "network and save that with kdgan.save_student(network, path, in_shape=...)"
        )
    run_info = saved.get("run_info") or {}
    info = saved.get("model") or run_info.get("model")
    if not isinstance(info, dict) or not {"in_shape", "num_classes"} <= set(info):
        raise DataError(
            f"{path} does not record its input shape and label count (it was written by an older kdgan): "
            "load the weights into your network and resave it with kdgan.save_student(network, path, in_shape=...)"
        )
    in_shape = tuple(int(d) for d in info["in_shape"])
    config = saved_config(run_info["config"], str(path)) if run_info.get("config") else None
    network = _network(path, saved["state_dict"], info, module)
    preprocess = _preprocess(saved, config, in_shape, path)
    label_names = saved.get("label_names") if "label_names" in saved else _known_names(config, info)
    return LoadedStudent(
        module=Deployed(network, preprocess, in_shape).eval(), in_shape=in_shape,
        num_classes=int(info["num_classes"]), path=path, preprocess=preprocess,
        label_names=list(label_names) if label_names else None, config=config,
    )


def load_student(path: str | Path, module: nn.Module | None = None) -> Deployed:
    """The student of a run directory or student.pt as a module that takes raw inputs (the run's
    preprocessing, then the network), in eval mode on the CPU; see :func:`open_student`."""
    return open_student(path, module).module


def _network(path: Path, state: dict[str, Any], info: dict[str, Any], module: nn.Module | None) -> nn.Module:
    """``module`` (or the network rebuilt from its spec) holding the saved weights."""
    if module is None:
        if not info.get("spec"):
            raise DataError(f"the network in {path} is a custom nn.Module that kdgan cannot rebuild: {CUSTOM_HINT}")
        module = build_model(info["spec"], tuple(info["in_shape"]), int(info["num_classes"]))
    try:
        module.load_state_dict(state)
    except RuntimeError as err:
        raise DataError(f"the weights in {path} do not fit the network given: {err}") from None
    return module.cpu().eval()


def _known_names(config: RunConfig | None, info: dict[str, Any]) -> list[str] | None:
    """For files written before label names were saved: the built-in dataset's names, if any."""
    from kdgan.data import LABEL_NAMES

    names = LABEL_NAMES.get(config.data.name) if config else None
    return names if names and len(names) == int(info["num_classes"]) else None


def _preprocess(saved: dict[str, Any], config: RunConfig | None, in_shape: tuple[int, ...], path: Path) -> Preprocess:
    """The saved preprocessing; for files written before it was saved, what the config says."""
    if "preprocess" in saved:
        return check_preprocess(saved["preprocess"], in_shape, path)
    kind = config.data.normalize if config else None
    if kind == "per_feature":
        raise DataError(
            f"{path} was trained with per_feature normalisation but does not hold the training statistics "
            "(written by an older kdgan): retrain the run to deploy it"
        )
    return per_image() if kind == "per_image" else {"kind": "none"}
