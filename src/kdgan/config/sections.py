"""The config's sections: one dataclass each, checking its own values' ranges when built.

:class:`RunConfig` holds everything one training run needs; :mod:`kdgan.config.parsing` builds
it from a mapping (checking keys and types), :mod:`kdgan.config.files` from YAML files.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from kdgan.errors import ConfigError

SEED_MAX = 2**32 - 1  # NumPy's global seed (seeded with every run's seed) takes 32 bits

# Keys one method's settings cannot change (``per_method``, ``--set METHOD:key=value``): in a
# comparison the data and the pretrained players are shared by every method.
SHARED_KEYS = ("method", "seed", "data", "teacher.model", "student.model", "teacher.pretrain_epochs",
               "student.pretrain_epochs")


def check_finite(section: Any, prefix: str) -> None:
    """Refuse NaN or infinite float fields of a config section built directly in Python (values
    read from YAML are already checked, by key, in :func:`_convert`)."""
    for item in dataclasses.fields(section):
        value = getattr(section, item.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{prefix}.{item.name} must be a finite number, got {value}")


@dataclass
class AffineConfig:
    """The ranges of ``data.augment: affine`` (see :func:`kdgan.data.augment.random_affine`): per
    image an angle uniform in [-rotation, rotation] degrees, a shift uniform in [-shift, shift] of the
    size along each axis, a zoom uniform in [1 - zoom, 1 + zoom]. Defaults: the KDGAN authors' MNIST values."""

    rotation: float = 15.0
    shift: float = 0.1
    zoom: float = 0.1

    def __post_init__(self) -> None:
        check_finite(self, "data.affine")
        if self.rotation < 0 or self.shift < 0 or not 0 <= self.zoom < 1:
            raise ConfigError(f"data.affine needs rotation >= 0, shift >= 0 and 0 <= zoom < 1, got rotation "
                              f"{self.rotation}, shift {self.shift}, zoom {self.zoom}")


@dataclass
class DataConfig:
    """Which dataset, how many labelled examples, how to batch them, and image preprocessing:
    ``augment`` (``crop_flip``: pad-4 random crop and horizontal flip of training batches;
    ``affine``: small random rotation, shift and zoom of image batches, ranges in ``affine``, an
    :class:`AffineConfig`, null for its defaults), ``unlabelled`` (how many further training-pool
    examples, or ``all``, join each game step as unlabelled inputs: every term that needs no label
    sees them, label terms never do; ``unlabelled_batch_size`` of them per step, null: ``batch_size``) and
    ``normalize`` (``per_image`` standardisation, or ``per_feature`` z-scores with the labelled
    training examples' statistics, applied to every split and view).

    A user's own data (see :mod:`kdgan.data.own` and docs/GUIDE.md): ``name: folder`` reads the
    image folder ``dir`` (``image_size`` [H, W] resizes the images, ``channels`` 1 or 3 converts
    them); ``name: arrays`` reads ``train`` and ``test``, each an .npz file or a mapping
    ``{x: FILE, y: FILE, privileged: FILE}`` of .npy/.csv files, relative to ``dir`` when set.
    Without a test folder or file, a stratified ``test_fraction`` (null: 0.2) of the examples is the
    test set; ``yfcc`` reads it too, when its folder has no split.txt.

    ``dir`` is the data directory of the built-in datasets too (``--data-dir``, else
    ``$KDGAN_DATA``; see :mod:`kdgan.data.location`); ``verify`` checks their files' published
    SHA-256 before reading them (MNIST, Fashion-MNIST, the CIFAR-10 JPEG zips, the Mulan sets)."""

    name: str = "digits"
    dir: str | None = None
    n: int | None = 100
    val_size: int = 300
    subset_seed: int | None = None
    batch_size: int = 10
    eval_batch_size: int = 1000
    augment: str | None = None
    affine: AffineConfig | None = None
    unlabelled: int | str = 0
    unlabelled_batch_size: int | None = None
    normalize: str | None = None
    train: str | dict[str, str] | None = None
    test: str | dict[str, str] | None = None
    test_fraction: float | None = None
    image_size: list[int] | None = None
    channels: int | None = None
    verify: bool = False

    def __post_init__(self) -> None:
        check_finite(self, "data")
        if self.normalize not in (None, "per_image", "per_feature"):
            raise ConfigError(f"data.normalize must be null, per_image or per_feature, got {self.normalize!r}")
        if self.augment not in (None, "crop_flip", "affine"):
            raise ConfigError(f"data.augment must be null, crop_flip or affine, got {self.augment!r}")
        if self.affine is not None and self.augment != "affine":
            raise ConfigError(f"data.affine sets the ranges of data.augment: affine, but data.augment is "
                              f"{self.augment!r}; set data.augment: affine or drop data.affine")
        if self.unlabelled != "all" and (not isinstance(self.unlabelled, int) or self.unlabelled < 0):
            raise ConfigError(f"data.unlabelled must be a number of training-pool examples >= 0 or 'all', got "
                              f"{self.unlabelled!r}")
        if self.unlabelled_batch_size is not None and not self.unlabelled:
            raise ConfigError("data.unlabelled_batch_size is read only with data.unlabelled; set data.unlabelled "
                              "(a count or 'all') or drop data.unlabelled_batch_size")
        if self.unlabelled_batch_size is not None and self.unlabelled_batch_size < 1:
            raise ConfigError(f"data.unlabelled_batch_size must be >= 1 or null (data.batch_size), got "
                              f"{self.unlabelled_batch_size}")
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
            from kdgan.models import MODELS  # imported here: only this error needs the networks

            raise ConfigError(f"a player's model needs a 'name', one of {', '.join(MODELS)}")
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
    player's loss on one fixed batch (:mod:`kdgan.training.diagnostics`); it never changes training.
    ``select_start`` lets the game's model selection also choose the classifier the game starts
    from (scored before the first game epoch and logged as epoch -1): the run then never selects a
    student worse on validation than the one it was given (a game that only hurts ends where it
    began); it never changes training."""

    epochs: int = 30
    eval_test_each_epoch: bool = False
    select_metric: str = "auto"
    select_start: bool = False
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
    loss, ``softmax`` (over labels, the paper's choice also for multi-label data) or ``sigmoid``.
    ``per_method`` maps a method to ``key=value`` items that hold for that method's runs only
    (e.g. its validation-chosen game learning rate): applied when the config is loaded for that
    method (``kdgan train``, ``kdgan tune --method``) and to that method's runs in a comparison,
    always under ``--set``; they may not change what a comparison shares (:data:`SHARED_KEYS`)."""

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
    per_method: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for method, items in self.per_method.items():
            check_method_items(method, items)
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


def check_method_items(method: Any, items: Any) -> None:
    """Refuse a ``per_method`` entry that is not a list of ``key=value`` items, or that changes a
    key every method of a comparison shares."""
    if method == "supervised":
        raise ConfigError("per_method.supervised: the supervised teacher and student are shared by every method of "
                          "a comparison; set their options at the top level of the config")
    if not isinstance(items, list) or not all(isinstance(item, str) and "=" in item for item in items):
        raise ConfigError(f"per_method.{method} must be a list of key=value items, e.g. "
                          f"[student.optimizer.game_lr=1e-4, options.beta=2]; got {items!r}")
    for item in items:
        key = item.partition("=")[0].strip()
        if any(key == shared or key.startswith(shared + ".") for shared in SHARED_KEYS):
            raise ConfigError(f"per_method.{method}: {item!r} changes {key}, which every method of a comparison "
                              "shares (the data and the pretrained players); set it at the top level of the config")
