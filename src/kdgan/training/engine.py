"""The training engine: runs a method's schedule, evaluates, selects, logs and checkpoints.

A run is a list of stages: pretraining of each player that asks for it (teacher, student,
discriminator, in that order), then the game's rounds. Each epoch of a stage updates its players in
order, each making ``player.passes`` passes over the n labelled examples. Classifier stages pick
the epoch with the best validation accuracy; the run's result is the selected student's test score.
Losses are accumulated on the device and read once per epoch: a training step never waits for
the host.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from kdgan.config import TrainConfig
from kdgan.data.core import Batch, Splits, TensorData, multi_hot
from kdgan.deploy.student_file import student_record
from kdgan.errors import ConfigError, DataError, DivergenceError
from kdgan.evaluation.metrics import default_selection_metric, evaluate_logits, predict_logits
from kdgan.methods.base import Method
from kdgan.storage import atomic_save, atomic_write_text, load_checkpoint
from kdgan.training.cache import OutputCache
from kdgan.training.distributed import (
    DistInfo,
    all_reduce,
    average_gradients,
    broadcast_module,
    gather_objects,
    gather_rows,
)
from kdgan.training.players import Player
from kdgan.training.runlock import remove_stale_temporaries, run_lock
from kdgan.training.runs import record_run
from kdgan.training.seeding import rng_state, seed_everything, set_rng_state

PRETRAIN_ORDER = ("teacher", "student", "discriminator")
# A mean epoch loss above this is warned of as a probable divergence: the losses here are cross-
# entropies and log-losses, far below it in a healthy run; with student.optimizer.lr=1e6,
# digits_kdgan's teacher reached a mean loss of 3.2e22 and every validation accuracy was 0.1.
LOSS_WARNING = 1e6
CHECKPOINT_KEYS = ("stage", "epoch", "seconds", "players", "selection", "best_test", "history", "rng")
RESUME_FIX = "Delete it to restart the run from scratch, or restore a good copy"
CLASSIFIERS = ("student", "teacher")


@dataclass(frozen=True)
class Stage:
    """A phase of training: ``roles`` are updated in order each epoch; ``selects`` (a classifier
    role or None) is evaluated on validation and restored to its best epoch at the end."""

    name: str
    roles: tuple[str, ...]
    epochs: int
    selects: str | None
    pretrain: bool


@dataclass
class Selection:
    """The best epoch so far of a stage, by the validation selection metric."""

    value: float = float("-inf")
    epoch: int = -1
    state: dict[str, Tensor] | None = None
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class RunResult:
    """What ``Trainer.fit`` returns: the selected student's scores and the per-epoch history."""

    method: str
    selected_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    best_test: dict[str, float]
    seconds: float
    history: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "history"}


