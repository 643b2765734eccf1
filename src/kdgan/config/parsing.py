"""From plain data to typed config: :func:`from_dict` (keys, types, finite numbers), strict YAML
(no duplicate keys, no Python objects) and the ``--set`` overrides (:func:`apply_overrides`).

Every error is a :class:`~kdgan.errors.ConfigError` naming the offending key and the valid ones.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import types
import typing
from collections.abc import Hashable
from typing import Any

import yaml

from kdgan.errors import ConfigError


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


# Keys of the data section that belong to one dataset reader: a new data.name drops the old ones.
DATASET_KEYS = ("dir", "train", "test", "test_fraction", "image_size", "channels")


def parse_override(pair: str) -> tuple[list[str], Any]:
    """``"a.b=[1, 2]"`` as (``["a", "b"]``, ``[1, 2]``); the value is parsed as YAML."""
    key, sep, raw = pair.partition("=")
    if not sep or not key or "" in key.split("."):
        raise ConfigError(f"--set expects key=value (e.g. options.alpha=0.5), got {pair!r}")
    try:
        return key.split("."), read_yaml(raw)
    except DuplicateKeyError as err:
        raise ConfigError(f"--set {key}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"--set {key}: the value {raw!r} is not valid YAML ({err.problem}); quote it or fix "
                          "its brackets") from None


def apply_overrides(base: dict[str, Any], pairs: list[str]) -> dict[str, Any]:
    """``base`` (a config mapping, not changed) with the ``--set`` pairs applied in order.

    ``key=value`` replaces the value at ``key``; a non-empty mapping merges into the section there,
    an empty one (``options={}``) empties it, so a later ``options.warmup=5`` starts from nothing.
    A new ``method`` drops the options of the base config's method, a new ``data.name`` the base
    config's dataset-specific data keys (:data:`DATASET_KEYS`), a new ``ROLE.model.name`` the old
    network's options; values given by ``--set`` are kept either way."""
    config = copy.deepcopy(base)
    given: dict[str, Any] = {}  # what the overrides set so far, which a new method or dataset keeps
    for pair in pairs:
        path, value = parse_override(pair)
        _assign(config, given, path, value)
    return config


def _assign(config: dict[str, Any], given: dict[str, Any], path: list[str], value: Any) -> None:
    """Set ``path`` to ``value`` in ``config`` (and in ``given``), with :func:`apply_overrides`' rules."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _assign(config, given, [*path, str(key)], item)
        return
    _drop_what_a_new_name_invalidates(config, given, path, value)
    for target in (given, config):
        node = target
        for depth, part in enumerate(path[:-1]):
            if node.get(part) is None:  # absent, or null (e.g. no teacher): the override starts the section
                node[part] = {}
            if not isinstance(node[part], dict):
                section = ".".join(path[:depth + 1])
                if target is given:
                    raise ConfigError(f"--set {'.'.join(path)}: {section} is set both as a value and as a section")
                raise ConfigError(f"--set {'.'.join(path)}: {section} holds the value {node[part]!r}, not a "
                                  f"section of keys; set {section} as a whole or drop that value")
            node = node[part]
        node[path[-1]] = copy.deepcopy(value)


def _drop_what_a_new_name_invalidates(config: dict[str, Any], given: dict[str, Any], path: list[str],
                                      value: Any) -> None:
    """Before ``path`` changes a name, drop the base config's keys that belonged to the old one:
    a new ``method`` its options, a new ``data.name`` the :data:`DATASET_KEYS`, a new
    ``ROLE.model.name`` the old network's options. Keys given by ``--set`` stay."""
    if path == ["method"]:
        section, owned = ["options"], None
    elif path == ["data", "name"]:
        section, owned = ["data"], DATASET_KEYS
    elif len(path) == 3 and path[1:] == ["model", "name"]:
        section, owned = path[:2], None
    else:
        return
    current = config.get("method") if path == ["method"] else (_section(config, section) or {}).get("name")
    old, kept = _section(config, section), _section(given, section) or {}
    if old is None or value == current:
        return
    named = set() if path == ["method"] else {"name"}  # the section's own name key is the one being set
    for key in [k for k in old if (owned is None or k in owned) and k not in kept and k not in named]:
        del old[key]


def _section(config: dict[str, Any], path: list[str]) -> dict[str, Any] | None:
    """The mapping at ``path`` in ``config``, or None where there is none."""
    node: Any = config
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None
