"""The contract every method follows.

A method owns named players (``student``, ``teacher``, ``discriminator``), says which of them are
updated in each round and in what order (:attr:`Method.schedule`), and gives the loss a player
minimises on a batch (:meth:`Method.loss`). The :class:`~kdgan.training.engine.Trainer` does the rest:
pretraining, the rounds of updates, evaluation, model selection, logging and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from kdgan.data.core import Batch, Splits, multi_hot, target_distribution
from kdgan.errors import ConfigError
from kdgan.methods.losses import binary_cross_entropy, soft_cross_entropy
from kdgan.training.cache import OutputCache
from kdgan.training.players import Player

LABEL_LOSSES = ("softmax", "sigmoid")


@dataclass
class NoOptions:
    """This method has no options."""


class Method:
    """Base class: subclasses set the class attributes and implement :meth:`loss`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    roles: ClassVar[tuple[str, ...]] = ("student",)
    schedule: ClassVar[tuple[str, ...]] = ("student",)
    evaluated: ClassVar[str] = "student"
    Options: ClassVar[type] = NoOptions
    multilabel: ClassVar[bool] = True  # loss() handles multi-label targets; comparisons skip it if not
    # whether a loss term needs no label, so that unlabelled inputs (data.unlabelled) can teach it
    uses_unlabelled: ClassVar[bool] = True

    @classmethod
    def needed_roles(cls, options: Any) -> tuple[str, ...]:
        """The players this method needs with these options."""
        return cls.roles

    def __init__(
        self, players: dict[str, Player], options: Any = None, *, privileged_roles: tuple[str, ...] = ("teacher",),
        label_loss: str = "softmax",
    ) -> None:
        options = self.Options() if options is None else options
        missing = [role for role in self.needed_roles(options) if role not in players]
        if missing:
            raise ConfigError(f"method {self.name!r} needs players {', '.join(missing)} (config section)")
        if "student" in privileged_roles:
            raise ConfigError("the student never receives privileged inputs: it is deployed without them")
        if label_loss not in LABEL_LOSSES:
            raise ConfigError(f"label_loss must be one of {', '.join(LABEL_LOSSES)}, got {label_loss!r}")
        self.players = players
        self.options = options
        self.privileged_roles = privileged_roles
        self.label_loss = label_loss
        self.epoch, self.epochs = 0, 1
        self.output_cache: OutputCache | None = None  # set by the engine while a player trains

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called before each training epoch (e.g. to anneal a temperature)."""
        self.epoch, self.epochs = epoch, epochs

    def loss(self, role: str, batch: Batch) -> Tensor:
        """The loss ``role`` minimises on ``batch`` in a round of the game."""
        raise NotImplementedError

    def check_data(self, splits: Splits) -> None:
        """Refuse, before any training, data this method's options cannot use (nothing by default)."""

    def loss_terms(self, role: str, batch: Batch) -> dict[str, Tensor]:
        """``role``'s loss split into its weighted terms by name (``adversarial``, ``distillation``,
        ``label``, ...), whose sum is :meth:`loss`; the signal diagnostics measure each term's
        gradient. A method that does not split its loss has the one term ``loss``."""
        return {"loss": self.loss(role, batch)}

    def logits(self, role: str, batch: Batch) -> Tensor:
        """Logits of ``role`` on a batch, from the output cache when ``role`` is not training and
        no gradient is wanted (see :mod:`kdgan.training.cache`)."""
        cache = self.output_cache
        if cache is not None and cache.serves(role, batch):
            return cache.lookup(role, batch)
        return self.network_logits(role, batch)

    def network_logits(self, role: str, batch: Batch) -> Tensor:
        """Run ``role``'s network on a batch; privileged inputs reach only ``privileged_roles``."""
        module = self.players[role].module
        if role in self.privileged_roles and batch.privileged is not None:
            return module(batch.x, batch.privileged)
        return module(batch.x)

    def target(self, batch: Batch, logits: Tensor) -> Tensor:
        """The true label distribution of the batch's labelled rows (all rows unless it mixes in
        unlabelled examples: see :meth:`~kdgan.data.core.Batch.label_rows`)."""
        return target_distribution(batch.label_rows(batch.y), logits.shape[-1])

    def cross_entropy(self, logits: Tensor, batch: Batch) -> Tensor:
        """The supervised loss: cross-entropy against the true label distribution (softmax over
        labels; multi-hot targets normalised), or per-label binary cross-entropy (``sigmoid``),
        averaged over the batch's labelled rows only (``logits`` has one row per batch row)."""
        labelled = batch.label_rows(logits)
        if self.label_loss == "sigmoid":
            return binary_cross_entropy(labelled, multi_hot(batch.label_rows(batch.y), logits.shape[-1]))
        return soft_cross_entropy(labelled, self.target(batch, logits))

    def supervised_loss(self, role: str, batch: Batch) -> Tensor:
        return self.cross_entropy(self.logits(role, batch), batch)

    def pretrain_loss(self, role: str, batch: Batch) -> Tensor:
        """The loss ``role`` minimises while it is pretrained: supervised by default."""
        return self.supervised_loss(role, batch)
