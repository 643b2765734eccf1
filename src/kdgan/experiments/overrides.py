"""Per-method overrides of a comparison: ``--set kdgan:student.optimizer.game_lr=1e-4`` changes
the runs of method ``kdgan`` only, while ``--set key=value`` changes every run. A fair table gives
each method its own validated settings in one invocation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from kdgan.config import RunConfig, apply_overrides, from_dict
from kdgan.config.sections import SHARED_KEYS
from kdgan.errors import ConfigError
from kdgan.methods import METHODS


@dataclass(frozen=True)
class MethodOverrides:
    """``key=value`` items per method name, applied after the comparison's common overrides."""

    by_method: dict[str, tuple[str, ...]]

    def apply(self, config: RunConfig, method: str) -> RunConfig:
        """``config`` with ``method``'s own overrides (the same object when it has none)."""
        pairs = self.by_method.get(method)
        if not pairs:
            return config
        return from_dict(RunConfig, apply_overrides(config.to_dict(), list(pairs)))

    def check(self, methods: Sequence[str]) -> None:
        """Refuse overrides for a method this comparison does not train (they would do nothing)."""
        for method in self.by_method:
            if method not in methods:
                raise ConfigError(f"--set {method}:... is for method {method}, which this comparison does not run "
                                  f"(methods: {', '.join(methods)}); add it to --methods or drop the override")


def split_overrides(items: Sequence[str]) -> tuple[list[str], MethodOverrides]:
    """Split ``--set`` items into those for every run and those for one method (``METHOD:key=value``)."""
    common: list[str] = []
    by_method: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        method, colon, key = key.rpartition(":")
        if not colon:
            common.append(item)
            continue
        if method in ("supervised", "teacher"):
            raise ConfigError(f"--set {item}: the supervised teacher and student are shared by every method; "
                              "set their options without a method prefix")
        if method not in METHODS:
            raise ConfigError(f"--set {item}: unknown method {method!r} before ':'; known methods: "
                              f"{', '.join(METHODS)}")
        if any(key == shared or key.startswith(shared + ".") for shared in SHARED_KEYS):
            raise ConfigError(f"--set {item}: {key} is shared by every method of a comparison (the data and "
                              f"the pretrained players); set it without the '{method}:' prefix")
        by_method.setdefault(method, []).append(f"{key}{sep}{value}")
    return common, MethodOverrides({m: tuple(pairs) for m, pairs in by_method.items()})


def tuned_overrides(storage: str, methods: Sequence[str]) -> list[str]:
    """``METHOD:key=value`` items setting each method to the best trial of its study in
    ``storage`` (studies are named after their method, ``kdgan tune``'s default). A method that
    declares no search space has nothing to tune and runs as configured; a tunable method without
    a finished study is refused, so that a "tuned" table never mixes in an untuned method."""
    from kdgan.experiments.tune import best_overrides  # imports Optuna: only when asked for

    items: list[str] = []
    for method in methods:
        if getattr(METHODS.get(method), "search_space", None):
            try:
                best = best_overrides(storage, method)
            except ConfigError as err:
                raise ConfigError(f"--tuned {storage}: {err}; run kdgan tune --method {method} --storage {storage} "
                                  "first, or drop the method from --methods") from None
            items += [f"{method}:{item}" for item in best]
    return items
