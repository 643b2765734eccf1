"""How much each loss term pushes each player: the signal diagnostics of issue 15.

Each game epoch (with ``train.report_players``) the engine measures, on one fixed training batch,
the norm of the gradient of every weighted term of every updated player's loss (``adversarial``,
``distillation``, ``label``, ...; :meth:`kdgan.methods.base.Method.loss_terms`) with respect to that
player's parameters, and logs it as ``grad_<role>_<term>``. A term whose gradient is orders of
magnitude below another's moves the player only nominally, whatever its weight says.

The measurement never changes training: players are in eval mode (no dropout) and the
generators' random draws come from a forked random-number generator, restored afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import torch

from kdgan.data.core import Batch
from kdgan.methods.base import Method


def gradient_norms(
    method: Method, roles: Iterable[str], batch: Batch,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """``grad_<role>_<term>``: the L2 norm over ``role``'s parameters of the gradient of each
    weighted term of ``role``'s loss on ``batch``. Leaves every player in eval mode without
    gradients, as the engine keeps them between updates."""
    norms: dict[str, torch.Tensor] = {}
    devices = [batch.x.device] if batch.x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        for role in roles:
            for name, player in method.players.items():
                player.module.eval()
                player.module.requires_grad_(name == role)
            params = [p for p in method.players[role].module.parameters() if p.requires_grad]
            with autocast():
                terms = method.loss_terms(role, batch)
            for term, value in terms.items():
                grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
                squares = [g.float().pow(2).sum() for g in grads if g is not None]
                norms[f"grad_{role}_{term}"] = torch.stack(squares).sum().sqrt() if squares else value.new_zeros(())
    for player in method.players.values():
        player.module.requires_grad_(False)
    values = torch.stack(list(norms.values())).tolist() if norms else []  # one read for every norm
    return dict(zip(norms, values, strict=True))
