"""Method registry: ``@register`` adds a Method subclass under its ``name``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kdgan.errors import ConfigError

if TYPE_CHECKING:
    from kdgan.methods.base import Method

METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[name]
