"""Checks a run makes before its first step, and the advice it gives when a loss stops being
finite: each names what is wrong and how to fix it, so that a bad input fails at once and clearly
rather than after (or silently during) training."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import torch

from kdgan.data.core import Splits, TensorData
from kdgan.errors import DataError, DivergenceError
from kdgan.methods.base import Method


def check_splits(splits: Splits) -> None:
    """Refuse, before any training, splits that are empty, disagree with the training split on
    the shape of an example or the labels, or hold NaN or infinite inputs: each would otherwise
    fail (or silently mislead) only after training."""
    train = splits.train
    unlabelled = {}
    for name in ("train", "val", "test"):
        part: TensorData = getattr(splits, name)
        if len(part) == 0:
            raise DataError(f"the {name} split is empty; it needs at least one example (check the data files, "
                            "data.n and data.val_size)")
        for what, tensor, reference in (("inputs", part.x, train.x), ("privileged inputs", part.privileged,
                                                                        train.privileged)):
            if (tensor is None) != (reference is None):
                has = ("lacks", "has") if tensor is None else ("has", "lacks")
                raise DataError(f"the {name} split {has[0]} {what} but the training split {has[1]} them; every "
                                "split must come from the same kind of files")
            if tensor is None:
                continue
            if tensor.shape[1:] != reference.shape[1:]:
                raise DataError(
                    f"the {name} split's {what} have shape {tuple(tensor.shape[1:])} per example but the training "
                    f"split's have {tuple(reference.shape[1:])}; every split must have the same input shape "
                    "(are the test files from another dataset or resolution?)"
                )
            if tensor.is_floating_point():
                finite = torch.isfinite(tensor.flatten(1)).all(1)
                if not bool(finite.all()):
                    row = int((~finite).nonzero()[0, 0])
                    raise DataError(
                        f"the {name} split's {what} hold NaN or infinite values (first in row {row}); clean "
                        "or impute the data file"
                    )
        if part.num_classes != train.num_classes or part.multilabel != train.multilabel:
            raise DataError(
                f"the {name} split has {part.num_classes} {'multi-label' if part.multilabel else 'class'} "
                f"targets but the training split {train.num_classes} "
                f"{'multi-label' if train.multilabel else 'class'} targets; they must match"
            )
        if part.multilabel:
            count = int((part.y.sum(1) == 0).sum())
            if count == len(part):
                raise DataError(f"no example of the {name} split has any label; check the label columns of "
                                "the data files")
            if count:
                unlabelled[name] = f"{count} of {len(part)} {name}"
    if unlabelled:
        warnings.warn(
            f"multi-label examples without any label: {', '.join(unlabelled.values())}; they score 0 in P@k and "
            "are left out of R@k, F@k, nDCG@k, MAP and MRR (remove them from the data files if that is not "
            "intended)", stacklevel=4,
        )


def check_models(method: Method, splits: Splits) -> None:
    """Refuse, before any training, players whose outputs do not match the label count or whose
    weights (e.g. from an ``init`` file) hold NaN or infinite values."""
    probe = splits.train.batch(torch.arange(min(2, len(splits.train)), device=splits.train.x.device))
    expected = splits.num_classes
    for role, player in method.players.items():
        if not all(bool(torch.isfinite(p).all()) for p in player.module.parameters()):
            raise DataError(f"the {role} network's weights hold NaN or infinite values before training; "
                            f"check its init weights file ({role}.init)")
        try:
            with torch.no_grad():
                out = method.logits(role, probe)
        except RuntimeError as err:
            raise DataError(
                f"the {role} network cannot take inputs of shape {tuple(probe.x.shape[1:])}: {err}"
            ) from None
        if out.ndim != 2 or out.shape[-1] != expected:
            raise DataError(
                f"the {role} network outputs shape {tuple(out.shape[1:])} per example but the data "
                f"has {expected} labels; build it with {expected} outputs"
            )


def divergence_cause(method: Method, splits: Splits, role: str, bad_step: int, trained_before: bool,
                     on_nonfinite: str) -> str:
    """What to fix when ``role``'s loss is not finite: a non-finite setting, named, when there is
    one (only possible through the Python API: configs refuse them); the inputs or options when
    the loss was not finite before the role's first update; else the size of the updates."""
    player = method.players[role]
    options = method.options
    if dataclasses.is_dataclass(options):
        for item in dataclasses.fields(options):
            value = getattr(options, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                return f"Set options.{item.name} to a finite number (it is {value})"
    for key, value in player.optimizer.param_groups[0].items():
        numbers = value if isinstance(value, tuple) else (value,)
        if key != "params" and any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
            return f"Set the {role}'s optimizer {key} to a finite number (it is {value})"
    if bad_step == 0 and not trained_before:
        scale = max((float(t.abs().max()) for t in (splits.train.x, splits.train.privileged)
                     if t is not None and t.numel()), default=0.0)
        return (f"The loss was not finite before the {role}'s first update, so the learning rate is not the "
                f"cause: check the method's options and the inputs' scale (largest |value| in the training "
                f"inputs: {scale:.3g}; normalize them with data.normalize)")
    lr = player.optimizer.param_groups[0]["lr"]
    skip = "" if on_nonfinite == "skip" else ", or set train.on_nonfinite=skip"
    grad_clip = " or set train.grad_clip" if skip == "" else ", set train.grad_clip"
    return f"Lower the {role}'s learning rate (now {lr:g}){grad_clip}{skip}"


def check_epoch_loss(
    role: str, mean: float, bad_step: int, skipped: tuple[int, int], when: str, skip_mode: bool,
    cause: Callable[[str, int], str],
) -> None:
    """Stop the run when ``role``'s loss was not finite at step ``bad_step`` (-1: never) of the epoch
    described by ``when``, or, in skip mode, when every one of its steps was skipped (``skipped``
    is (skipped updates, steps)); ``cause(role, step)`` says what to fix."""
    if bad_step >= 0 and not skip_mode:
        raise DivergenceError(
            f"the {role}'s loss became NaN or infinite at step {bad_step} of {when}; checkpoints written "
            f"before it are intact. {cause(role, bad_step)}, and start again with a new --out"
        )
    done, steps = skipped
    if skip_mode and done == steps:
        raise DivergenceError(
            f"train.on_nonfinite=skip skipped all {steps} steps of the {role} in {when}: its loss or gradient "
            f"was NaN or infinite at every step, so it no longer learns; checkpoints written before it are "
            f"intact. {cause(role, 0)}, and start again with a new --out"
        )


def warn_huge_loss(role: str, mean: float, when: str) -> None:
    """Warn (once per player, the caller keeps count) that a mean loss this large means divergence."""
    warnings.warn(
        f"the {role}'s mean loss in {when} is {mean:.3g}: training is probably diverging (the run goes on; "
        "selection keeps the best validation epoch). Lower the learning rate of this player or of the players "
        "it learns from, or set train.grad_clip",
        RuntimeWarning, stacklevel=4,
    )
