"""Config files: a YAML config with ``--set`` overrides (:func:`load_config`), and the config a
finished run saved in its config.yaml or student.pt, read back typed (:func:`saved_config`)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kdgan.config.parsing import DuplicateKeyError, apply_overrides, from_dict, read_yaml
from kdgan.config.sections import RunConfig
from kdgan.errors import ConfigError


def load_config(path: str | Path | None, overrides: list[str] | None = None, per_method: bool = True) -> RunConfig:
    """Read a YAML config (or start from defaults), apply ``--set`` overrides, validate. With
    ``per_method``, the config's ``per_method`` items for its method (after the overrides, which
    may change the method) are applied too, under the overrides; a comparison, which makes runs of
    several methods from one config, loads it without them and applies each method's own."""
    file = read_config_file(Path(path)) if path is not None else {}
    raw = apply_overrides(file, overrides or [])
    config = from_dict(RunConfig, raw)
    check_method_names(config)
    own = config.per_method.get(config.method) if per_method else None
    if own:  # the method (as --set left it), then its own items, then --set again so that it wins
        config = from_dict(RunConfig, apply_overrides(file, [*(overrides or []), *own, *(overrides or [])]))
    check_dataset_name(config.data.name)
    return config


def check_method_names(config: RunConfig) -> None:
    """Refuse ``per_method`` entries for methods no registry knows (they would never apply)."""
    from kdgan.methods import METHODS  # imported here: kdgan.methods imports the config package

    for method in config.per_method:
        if method not in METHODS:
            raise ConfigError(f"per_method: unknown method {method!r}; known methods: {', '.join(METHODS)}")


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping a YAML config file holds, or a ConfigError saying what is wrong with the file."""
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
    return raw


# Keys that older kdgan versions saved, as (section, old key, new key, old value -> new value).
RENAMED_KEYS: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("data", "standardize", "normalize", lambda on: "per_image" if on else None),
)


def saved_config(raw: Any, source: str) -> RunConfig:
    """The typed config of a finished run, from what its student.pt or config.yaml saved (a
    :meth:`RunConfig.to_dict`); keys older versions saved under another name are read as today's.
    A key this version does not know is an error naming ``source``, never silently ignored."""
    raw = copy.deepcopy(raw) if isinstance(raw, dict) else raw
    for section, old, new, convert in RENAMED_KEYS:
        part = raw.get(section) if isinstance(raw, dict) else None
        if isinstance(part, dict) and old in part and new not in part:
            part[new] = convert(part.pop(old))
    try:
        return from_dict(RunConfig, raw)
    except ConfigError as err:
        raise ConfigError(f"the config saved in {source} does not fit this kdgan version ({err}); retrain the "
                          "run with this version, or use the kdgan version that wrote it") from None


def load_saved_config(path: Path) -> RunConfig:
    """A run directory's config.yaml as typed config; it must hold every top-level key, as a run
    writes it (a missing one means the file was cut short or written by hand)."""
    raw = read_config_file(path)
    missing = [item.name for item in dataclasses.fields(RunConfig) if item.name not in raw]
    if missing:
        raise ConfigError(f"{path} lacks the keys {', '.join(missing)}")
    return saved_config(raw, str(path))


def check_dataset_name(name: str) -> None:
    """Refuse a ``data.name`` that no reader knows, when the config is read rather than at train
    time. The known names are the keys of :data:`kdgan.data.DATASETS`, the one list to extend."""
    from kdgan.data import DATASETS  # imported here: kdgan.data imports this module

    if name not in DATASETS:
        raise ConfigError(f"data.name {name!r} is not a known dataset; known: {', '.join(DATASETS)}")
