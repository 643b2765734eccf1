"""Optional dependencies (ONNX, TensorBoard): imported only when a feature needs them, with an
error that says what to install instead of a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from kdgan.errors import KDGANError


class MissingDependencyError(KDGANError, ImportError):
    """An optional package that a feature needs is not installed."""


def require(module: str, install: str, purpose: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``package`` (default: the
    module's top-level name) and ``install``, the pip command that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        name = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{purpose} needs the '{name}' package, which is not installed ({err}); install it with `{install}`"
        ) from None


def available(module: str) -> bool:
    """Whether ``module`` can be imported (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
