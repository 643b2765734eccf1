"""From a :class:`~kdgan.config.RunConfig` to data, players, a method and a trainer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from kdgan.config import RunConfig, from_dict
from kdgan.data import Splits, load_splits
from kdgan.data.augment import random_crop_flip
from kdgan.deploy.student_file import load_student as load_student  # the deployable student; kept importable here
from kdgan.errors import ConfigError, DataError
from kdgan.methods import Method, get_method
from kdgan.models import build_model
from kdgan.models.two_view import TwoView
from kdgan.storage import load_checkpoint
from kdgan.training.distributed import DistInfo, setup
from kdgan.training.engine import Trainer
from kdgan.training.players import Player


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
    pretrain = {role: p.pretrain_epochs for role in method.players if (p := config.player(role))}
    evaluated = config.player(method.evaluated)
    model_info = {"spec": evaluated.model, "in_shape": list(splits.train.x.shape[1:]),
                  "num_classes": splits.num_classes, "role": method.evaluated}
    return Trainer(
        method, splits, config.train, batch_size=config.data.batch_size,
        eval_batch_size=config.data.eval_batch_size, pretrain_epochs=pretrain, seed=config.seed,
        out_dir=out_dir,
        run_info={"config": config.to_dict(), "model": model_info, "data_from_config": data_from_config},
        augment=random_crop_flip_with if config.data.augment == "crop_flip" else None, dist_info=dist_info,
    )


def random_crop_flip_with(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return random_crop_flip(x, padding=4, generator=generator)