class Trainer:
    """Trains ``method`` on ``splits`` (already on the training device).

    ``pretrain_epochs`` maps roles to epochs of pretraining; ``out_dir`` (optional) receives
    metrics.jsonl, checkpoints (last.pt; best.pt, every player at the selected epoch; student.pt,
    the selected student alone) and final.json; ``run_info`` is stored in the
    checkpoints so that a run can be rebuilt (e.g. the resolved config). ``augment(x, generator)``
    transforms the student's inputs of each training batch (never validation or test).
    ``dist_info`` (from :func:`kdgan.training.distributed.setup`) makes this one rank of a data-parallel
    job: ``batch_size`` is then the global batch, and only rank 0 writes files or shows progress.
    """

    def __init__(
        self, method: Method, splits: Splits, config: TrainConfig | None = None, *,
        batch_size: int = 10, eval_batch_size: int = 1000, pretrain_epochs: dict[str, int] | None = None,
        seed: int = 0, out_dir: str | Path | None = None, run_info: dict[str, Any] | None = None,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None, dist_info: DistInfo | None = None,
    ) -> None:
        self.method, self.splits = method, splits
        self.dist = dist_info or DistInfo()
        if batch_size % self.dist.world:
            raise ConfigError(
                f"data.batch_size {batch_size} is the global batch and must divide evenly across "
                f"{self.dist.world} processes"
            )
        self.local_batch = batch_size // self.dist.world
        self.config = config or TrainConfig()
        self.batch_size, self.eval_batch_size, self.seed = batch_size, eval_batch_size, seed
        if out_dir is not None and not str(out_dir).strip():
            raise ConfigError("out_dir is empty; give the folder for the run's files, or None to write none")
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.run_info = run_info or {}
        self.augment = augment
        metric = self.config.select_metric
        self.select_metric = default_selection_metric(splits.train) if metric == "auto" else metric
        self.device = splits.train.x.device
        self.batches = torch.Generator().manual_seed(seed)
        pretrain_epochs = pretrain_epochs or {}
        self.stages = [
            Stage(f"pretrain-{role}", (role,), pretrain_epochs[role],
                  role if role in CLASSIFIERS else None, pretrain=True)
            for role in PRETRAIN_ORDER
            if role in method.roles and pretrain_epochs.get(role, 0) > 0
        ]
        self.stages.append(Stage("train", tuple(method.schedule), self.config.epochs, method.evaluated, False))
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.tensorboard: Any = None
        self.output_cache: OutputCache | None = None
        self.warned_losses: set[str] = set()  # roles already warned of a huge loss
        self.check_splits()
        self.check_models()
        if self.dist.enabled:
            for player in method.players.values():
                broadcast_module(player.module)
        if self.config.compile:
            for player in method.players.values():
                player.module.compile()  # in place: state-dict keys (and checkpoints) are unchanged

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files: with an out_dir, on rank 0 only."""
        return self.out_dir is not None and self.dist.is_main

    # ----------------------------------------------------------------- checks
    def check_splits(self) -> None:
        """Refuse, before any training, splits that are empty, disagree with the training split on
        the shape of an example or the labels, or hold NaN or infinite inputs: each would otherwise
        fail (or silently mislead) only after training."""
        train = self.splits.train
        unlabelled = {}
        for name in ("train", "val", "test"):
            part: TensorData = getattr(self.splits, name)
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
                "intended)", stacklevel=3,
            )

    def check_models(self) -> None:
        """Refuse, before any training, players whose outputs do not match the label count or whose
        weights (e.g. from an ``init`` file) hold NaN or infinite values."""
        probe = self.splits.train.batch(torch.arange(min(2, len(self.splits.train)), device=self.device))
        expected = self.splits.num_classes
        for role, player in self.method.players.items():
            if not all(bool(torch.isfinite(p).all()) for p in player.module.parameters()):
                raise DataError(f"the {role} network's weights hold NaN or infinite values before training; "
                                f"check its init weights file ({role}.init)")
            try:
                with torch.no_grad():
                    out = self.method.forward(role, probe)
            except RuntimeError as err:
                raise DataError(
                    f"the {role} network cannot take inputs of shape {tuple(probe.x.shape[1:])}: {err}"
                ) from None
            if out.ndim != 2 or out.shape[-1] != expected:
                raise DataError(
                    f"the {role} network outputs shape {tuple(out.shape[1:])} per example but the data "
                    f"has {expected} labels; build it with {expected} outputs"
                )

    def autocast(self) -> contextlib.AbstractContextManager:
        """bfloat16 autocast of forward passes when ``train.precision`` is bf16, else nothing."""
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ----------------------------------------------------------------- steps
    def _activate(self, role: str) -> None:
        """Only ``role`` trains: others are in eval mode and get no parameter gradients."""
        for name, player in self.method.players.items():
            player.module.requires_grad_(name == role)
            player.module.train(name == role)

    def _step(self, player: Player, loss: Tensor) -> bool:
        """One optimizer update; in 'skip' mode a non-finite loss or gradient skips it. Returns
        whether the update was made."""
        skip_mode = self.config.on_nonfinite == "skip"
        if skip_mode and not self.dist.enabled and not torch.isfinite(loss):
            return False
        player.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.dist.enabled:
            average_gradients(player.module, self.dist.world)
            grads = [p.grad for p in player.module.parameters() if p.grad is not None]
            if skip_mode and not all(torch.isfinite(g).all() for g in grads):  # the same on every rank
                return False
        if self.config.grad_clip is not None:
            norm = torch.nn.utils.clip_grad_norm_(player.module.parameters(), self.config.grad_clip)
            if skip_mode and not torch.isfinite(norm):
                return False
        player.optimizer.step()
        return True

    def _train_epoch(self, stage: Stage, epoch: int) -> dict[str, float]:
        method = self.method
        if not stage.pretrain:
            method.start_epoch(epoch, stage.epochs)
        sums, skipped = self._update_players(stage)
        if self.dist.enabled:  # mean loss over ranks; a non-finite loss on any rank counts
            stacked = torch.stack(list(sums.values()))
            means = all_reduce(stacked[:, 0].contiguous()) / self.dist.world
            bad = all_reduce(stacked[:, 1].contiguous(), "max")
            sums = {role: torch.stack([means[i], bad[i]]) for i, role in enumerate(sums)}
        values = dict(zip(sums, torch.stack(list(sums.values())).tolist(), strict=True))  # one read per epoch
        skip_mode = self.config.on_nonfinite == "skip"
        for role, (mean, bad) in values.items():
            if bad >= 0 and not skip_mode:
                raise DivergenceError(
                    f"the {role}'s loss became NaN or infinite at step {int(bad)} of epoch {epoch} "
                    f"({stage.name}); checkpoints written before it are intact. "
                    f"{self._divergence_cause(role, int(bad))}, and start again with a new --out"
                )
            done, steps = skipped[role]
            if skip_mode and done == steps:
                raise DivergenceError(
                    f"train.on_nonfinite=skip skipped all {steps} steps of the {role} in epoch {epoch} "
                    f"({stage.name}): its loss or gradient was NaN or infinite at every step, so it no longer "
                    f"learns; checkpoints written before it are intact. {self._divergence_cause(role, 0)}, "
                    "and start again with a new --out"
                )
            if abs(mean) > LOSS_WARNING and role not in self.warned_losses and self.dist.is_main:
                self.warned_losses.add(role)
                warnings.warn(
                    f"the {role}'s mean loss in epoch {epoch} ({stage.name}) is {mean:.3g}: training is probably "
                    "diverging (the run goes on; selection keeps the best validation epoch). Lower the learning "
                    "rate of this player or of the players it learns from, or set train.grad_clip",
                    RuntimeWarning, stacklevel=2,
                )
        if not stage.pretrain:
            for role in stage.roles:
                if method.players[role].scheduler is not None:
                    method.players[role].scheduler.step()
        record = {f"loss_{role}": mean for role, (mean, _) in values.items()}
        if skip_mode:  # how many updates were skipped: the mean loss above is over the finite steps only
            record.update({f"skipped_{role}": done for role, (done, _) in skipped.items()})
        return record

    def _trained_before(self, role: str) -> bool:
        """Whether ``role`` was updated in an epoch already recorded (this run, or before a resume)."""
        trains = {stage.name: stage.roles for stage in self.stages}
        return any(role in trains.get(record.get("stage"), ()) for record in self.history)

    def _divergence_cause(self, role: str, bad_step: int) -> str:
        """What to fix when ``role``'s loss is not finite: a non-finite setting, named, when there is
        one (only possible through the Python API: configs refuse them); the inputs or options when
        the loss was not finite before the role's first update; else the size of the updates."""
        player = self.method.players[role]
        options = self.method.options
        if dataclasses.is_dataclass(options):
            for item in dataclasses.fields(options):
                value = getattr(options, item.name)
                if isinstance(value, float) and not math.isfinite(value):
                    return f"Set options.{item.name} to a finite number (it is {value})"
        for key, value in player.optimizer.param_groups[0].items():
            numbers = value if isinstance(value, tuple) else (value,)
            if key != "params" and any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                return f"Set the {role}'s optimizer {key} to a finite number (it is {value})"
        if bad_step == 0 and not self._trained_before(role):
            scale = max((float(t.abs().max()) for t in (self.splits.train.x, self.splits.train.privileged)
                         if t is not None and t.numel()), default=0.0)
            return (f"The loss was not finite before the {role}'s first update, so the learning rate is not the "
                    f"cause: check the method's options and the inputs' scale (largest |value| in the training "
                    f"inputs: {scale:.3g}; normalize them with data.normalize)")
        lr = player.optimizer.param_groups[0]["lr"]
        skip = "" if self.config.on_nonfinite == "skip" else ", or set train.on_nonfinite=skip"
        grad_clip = " or set train.grad_clip" if skip == "" else ", set train.grad_clip"
        return f"Lower the {role}'s learning rate (now {lr:g}){grad_clip}{skip}"

    def _update_players(self, stage: Stage) -> tuple[dict[str, Tensor], dict[str, tuple[int, int]]]:
        """Each role of the stage makes its passes; returns per role (mean finite loss, index of
        the first non-finite step or -1) as a device tensor, and (skipped updates, steps)."""
        method, cache = self.method, self.output_cache
        loss_fn = method.pretrain_loss if stage.pretrain else method.loss
        sums: dict[str, Tensor] = {}
        skipped: dict[str, tuple[int, int]] = {}
        shard = (self.dist.rank, self.dist.world)
        method.output_cache = cache
        try:
            for role in stage.roles:
                player = method.players[role]
                self._activate(role)
                if cache is not None:
                    cache.start_updates(role)
                losses, skips = [], 0
                for _ in range(player.passes):
                    for batch in self.splits.train.batches(self.local_batch, self.batches, shard=shard):
                        if self.augment is not None:
                            batch = replace(batch, x=self.augment(batch.x, self.batches))
                        with self.autocast():
                            loss = loss_fn(role, batch)
                        skips += not self._step(player, loss)
                        losses.append(loss.detach())
                skipped[role] = (skips, len(losses))
                stacked = torch.stack(losses).float()
                finite = torch.isfinite(stacked)
                first_bad = torch.where(finite.all(), -1, (~finite).float().argmax()).float()
                sums[role] = torch.stack([torch.where(finite, stacked, 0.0).mean(), first_bad])
        finally:
            method.output_cache = None  # evaluation batches index other splits: never served
            if cache is not None:
                cache.stop_updates()
        self._activate("")  # leave every player in eval mode, without gradients
        return sums, skipped

    def _new_output_cache(self) -> OutputCache | None:
        """The fixed players' output cache, when it is exact and cheaper (see :mod:`kdgan.training.cache`)."""
        if not self.config.cache_outputs or self.augment is not None or self.dist.enabled:
            return None
        return OutputCache(self.splits.train, self.method.run, chunk=max(self.eval_batch_size, self.local_batch))

    # ----------------------------------------------------------------- evaluation
    def logits(self, role: str, split: str) -> Tensor:
        """Logits of ``role`` on every example of a split ('train', 'val' or 'test'), every player
        in eval mode; under torchrun each rank scores a shard and the rows are gathered back."""
        data = getattr(self.splits, split)
        for player in self.method.players.values():
            player.module.eval()

        def forward(batch: Batch) -> Tensor:
            with self.autocast():
                return self.method.forward(role, batch).float()

        if self.dist.enabled:
            mine = data.subset(torch.arange(self.dist.rank, len(data), self.dist.world, device=self.device))
            return gather_rows(predict_logits(forward, mine, self.eval_batch_size), len(data), self.dist)
        return predict_logits(forward, data, self.eval_batch_size)

    def evaluate(self, role: str, split: str, logits: Tensor | None = None) -> dict[str, float]:
        """Metrics of ``role`` on a split (from ``logits`` if they were already computed)."""
        metrics = evaluate_logits(self.logits(role, split) if logits is None else logits, getattr(self.splits, split))
        values = torch.stack(list(metrics.values())).tolist()  # one read for every metric
        return dict(zip(metrics, values, strict=True))

    def _evaluate_epoch(self, stage: Stage) -> dict[str, float]:
        if stage.selects is None:
            return {}
        val_logits = self.logits(stage.selects, "val")
        record = {f"val_{k}": v for k, v in self.evaluate(stage.selects, "val", val_logits).items()}
        if self.config.eval_test_each_epoch and not stage.pretrain:
            record.update({f"test_{k}": v for k, v in self.evaluate(stage.selects, "test").items()})
        if not stage.pretrain and self.config.report_players:
            for role in stage.roles:
                if role in CLASSIFIERS and role != stage.selects:
                    record.update({f"{role}_val_{k}": v for k, v in self.evaluate(role, "val").items()})
            if "discriminator" in self.method.players and stage.selects == "student":
                record.update(self.discriminator_report(val_logits))
        return record

    @torch.no_grad()
    def discriminator_report(self, student: Tensor) -> dict[str, float]:
        """D's accuracy on validation pairs: true pairs (x, y) scored above 1/2 (``d_true_acc``),
        and pairs with the student's top label (from its validation logits ``student``) scored
        below 1/2 (``d_fake_acc``)."""
        val = self.splits.val
        scores = predict_logits(lambda b: self.method.forward("discriminator", b), val, self.eval_batch_size)
        true = multi_hot(val.y, scores.shape[-1])
        true_score = (scores * true).sum(-1) / true.sum(-1).clamp_min(1)
        fake_score = scores.gather(-1, student.argmax(-1, keepdim=True)).squeeze(-1)
        values = torch.stack([(true_score > 0).float().mean(), (fake_score < 0).float().mean()]).tolist()
        return {"d_true_acc": values[0], "d_fake_acc": values[1]}

    # ----------------------------------------------------------------- loop
    def fit(self, resume: bool = False) -> RunResult:
        """Run every stage; with ``resume``, continue from ``out_dir/last.pt`` if it exists. The
        process that writes ``out_dir`` holds its lock meanwhile (:mod:`kdgan.training.runlock`): a second
        writer is refused with :class:`~kdgan.errors.RunInUseError` before it writes anything."""
        with run_lock(self.out_dir) if self.writes else contextlib.nullcontext():
            return self._fit(resume)

    def recorded_config(self) -> dict[str, Any] | None:
        """The config to save as config.yaml: ``run_info``'s, when the run's data came from it (so
        that ``kdgan evaluate`` can rebuild the run), else None."""
        config = self.run_info.get("config")
        return config if self.run_info.get("data_from_config", True) else None

    def _fit(self, resume: bool) -> RunResult:
        start_stage, start_epoch, selection = 0, 0, Selection()
        best_test: dict[str, float] = {}
        self.output_cache = self._new_output_cache()
        checkpoint = self.out_dir / "last.pt" if self.out_dir else None
        if resume and self.writes:
            remove_stale_temporaries(self.out_dir)
        resumed = resume and checkpoint is not None and checkpoint.exists()
        if resumed:
            start_stage, start_epoch, selection, best_test = self._load(checkpoint)
        else:
            seed_everything(self.seed + self.dist.rank)  # noise and dropout differ per rank
            self.batches.manual_seed(self.seed)  # the permutation is shared by all ranks
        if self.writes:
            record_run(self.out_dir, self.recorded_config(), str(self.device), starts=not resumed)
            if not resumed:
                (self.out_dir / "metrics.jsonl").write_text("")
        for index in range(start_stage, len(self.stages)):
            stage = self.stages[index]
            first = start_epoch if index == start_stage else 0
            if index != start_stage:
                selection = Selection()
            if not stage.pretrain and first == 0:
                for player in self.method.players.values():
                    player.start_game()
            show = self.config.progress and self.dist.is_main
            bar = tqdm(range(first, stage.epochs), desc=f"{self.method.name} {stage.name}", disable=not show,
                       leave=False, initial=first, total=stage.epochs)
            for epoch in bar:
                began = time.perf_counter()
                record: dict[str, Any] = {"stage": stage.name, "epoch": epoch}
                record.update(self._train_epoch(stage, epoch))
                record.update(self._evaluate_epoch(stage))
                if not stage.pretrain and hasattr(self.method, "temperature"):
                    record["tau"] = self.method.temperature
                self.seconds += time.perf_counter() - began
                record["seconds"] = round(self.seconds, 3)
                if stage.selects is not None:
                    value = record[f"val_{self.select_metric}"]
                    if value > selection.value:
                        state = self.method.players[stage.selects].module.state_dict()
                        selection = Selection(value, epoch, copy.deepcopy(state), dict(record))
                        if not stage.pretrain:
                            self._save_student(selection)
                            if checkpoint is not None:  # every player at the selected epoch
                                self._save(self.out_dir / "best.pt", index, epoch + 1, selection, best_test)
                    test_value = record.get(f"test_{self.select_metric}", -1.0)
                    if not stage.pretrain and test_value > best_test.get(self.select_metric, -1.0):
                        best_test = {self.select_metric: test_value, "epoch": epoch}
                    bar.set_postfix(val=f"{value:.4f}", best=f"{selection.value:.4f}")
                self._log(record)
                last = epoch == stage.epochs - 1
                every = self.config.checkpoint_every
                if checkpoint is not None and ((every and (epoch + 1) % every == 0) or last):
                    self._save(checkpoint, index, epoch + 1, selection, best_test)
            bar.close()
            if stage.selects is not None and selection.state is not None:
                self.method.players[stage.selects].module.load_state_dict(selection.state)
                if self.output_cache is not None:
                    self.output_cache.invalidate(stage.selects)
        return self._finish(selection, best_test)

    def _finish(self, selection: Selection, best_test: dict[str, float]) -> RunResult:
        for player in self.method.players.values():
            player.module.requires_grad_(True)
        role = self.method.evaluated
        val = self.evaluate(role, "val")
        test = self.evaluate(role, "test")
        if selection.state is None:
            state = self.method.players[role].module.state_dict()
            self._save_student(Selection(val[self.select_metric], -1, state))
        result = RunResult(self.method.name, selection.epoch, val, test, best_test, round(self.seconds, 3),
                           self.history)
        if self.writes:
            atomic_write_text(self.out_dir / "final.json", json.dumps(result.to_dict(), indent=2) + "\n")
        return result

    # ----------------------------------------------------------------- files
    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.writes and self.config.tensorboard:
            if self.tensorboard is None:
                from kdgan.training.tracking import TensorBoardLogger

                self.tensorboard = TensorBoardLogger(self.out_dir / "tensorboard")
            self.tensorboard.log(record, step=len(self.history))
            self.tensorboard.flush()
        if self.writes:
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _save_student(self, selection: Selection) -> None:
        if not self.writes:
            return
        role = self.method.evaluated
        model = self.run_info.get("model") or {}  # build_trainer records the model spec; a custom network has none
        record = student_record(
            selection.state, in_shape=model.get("in_shape", self.splits.train.x.shape[1:]),
            num_classes=self.splits.num_classes, preprocess=self.splits.preprocess,
            label_names=self.splits.label_names, spec=model.get("spec"), role=role,
        )
        record.update(epoch=selection.epoch, metric=self.select_metric, val_value=selection.value,
                      run_info=self.run_info)
        atomic_save(record, self.out_dir / "student.pt")

    def _save(self, path: Path, stage: int, epoch: int, selection: Selection, best_test: dict) -> None:
        rng = rng_state(self.batches)
        states = gather_objects(rng, self.dist) if self.dist.enabled else [rng]  # collective: all ranks
        if not self.writes:
            return
        atomic_save(
            {
                "stage": stage, "epoch": epoch, "seconds": self.seconds,
                "players": {role: p.state_dict() for role, p in self.method.players.items()},
                "selection": selection.__dict__, "best_test": best_test,
                "history": self.history, "rng": states, "run_info": self.run_info,
            },
            path,
        )

    def _check_checkpoint(self, state: Any, path: Path) -> None:
        """Refuse a last.pt that lacks a key or does not describe this run's players and stages,
        naming what is wrong, before anything is loaded from it."""
        if not isinstance(state, dict):
            raise DataError(f"{path} holds a {type(state).__name__}, not a kdgan checkpoint. {RESUME_FIX}")
        missing = [key for key in CHECKPOINT_KEYS if key not in state]
        if missing:
            raise DataError(f"{path} lacks the key(s) {', '.join(missing)}; it is not a complete kdgan checkpoint. "
                            f"{RESUME_FIX}")
        players = state["players"]
        if not isinstance(players, dict) or set(players) != set(self.method.players):
            found = ", ".join(map(str, players)) if isinstance(players, dict) else type(players).__name__
            raise DataError(f"{path} holds the players {found} but this run has {', '.join(self.method.players)}; "
                            f"it was written by another config. {RESUME_FIX}")
        stage, epoch = state["stage"], state["epoch"]
        if not (isinstance(stage, int) and isinstance(epoch, int) and 0 <= stage < len(self.stages)
                and 0 <= epoch <= self.stages[stage].epochs):
            plan = ", ".join(f"{s.name} ({s.epochs} epochs)" for s in self.stages)
            raise DataError(f"{path} stops at stage {stage}, epoch {epoch}, which this run's stages ({plan}) do "
                            f"not have; it was written by another config. {RESUME_FIX}")
        selection = state["selection"]
        if not isinstance(selection, dict) or set(selection) != {f.name for f in dataclasses.fields(Selection)}:
            raise DataError(f"{path} has a damaged 'selection' entry. {RESUME_FIX}")

    def _load(self, path: Path) -> tuple[int, int, Selection, dict[str, float]]:
        state = load_checkpoint(path, map_location=self.device)
        self._check_checkpoint(state, path)
        for role, player_state in state["players"].items():
            try:
                self.method.players[role].load_state_dict(player_state)
            except (RuntimeError, ValueError, KeyError, TypeError) as err:
                reason = " ".join(str(err).split())[:300]  # one line: torch's message spans several
                raise DataError(
                    f"{path} does not fit this run's {role} ({type(err).__name__}: {reason}); it was "
                    f"written by another config or version. {RESUME_FIX}"
                ) from None
        if isinstance(state["rng"], dict):  # written by a single process before per-rank states existed
            state["rng"] = [state["rng"]]
        if len(state["rng"]) != self.dist.world:
            raise ConfigError(
                f"{path} was written by {len(state['rng'])} processes; resume it with the same number, "
                f"not {self.dist.world}"
            )
        set_rng_state(state["rng"][self.dist.rank], self.batches)
        self.seconds = state["seconds"]
        self.history = list(state["history"])
        if self.writes:
            lines = "".join(json.dumps(r) + "\n" for r in self.history)
            (self.out_dir / "metrics.jsonl").write_text(lines)
        return state["stage"], state["epoch"], Selection(**state["selection"]), state["best_test"]
