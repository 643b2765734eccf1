"""What a run's checkpoint (last.pt, best.pt) holds, and the check that a file handed to
``--resume`` is one of this run's before anything is loaded from it. Checkpoints hold tensors and
plain Python data only, so they load with ``weights_only=True`` (:func:`kdgan.storage.load_checkpoint`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from kdgan.errors import ConfigError, DataError
from kdgan.storage import atomic_save, load_checkpoint

if TYPE_CHECKING:
    from kdgan.training.players import Player
    from kdgan.training.stages import Stage

# stage and epoch to continue from, training seconds so far, every player's state (network,
# optimizer, scheduler), the stage's best epoch so far, the best test score seen (diagnostic),
# the per-epoch records, and every random generator's state per process.
CHECKPOINT_KEYS = ("stage", "epoch", "seconds", "players", "selection", "best_test", "history", "rng")
RESUME_FIX = "Delete it to restart the run from scratch, or restore a good copy"


@dataclass
class Selection:
    """The best epoch so far of a stage, by the validation selection metric."""

    value: float = float("-inf")
    epoch: int = -1
    state: dict[str, Tensor] | None = None
    metrics: dict[str, float] = field(default_factory=dict)



def check_checkpoint(state: Any, path: Path, roles: Iterable[str], stages: Sequence[Stage]) -> None:
    """Refuse a last.pt that lacks a key or does not describe this run's players and stages,
    naming what is wrong, before anything is loaded from it."""
    if not isinstance(state, dict):
        raise DataError(f"{path} holds a {type(state).__name__}, not a kdgan checkpoint. {RESUME_FIX}")
    missing = [key for key in CHECKPOINT_KEYS if key not in state]
    if missing:
        raise DataError(f"{path} lacks the key(s) {', '.join(missing)}; it is not a complete kdgan checkpoint. "
                        f"{RESUME_FIX}")
    players = state["players"]
    if not isinstance(players, dict) or set(players) != set(roles):
        found = ", ".join(map(str, players)) if isinstance(players, dict) else type(players).__name__
        raise DataError(f"{path} holds the players {found} but this run has {', '.join(roles)}; "
                        f"it was written by another config. {RESUME_FIX}")
    stage, epoch = state["stage"], state["epoch"]
    if not (isinstance(stage, int) and isinstance(epoch, int) and 0 <= stage < len(stages)
            and 0 <= epoch <= stages[stage].epochs):
        plan = ", ".join(f"{s.name} ({s.epochs} epochs)" for s in stages)
        raise DataError(f"{path} stops at stage {stage}, epoch {epoch}, which this run's stages ({plan}) do "
                        f"not have; it was written by another config. {RESUME_FIX}")
    selection = state["selection"]
    if not isinstance(selection, dict) or set(selection) != {f.name for f in dataclasses.fields(Selection)}:
        raise DataError(f"{path} has a damaged 'selection' entry. {RESUME_FIX}")


def read_checkpoint(
    path: Path, device: torch.device, players: dict[str, Player], stages: Sequence[Stage], world: int
) -> dict[str, Any]:
    """Load ``path`` (safely), check that it is one of this run's checkpoints and load its player
    states into ``players``; the rest of the state (generators, history, position) is returned."""
    state = load_checkpoint(path, map_location=device)
    check_checkpoint(state, path, players, stages)
    for role, player_state in state["players"].items():
        try:
            players[role].load_state_dict(player_state)
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            reason = " ".join(str(err).split())[:300]  # one line: torch's message spans several
            raise DataError(
                f"{path} does not fit this run's {role} ({type(err).__name__}: {reason}); it was "
                f"written by another config or version. {RESUME_FIX}"
            ) from None
    if len(state["rng"]) != world:
        raise ConfigError(
            f"{path} was written by {len(state['rng'])} processes; resume it with the same number, not {world}"
        )
    return state


def write_checkpoint(
    path: Path, *, stage: int, epoch: int, seconds: float, players: dict[str, Player], selection: Selection,
    best_test: dict[str, Any], history: list[dict[str, Any]], rng: list[dict[str, Any]], run_info: dict[str, Any],
) -> None:
    """Write a checkpoint atomically: the run continues at ``epoch`` of ``stage`` when resumed."""
    atomic_save(
        {
            "stage": stage, "epoch": epoch, "seconds": seconds,
            "players": {role: p.state_dict() for role, p in players.items()},
            "selection": selection.__dict__, "best_test": best_test,
            "history": history, "rng": rng, "run_info": run_info,
        },
        path,
    )
