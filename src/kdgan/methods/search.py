"""Hyperparameter search spaces, declared by each method next to its Options (plain data: the
search itself, on Optuna, is :mod:`kdgan.experiments.tune`).

A space maps a ``--set``-style config key (``options.alpha``, ``student.optimizer.game_lr``,
``discriminator.passes``) to the range it is searched in, so a trial's parameters are config
overrides and the best ones can be passed to any command that takes ``--set``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kdgan.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A number searched uniformly in ``[low, high]``, or log-uniformly with ``log``; ``integer``
    for counts such as passes."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ConfigError(f"a search range needs low < high (and low > 0 when log), got [{self.low}, {self.high}]")


SearchSpace = dict[str, Range]

# The learning rate a player uses from the game's first epoch on (all methods start from the
# shared pretrained players, so this is the one learning rate every method's search includes).
GAME_LR = Range(1e-5, 1e-2, log=True)
# The concrete distribution's temperature, annealed exponentially from tau_start to tau_end
# (the paper's draft anneals 1.0 to 0.1; the authors' later code starts at 10).
TEMPERATURE_SCHEDULE: SearchSpace = {"options.tau_start": Range(0.1, 10.0, log=True),
                                     "options.tau_end": Range(0.01, 1.0, log=True)}


def game_learning_rates(*roles: str) -> SearchSpace:
    """The game learning rate of each of ``roles``."""
    return {f"{role}.optimizer.game_lr": GAME_LR for role in roles}
