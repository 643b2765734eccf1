"""Run configuration: typed dataclasses read from YAML, with dotted ``--set`` overrides.

Every section is a dataclass; :func:`from_dict` checks keys, types and ranges and raises
:class:`~kdgan.errors.ConfigError` naming the offending key and the valid ones.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import types
import typing
from collections.abc import Hashable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kdgan.errors import ConfigError

SEED_MAX = 2**32 - 1  # NumPy's global seed (seeded with every run's seed) takes 32 bits


def check_finite(section: Any, prefix: str) -> None:
    """Refuse NaN or infinite float fields of a config section built directly in Python (values
    read from YAML are already checked, by key, in :func:`_convert`)."""
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}.{item.name} must be a finite number, got {value}")


@dataclass
class DataConfig:
    """Which dataset, how many labelled examples, how to batch them, and image preprocessing:
    ``augment`` (``crop_flip``: pad-4 random crop and horizontal flip of training batches) and
    ``normalize`` (``per_image`` standardisation, or ``per_feature`` z-scores with the labelled
    training examples' statistics, applied to every split and view).

    A user's own data (see :mod:`kdgan.data.own` and docs/GUIDE.md): ``name: folder`` reads the
    image folder ``dir`` (``image_size`` [H, W] resizes the images, ``channels`` 1 or 3 converts
    them); ``name: arrays`` reads ``train`` and ``test``, each an .npz file or a mapping
    ``{x: FILE, y: FILE, privileged: FILE}`` of .npy/.csv files, relative to ``dir`` when set.
    Without a test folder or file, a stratified ``test_fraction`` (null: 0.2) of the examples is the
    test set; ``yfcc`` reads it too, when its folder has no split.txt."""

    name: str = "digits"
    dir: str | None = None
    n: int | None = 100
    val_size: int = 300
    subset_seed: int | None = None
    batch_size: int = 10
    eval_batch_size: int = 1000
    augment: str | None = None
    normalize: str | None = None
    train: str | dict[str, str] | None = None
    test: str | dict[str, str] | None = None
    test_fraction: float | None = None
    image_size: list[int] | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        if self.normalize not in (None, "per_image", "per_feature"):
            raise ConfigError(f"data.normalize must be null, per_image or per_feature, got {self.normalize!r}")
        if self.augment not in (None, "crop_flip"):
            raise ConfigError(f"data.augment must be null or crop_flip, got {self.augment!r}")
        if self.n is not None and self.n <= 0:
            raise ConfigError(f"data.n must be a positive number of labelled examples, got {self.n}")
        if self.val_size < 1:
            raise ConfigError(
                f"data.val_size must be >= 1: the validation split selects the epoch and is reported; got "
                f"{self.val_size}"
            )
        if self.subset_seed is not None and not 0 <= self.subset_seed <= SEED_MAX:
            raise ConfigError(f"data.subset_seed must be in [0, {SEED_MAX}] or null, got {self.subset_seed}")
        if self.batch_size <= 0 or self.eval_batch_size <= 0:
            raise ConfigError("data.batch_size and data.eval_batch_size must be positive")
        self._check_own_data()

    def _check_own_data(self) -> None:
        """The own-data keys: each read by one reader only, file specs well formed."""
        if self.name != "arrays" and (self.train is not None or self.test is not None):
            raise ConfigError(f"data.train and data.test are read by data.name: arrays only, not {self.name!r}")
        if self.name != "folder" and (self.image_size is not None or self.channels is not None):
            raise ConfigError(
                f"data.image_size and data.channels are read by data.name: folder only, not {self.name!r}"
            )
        if self.test_fraction is not None and self.name not in ("folder", "arrays", "yfcc"):
            raise ConfigError(
                f"data.test_fraction is read by data.name folder, arrays and yfcc only, not {self.name!r}"
            )
        if self.test_fraction is not None and self.test is not None:
            raise ConfigError("data.test_fraction holds out test rows when there is no data.test; set one of them")
        if self.test_fraction is not None and not 0 < self.test_fraction < 1:
            raise ConfigError(f"data.test_fraction must lie strictly between 0 and 1, got {self.test_fraction}")
        if self.image_size is not None and (len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ConfigError(f"data.image_size must be [height, width] in pixels, got {self.image_size}")
        if self.channels not in (None, 1, 3):
            raise ConfigError(f"data.channels must be 1 (grayscale), 3 (RGB) or null (from the images), "
                              f"got {self.channels}")
        if self.name == "arrays" and self.train is None:
            raise ConfigError("data.name: arrays needs data.train: an .npz file holding x and y, or "
                              "{x: FEATURES, y: LABELS} naming .npy/.csv files")
        for key in ("train", "test"):
            spec = getattr(self, key)
            if isinstance(spec, str) and not spec.lower().endswith(".npz"):
                raise ConfigError(f"data.{key}: one file must be an .npz archive holding x and y, got {spec!r}; "
                                  f"name .npy/.csv files per array as {{x: FEATURES, y: LABELS}}")
            if isinstance(spec, dict):
                unknown = sorted(set(spec) - {"x", "y", "privileged"})
                if unknown or not {"x", "y"} <= set(spec):
                    raise ConfigError(f"data.{key} must map x (features), y (labels) and optionally privileged "
                                      f"to files, got keys {sorted(spec)}")
                if not all(isinstance(v, str) for v in spec.values()):
                    raise ConfigError(f"data.{key}: every entry must be a file path, got {spec}")


@dataclass
class OptimizerConfig:
    """One player's optimizer and learning-rate schedule (exponential decay per game epoch).
    ``game_lr``, when set, replaces ``lr`` from the first epoch of the game on: a pretrained
    player often needs smaller steps once its gradients come from the adversarial game."""

    name: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    lr_decay: float = 1.0
    game_lr: float | None = None

    def __post_init__(self) -> None:
        check_finite(self, "optimizer")
        if self.name not in ("adam", "adamw", "sgd"):
            raise ConfigError(f"optimizer.name must be one of adam, adamw, sgd; got {self.name!r}")
        if self.lr <= 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.lr}")
        if self.game_lr is not None and self.game_lr <= 0:
            raise ConfigError(f"optimizer.game_lr must be > 0 or null (the same as lr), got {self.game_lr}")
        if not 0 < self.lr_decay <= 1:
            raise ConfigError(f"optimizer.lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.weight_decay < 0:
            raise ConfigError(f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"optimizer.momentum must be in [0, 1), got {self.momentum}")


@dataclass
class PlayerConfig:
    """A player: its network, optimizer, passes over the training set per round, pretraining
    epochs, and ``init``, an optional weights file to start from (e.g. a run's student.pt)."""

    model: dict[str, Any] = field(default_factory=lambda: {"name": "mlp"})
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    passes: int = 1
    pretrain_epochs: int = 0
    init: str | None = None

    def __post_init__(self) -> None:
        if "name" not in self.model:
            raise ConfigError("a player's model needs a 'name' (see `kdgan models`)")
        for key, value in self.model.items():  # model options are free-form: _convert never sees them
            numbers = value if isinstance(value, list) else [value]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                raise ConfigError(f"model.{key} must hold finite numbers, got {value!r}")
        if self.passes < 1:
            raise ConfigError(f"passes must be >= 1, got {self.passes}")
        if self.pretrain_epochs < 0:
            raise ConfigError(f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")


SELECT_METRICS = ("auto", "accuracy", "map", "mrr", "p@3", "p@5", "r@3", "r@5", "f@3", "f@5", "ndcg@3", "ndcg@5")


@dataclass
class TrainConfig:
    """The training loop: epochs, evaluation, model selection (``select_metric``: ``auto`` is
    accuracy, or MAP for multi-label data), divergence handling, checkpoints, progress display,
    ``tensorboard`` (also log every epoch record to OUT_DIR/tensorboard), ``precision`` (``bf16``:
    autocast the players' forward passes to bfloat16) and ``compile`` (``torch.compile`` each
    player's network); both are off by default since they did not help on CPU. ``cache_outputs``
    reuses the eval-mode logits of players that are not updating (see :mod:`kdgan.training.cache`); it is
    exact, and skipped by itself when training inputs are augmented or under torchrun.
    ``report_players`` also scores, each game epoch, the other classifier (e.g. the teacher) on
    validation and the discriminator's accuracy on validation pairs; off saves that evaluation.
    ``diagnostics`` also logs, each game epoch, the gradient norm of every term of every updated
    player's loss on one fixed batch (:mod:`kdgan.training.diagnostics`); it never changes training."""

    epochs: int = 30
    eval_test_each_epoch: bool = False
    select_metric: str = "auto"
    grad_clip: float | None = None
    on_nonfinite: str = "stop"
    checkpoint_every: int = 1
    progress: bool = True
    tensorboard: bool = False
    precision: str = "fp32"
    compile: bool = False
    cache_outputs: bool = True
    report_players: bool = True
    diagnostics: bool = False

    def __post_init__(self) -> None:
        check_finite(self, "train")
        if self.epochs < 0:
            raise ConfigError(f"train.epochs must be >= 0, got {self.epochs}")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ConfigError(f"train.on_nonfinite must be 'stop' or 'skip', got {self.on_nonfinite!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ConfigError(
                f"train.select_metric must be one of {', '.join(SELECT_METRICS)}, got {self.select_metric!r}"
            )
        if self.precision not in ("fp32", "bf16"):
            raise ConfigError(f"train.precision must be fp32 or bf16, got {self.precision!r}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"train.checkpoint_every must be >= 0 epochs, got {self.checkpoint_every}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip must be > 0 or null, got {self.grad_clip}")


@dataclass
class RunConfig:
    """Everything one training run needs. ``options`` is checked against the method's Options;
    ``privileged`` lists the roles that see teacher-only inputs when the data has them (the
    teacher, optionally the discriminator; never the student); ``label_loss`` is the supervised
    loss, ``softmax`` (over labels, the paper's choice also for multi-label data) or ``sigmoid``."""

    method: str = "kdgan"
    seed: int = 0
    device: str = "cpu"
    threads: int | None = 1
    data: DataConfig = field(default_factory=DataConfig)
    student: PlayerConfig = field(default_factory=PlayerConfig)
    teacher: PlayerConfig | None = None
    discriminator: PlayerConfig | None = None
    options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    privileged: list[str] = field(default_factory=lambda: ["teacher"])
    label_loss: str = "softmax"

    def __post_init__(self) -> None:
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ConfigError(f"device must be cpu, cuda, cuda:N or auto; got {self.device!r}")
        if "student" in self.privileged or not set(self.privileged) <= {"teacher", "discriminator"}:
            raise ConfigError(f"privileged may list teacher and discriminator only, got {self.privileged}")
        if self.label_loss not in ("softmax", "sigmoid"):
            raise ConfigError(f"label_loss must be softmax or sigmoid, got {self.label_loss!r}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1 or null (PyTorch's default), got {self.threads}")
        if not 0 <= self.seed <= SEED_MAX:
            raise ConfigError(f"seed must be in [0, {SEED_MAX}], got {self.seed}")

    def player(self, role: str) -> PlayerConfig | None:
        return getattr(self, role)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert ``value`` to annotation ``tp`` or raise a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0])
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{path} must be a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a mapping, got {value!r}")
        return dict(value)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{path} must be true or false, got {value!r}")
        return value
    if tp is float:
        number: float | None = None
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            with contextlib.suppress(ValueError):
                number = float(value)
        if number is None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ConfigError(f"{path} must be a number, got {value!r}")
        if number is None:
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float's range
                number = math.inf
        if not math.isfinite(number):  # NaN or inf would only surface later as a diverged loss
            raise ConfigError(f"{path} must be a finite number, got {value!r}")
        return number
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{path} must be an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{path} must be a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {_type_name(tp)}")


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys and wrong types."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown config key '{key}'; valid keys here: {', '.join(fields)}")
    kwargs = {
        name: _convert(value, hints[name], f"{path}.{name}" if path else name)
        for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None


class DuplicateKeyError(yaml.YAMLError):
    """A YAML mapping holds one key twice (plain PyYAML would keep the last value without a word)."""

    def __init__(self, key: Any, first: yaml.Mark, second: yaml.Mark) -> None:
        super().__init__(f"key {key!r} appears twice in one mapping, on line {first.line + 1} and line "
                         f"{second.line + 1}; keep one of them")


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no arbitrary objects) that refuses duplicate mapping keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<' merges: later keys override on purpose
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise DuplicateKeyError(key, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(text: str) -> Any:
    """Parse YAML safely, refusing duplicate keys (raises yaml.YAMLError or DuplicateKeyError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a subclass of SafeLoader


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=[2, 3]"]`` into a nested mapping; values are parsed as YAML."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. options.alpha=0.5), got {pair!r}")
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is set both as a value and as a section")
        try:
            node[leaf] = read_yaml(raw)
        except DuplicateKeyError as err:
            raise ConfigError(f"--set {key}: {err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({err.problem}); quote it or fix "
                              "its brackets") from None
    return nested


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge ``update`` into a copy of ``base``: non-empty mappings merge, anything else
    (an empty mapping included, e.g. ``--set options={}``) replaces."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from defaults), apply ``--set`` overrides, validate."""
    raw: Any = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist (see the configs/ folder)")
        try:
            raw = read_yaml(path.read_text(encoding="utf-8")) or {}
        except UnicodeDecodeError as err:
            raise ConfigError(f"config file {path} is not UTF-8 text ({err}); pass a YAML config file") from None
        except DuplicateKeyError as err:
            raise ConfigError(f"config file {path}: {err}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping at its top level")
    raw = merge(raw, parse_overrides(overrides or []))
    config = from_dict(RunConfig, raw)
    check_dataset_name(config.data.name)
    return config


def check_dataset_name(name: str) -> None:
    """Refuse a ``data.name`` that no reader knows, when the config is read rather than at train
    time. The known names are the keys of :data:`kdgan.data.DATASETS`, the one list to extend."""
    from kdgan.data import DATASETS  # imported here: kdgan.data imports this module

    if name not in DATASETS:
        raise ConfigError(f"data.name {name!r} is not a known dataset; known: {', '.join(DATASETS)}")


def dump_config(config: RunConfig, path: Path) -> None:
    """Write the resolved config atomically (a run killed mid-write leaves no half file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    tmp.replace(path)
