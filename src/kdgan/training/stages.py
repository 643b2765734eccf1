"""A run's plan: the stages it goes through. Each player that asks for pretraining is pretrained
alone (teacher, student, discriminator, in that order), then the game's rounds update the method's
players in its schedule's order."""

from __future__ import annotations

from dataclasses import dataclass

from kdgan.methods.base import Method
from kdgan.training.evaluator import CLASSIFIERS

PRETRAIN_ORDER = ("teacher", "student", "discriminator")


@dataclass(frozen=True)
class Stage:
    """A phase of training: ``roles`` are updated in order each epoch; ``selects`` (a classifier
    role or None) is evaluated on validation and restored to its best epoch at the end."""

    name: str
    roles: tuple[str, ...]
    epochs: int
    selects: str | None
    pretrain: bool


def plan_stages(method: Method, pretrain_epochs: dict[str, int], epochs: int) -> list[Stage]:
    """The stages of a run of ``method``: pretraining of each role given epochs in
    ``pretrain_epochs`` (classifiers select their best validation epoch), then ``epochs`` of the game."""
    stages = [
        Stage(f"pretrain-{role}", (role,), pretrain_epochs[role], role if role in CLASSIFIERS else None,
              pretrain=True)
        for role in PRETRAIN_ORDER
        if role in method.roles and pretrain_epochs.get(role, 0) > 0
    ]
    stages.append(Stage("train", tuple(method.schedule), epochs, method.evaluated, False))
    return stages
