"""Plain supervised training of one network on the labelled examples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods.base import Method
from kdgan.methods.registry import register
from kdgan.methods.search import SearchSpace, game_learning_rates
from kdgan.training.players import Player


@dataclass
class SupervisedOptions:
    """``player``: which network to train and evaluate, the student or the teacher."""

    player: str = "student"

    def __post_init__(self) -> None:
        if self.player not in ("student", "teacher"):
            raise ConfigError(f"options.player must be 'student' or 'teacher', got {self.player!r}")


@register
class Supervised(Method):
    """Cross-entropy on the n labelled examples: ``L = -log p(y|x)``."""

    name = "supervised"
    summary = "the student (or the teacher) trained alone with cross-entropy on the labels"
    Options = SupervisedOptions
    search_space: ClassVar[SearchSpace] = game_learning_rates("student")
    uses_unlabelled: ClassVar[bool] = False  # every term is a label term
    roles: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def needed_roles(cls, options: SupervisedOptions) -> tuple[str, ...]:
        return (options.player,)

    def __init__(self, players: dict[str, Player], options: SupervisedOptions | None = None, **kwargs: Any) -> None:
        super().__init__(players, options, **kwargs)
        self.schedule = (self.options.player,)
        self.evaluated = self.options.player

    def loss(self, role: str, batch: Batch) -> Tensor:
        return self.supervised_loss(role, batch)
