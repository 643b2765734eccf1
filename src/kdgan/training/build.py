"""From a :class:`~kdgan.config.RunConfig` to data, players, a method and a trainer, and (for
``kdgan train``) a run directory it trains into."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from kdgan.config import RunConfig, from_dict
from kdgan.config.sections import AffineConfig
from kdgan.data import Splits, load_splits
from kdgan.data.augment import random_affine, random_crop_flip
from kdgan.deploy.student_file import load_student as load_student  # the deployable student; kept importable here
from kdgan.errors import ConfigError, DataError, OutputError
from kdgan.methods import Method, get_method
from kdgan.models import build_model
from kdgan.models.two_view import TwoView
from kdgan.storage import load_checkpoint, output_error
from kdgan.training.distributed import DistInfo, barrier, setup
from kdgan.training.engine import Trainer
from kdgan.training.players import Player
from kdgan.training.runlock import check_not_in_use, check_output_dir, run_lock
from kdgan.training.runs import RunResult, prepare_run_dir


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for a config's ``device``; under torchrun, ``cuda`` means this process's
    GPU (``cuda:LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but CUDA is not available; use device=cpu")
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device(name)


def load_weights(path: str | Path, role: str = "student") -> dict[str, Any]:
    """A state dict from a file: a raw state dict, a run's student.pt, or a run's last.pt (the
    ``role`` player's weights in it)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"weights file {path} does not exist")
    state = load_checkpoint(path, map_location="cpu", fix="point init at a state dict, a run's student.pt or last.pt")
    if isinstance(state, dict) and "state_dict" in state:
        return state["state_dict"]
    if isinstance(state, dict) and "players" in state:
        if role not in state["players"]:
            raise ConfigError(f"{path} holds no {role} (it has {', '.join(state['players'])})")
        return state["players"][role]["module"]
    return state


def build_players(config: RunConfig, splits: Splits, roles: tuple[str, ...], device: torch.device) -> dict[str, Player]:
    """One player per role; roles in ``config.privileged`` get both views when the data has them."""
    in_shape = tuple(splits.train.x.shape[1:])
    privileged = splits.train.privileged
    players = {}
    for role in roles:
        spec = config.player(role)
        if spec is None:
            raise ConfigError(f"method {config.method!r} needs a '{role}' section in the config")
        try:
            if role in config.privileged and privileged is not None:
                width = math.prod(in_shape) + math.prod(privileged.shape[1:])
                module: torch.nn.Module = TwoView(build_model(spec.model, (width,), splits.num_classes))
            else:
                module = build_model(spec.model, in_shape, splits.num_classes)
        except ConfigError as err:
            raise ConfigError(f"{role}.model: {err}") from None
        if spec.init:
            try:
                module.load_state_dict(load_weights(spec.init, role))
            except RuntimeError as err:
                raise DataError(f"{role}.init {spec.init} does not fit the {role} network: {err}") from None
        players[role] = Player.create(module.to(device), spec.optimizer, spec.passes)
    return players


def method_options(config: RunConfig) -> Any:
    """The method's options, checked (unknown keys, types, ranges) without building anything."""
    return from_dict(get_method(config.method).Options, config.options, "options")


def build_method(config: RunConfig, splits: Splits, device: torch.device) -> Method:
    cls = get_method(config.method)
    options = method_options(config)
    players = build_players(config, splits, cls.needed_roles(options), device)
    return cls(players, options, privileged_roles=tuple(config.privileged), label_loss=config.label_loss)


def build_trainer(
    config: RunConfig, out_dir: str | Path | None = None, splits: Splits | None = None,
    dist_info: DistInfo | None = None,
) -> Trainer:
    """Everything a run needs, on the configured device and thread count. Under ``torchrun``
    the process group is joined here (see :mod:`kdgan.training.distributed`)."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    dist_info = dist_info or setup(config.device)
    device = resolve_device(config.device, dist_info.local_rank)
    torch.manual_seed(config.seed)  # network initialisation is part of the seeded run
    data_from_config = splits is None  # else kdgan evaluate could not reload the run's data
    if splits is None:
        splits = load_splits(config.data, config.seed)
    splits = splits.to(device)
    method = build_method(config, splits, device)
    pretrain = pretrain_epochs(config, method)
    evaluated = config.player(method.evaluated)
    model_info = {"spec": evaluated.model, "in_shape": list(splits.train.x.shape[1:]),
                  "num_classes": splits.num_classes, "role": method.evaluated}
    return Trainer(
        method, splits, config.train, batch_size=config.data.batch_size,
        eval_batch_size=config.data.eval_batch_size, pretrain_epochs=pretrain, seed=config.seed,
        out_dir=out_dir,
        run_info={"config": config.to_dict(), "model": model_info, "data_from_config": data_from_config},
        augment=training_augmentation(config), dist_info=dist_info,
        unlabelled_batch_size=config.data.unlabelled_batch_size,
    )


def train_run(config: RunConfig, out: Path, resume: bool = False) -> RunResult | None:
    """``kdgan train``: train ``config`` into the run directory ``out`` (with ``resume``, continue
    the run there). An unusable or busy ``out`` is refused before the build, bad data or networks
    by the build, both before anything is written; rank 0 then holds the run's lock from its first
    write (config.yaml, run.json) to the end. Returns the result on rank 0, None on other ranks."""
    check_output_dir(out)  # a file, a path under a file, an unwritable folder
    check_not_in_use(out)  # a second writer too (the lock itself is taken below, after the build)
    info = setup(config.device)
    trainer = build_trainer(config, out_dir=out, dist_info=info)
    with run_lock(out) if info.is_main else contextlib.nullcontext():
        if info.is_main:
            prepare_run_dir(out, config, resume)
        barrier(info)
        try:
            result = trainer.fit(resume=resume)
        except OSError as err:  # disk full, permissions changed, ... while training
            error = err if isinstance(err, OutputError) else output_error(Path(err.filename or out), err)
            resumable = OutputError(f"{error} (then the run continues from its last checkpoint with --resume)")
            resumable.errno, resumable.filename = error.errno, error.filename
            raise resumable from err
    return result if info.is_main else None


def pretrain_epochs(config: RunConfig, method: Method) -> dict[str, int]:
    """Each player's ``pretrain_epochs``; refused for a player the method does not pretrain (the
    supervised method trains its player with the same loss from the first epoch)."""
    epochs = {role: spec.pretrain_epochs for role in method.players if (spec := config.player(role))}
    for role, count in epochs.items():
        if count > 0 and role not in method.roles:
            raise ConfigError(
                f"method {method.name!r} does not pretrain the {role}: {role}.pretrain_epochs={count} would be "
                f"ignored; set {role}.pretrain_epochs=0 and give those epochs to train.epochs"
            )
    return epochs


def random_crop_flip_with(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return random_crop_flip(x, padding=4, generator=generator)


def training_augmentation(config: RunConfig) -> Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None:
    """``data.augment`` as the engine's ``augment(x, generator)``, applied to every player's training
    batches in every stage of every method (never to validation or test), or None."""
    if config.data.augment == "crop_flip":
        return random_crop_flip_with
    if config.data.augment == "affine":
        ranges = config.data.affine or AffineConfig()
        return lambda x, generator: random_affine(x, ranges.rotation, ranges.shift, ranges.zoom, generator)
    return None
