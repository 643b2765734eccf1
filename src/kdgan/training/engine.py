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
import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from kdgan.config import TrainConfig
from kdgan.data.core import Splits
from kdgan.deploy.student_file import student_record
from kdgan.errors import ConfigError
from kdgan.evaluation.metrics import default_selection_metric
from kdgan.methods.base import Method
from kdgan.storage import atomic_save, atomic_write_text
from kdgan.training.cache import OutputCache
from kdgan.training.checkpoint import Selection, read_checkpoint, write_checkpoint
from kdgan.training.checks import check_epoch_loss, check_models, check_splits, divergence_cause, warn_huge_loss
from kdgan.training.diagnostics import gradient_norms
from kdgan.training.distributed import (
    DistInfo,
    all_reduce,
    average_gradients,
    broadcast_module,
    gather_objects,
)
from kdgan.training.evaluator import Evaluator
from kdgan.training.players import Player
from kdgan.training.runlock import remove_stale_temporaries, run_lock
from kdgan.training.runs import RunResult, record_run
from kdgan.training.seeding import rng_state, seed_everything, set_rng_state
from kdgan.training.stages import Stage, plan_stages

# A mean epoch loss above this is warned of as a probable divergence: the losses here are cross-
# entropies and log-losses, far below it in a healthy run; with student.optimizer.lr=1e6,
# digits_kdgan's teacher reached a mean loss of 3.2e22 and every validation accuracy was 0.1.
LOSS_WARNING = 1e6


class Trainer:
    """Trains ``method`` on ``splits`` (already on the training device).

    ``pretrain_epochs`` maps roles to epochs of pretraining; ``out_dir`` (optional) receives
    metrics.jsonl, checkpoints (last.pt; best.pt, every player at the selected epoch; student.pt,
    the selected student alone) and final.json; ``run_info`` is stored in the
    checkpoints so that a run can be rebuilt (e.g. the resolved config). ``augment(x, generator)``
    transforms the inputs ``x`` of every training batch, for every player in every stage (never
    validation or test, never the privileged view).
    ``dist_info`` (from :func:`kdgan.training.distributed.setup`) makes this one rank of a data-parallel
    job: ``batch_size`` is then the global batch, and only rank 0 writes files or shows progress.
    With ``splits.unlabelled``, each game step's batch is followed by ``unlabelled_batch_size``
    (default ``batch_size``) unlabelled rows (:attr:`~kdgan.data.core.Batch.labelled` marks them);
    an epoch is still one pass over the labelled examples, and pretraining sees labelled rows only.
    """

    def __init__(
        self, method: Method, splits: Splits, config: TrainConfig | None = None, *,
        batch_size: int = 10, eval_batch_size: int = 1000, pretrain_epochs: dict[str, int] | None = None,
        seed: int = 0, out_dir: str | Path | None = None, run_info: dict[str, Any] | None = None,
        augment: Callable[[Tensor, torch.Generator], Tensor] | None = None, dist_info: DistInfo | None = None,
        unlabelled_batch_size: int | None = None,
    ) -> None:
        self.method, self.splits = method, splits
        self.dist = dist_info or DistInfo()
        if batch_size % self.dist.world:
            raise ConfigError(
                f"data.batch_size {batch_size} is the global batch and must divide evenly across "
                f"{self.dist.world} processes"
            )
        self.local_batch = batch_size // self.dist.world
        self.local_unlabelled = max((unlabelled_batch_size or batch_size) // self.dist.world, 1)
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
        self.stages = plan_stages(method, pretrain_epochs or {}, self.config.epochs)
        self.history: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.tensorboard: Any = None
        self.output_cache: OutputCache | None = None
        self.warned_losses: set[str] = set()  # roles already warned of a huge loss
        check_splits(splits)
        check_models(method, splits)
        method.check_data(splits)
        self.evaluator = Evaluator(method, splits, eval_batch_size, self.dist, self.autocast)
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
            check_epoch_loss(role, mean, int(bad), skipped[role], f"epoch {epoch} ({stage.name})", skip_mode,
                             self._divergence_cause)
            if abs(mean) > LOSS_WARNING and role not in self.warned_losses and self.dist.is_main:
                self.warned_losses.add(role)
                warn_huge_loss(role, mean, f"epoch {epoch} ({stage.name})")
        if not stage.pretrain:
            for role in stage.roles:
                if method.players[role].scheduler is not None:
                    method.players[role].scheduler.step()
        record = {f"loss_{role}": mean for role, (mean, _) in values.items()}
        if skip_mode:  # how many updates were skipped: the mean loss above is over the finite steps only
            record.update({f"skipped_{role}": done for role, (done, _) in skipped.items()})
        return record

    def _divergence_cause(self, role: str, bad_step: int) -> str:
        trains = {stage.name: stage.roles for stage in self.stages}
        trained_before = any(role in trains.get(record.get("stage"), ()) for record in self.history)
        return divergence_cause(self.method, self.splits, role, bad_step, trained_before, self.config.on_nonfinite)

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
                    extra = self.splits.unlabelled if not stage.pretrain and method.uses_unlabelled else None
                    unlabelled = (None if extra is None
                                  else extra.endless_batches(self.local_unlabelled, self.batches, shard))
                    for batch in self.splits.train.batches(self.local_batch, self.batches, shard=shard):
                        if unlabelled is not None:
                            batch = batch.with_unlabelled(next(unlabelled))
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
                finite_mean = torch.where(finite, stacked, 0.0).sum() / finite.sum().clamp_min(1)
                sums[role] = torch.stack([torch.where(finite.all(), stacked.mean(), finite_mean), first_bad])
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
        chunk = max(self.eval_batch_size, self.local_batch)
        return OutputCache(self.splits.train, self.method.network_logits, chunk=chunk)

    # ----------------------------------------------------------------- evaluation
    def logits(self, role: str, split: str) -> Tensor:
        """Logits of ``role`` on every example of a split ('train', 'val' or 'test')."""
        return self.evaluator.logits(role, split)

    def evaluate(self, role: str, split: str, logits: Tensor | None = None) -> dict[str, float]:
        """Metrics of ``role`` on a split (from ``logits`` if they were already computed)."""
        return self.evaluator.metrics(role, split, logits)

    def discriminator_report(self, student: Tensor) -> dict[str, float]:
        """D's accuracy on validation pairs (see :meth:`Evaluator.discriminator_report`)."""
        return self.evaluator.discriminator_report(student)

    def _evaluate_epoch(self, stage: Stage) -> dict[str, float]:
        record = self.evaluator.epoch_record(stage.selects, stage.roles, stage.pretrain, self.config)
        if not stage.pretrain and self.config.diagnostics:  # the gradient of each loss term, on a fixed batch
            probe = self.splits.train.batch(torch.arange(min(self.local_batch, len(self.splits.train)),
                                                         device=self.device))
            record.update(gradient_norms(self.method, stage.roles, probe, self.autocast))
        return record

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
        """The loop: every stage from where the run starts, every epoch of it; then the result."""
        self.output_cache = self._new_output_cache()
        start_stage, start_epoch, selection, best_test = self._start(resume)
        for index in range(start_stage, len(self.stages)):
            if index != start_stage:
                start_epoch, selection = 0, Selection()
            selection, best_test = self._run_stage(index, start_epoch, selection, best_test)
        return self._finish(selection, best_test)

    def _start(self, resume: bool) -> tuple[int, int, Selection, dict[str, float]]:
        """Where the run begins: from last.pt when resuming a run that has one, else from the first
        epoch with every generator seeded. Records the run (run.json) and starts metrics.jsonl."""
        checkpoint = self._checkpoint_path()
        if resume and self.writes:
            remove_stale_temporaries(self.out_dir)
        resumed = resume and checkpoint is not None and checkpoint.exists()
        if resumed:
            position = self._load(checkpoint)
        else:
            position = (0, 0, Selection(), {})
            self.history.clear()  # a fresh fit of this trainer starts its record and clock again
            self.seconds = 0.0
            seed_everything(self.seed + self.dist.rank)  # noise and dropout differ per rank
            self.batches.manual_seed(self.seed)  # the permutation is shared by all ranks
        if self.writes:
            record_run(self.out_dir, self.recorded_config(), str(self.device), starts=not resumed)
            if not resumed:
                (self.out_dir / "metrics.jsonl").write_text("")
        return position

    def _checkpoint_path(self) -> Path | None:
        return self.out_dir / "last.pt" if self.out_dir else None

    def _run_stage(
        self, index: int, first: int, selection: Selection, best_test: dict[str, float]
    ) -> tuple[Selection, dict[str, float]]:
        """Epochs ``first`` .. end of stage ``index``; at its end the selected player is restored
        to its best epoch."""
        stage = self.stages[index]
        if not stage.pretrain and first == 0:
            for player in self.method.players.values():
                player.start_game()
            if self.config.select_start and stage.selects is not None:
                selection, best_test = self._select_start(index, selection, best_test)
        show = self.config.progress and self.dist.is_main
        bar = tqdm(range(first, stage.epochs), desc=f"{self.method.name} {stage.name}", disable=not show,
                   leave=False, initial=first, total=stage.epochs)
        for epoch in bar:
            record = self._epoch(stage, epoch)
            if stage.selects is not None:
                selection, best_test = self._select(index, epoch, record, selection, best_test)
                bar.set_postfix(val=f"{record[f'val_{self.select_metric}']:.4f}", best=f"{selection.value:.4f}")
            self._log(record)
            every = self.config.checkpoint_every
            due = (every and (epoch + 1) % every == 0) or epoch == stage.epochs - 1
            if self._checkpoint_path() is not None and due:
                self._save(self._checkpoint_path(), index, epoch + 1, selection, best_test)
        bar.close()
        if stage.selects is not None and selection.state is not None:
            self.method.players[stage.selects].module.load_state_dict(selection.state)
            if self.output_cache is not None:
                self.output_cache.invalidate(stage.selects)
        return selection, best_test

    def _select_start(
        self, index: int, selection: Selection, best_test: dict[str, float]
    ) -> tuple[Selection, dict[str, float]]:
        """``train.select_start``: score the classifier the game starts from, log it as epoch -1
        and make it the selection that the game's epochs must beat."""
        stage = self.stages[index]
        began = time.perf_counter()
        record: dict[str, Any] = {"stage": stage.name, "epoch": -1}
        record.update(self.evaluator.epoch_record(stage.selects, stage.roles, stage.pretrain, self.config))
        self.seconds += time.perf_counter() - began
        record["seconds"] = round(self.seconds, 3)
        selection, best_test = self._select(index, -1, record, selection, best_test)
        self._log(record)
        return selection, best_test

    def _epoch(self, stage: Stage, epoch: int) -> dict[str, Any]:
        """Train and evaluate one epoch; its record for metrics.jsonl."""
        began = time.perf_counter()
        record: dict[str, Any] = {"stage": stage.name, "epoch": epoch}
        record.update(self._train_epoch(stage, epoch))
        record.update(self._evaluate_epoch(stage))
        if not stage.pretrain and hasattr(self.method, "temperature"):
            record["tau"] = self.method.temperature
        self.seconds += time.perf_counter() - began
        record["seconds"] = round(self.seconds, 3)
        return record

    def _select(
        self, index: int, epoch: int, record: dict[str, Any], selection: Selection, best_test: dict[str, float]
    ) -> tuple[Selection, dict[str, float]]:
        """Keep the epoch if its validation metric is the stage's best so far (in a game stage also
        writing student.pt and best.pt); track the best test score seen (a diagnostic, never used)."""
        stage = self.stages[index]
        value = record[f"val_{self.select_metric}"]
        if value > selection.value:
            state = self.method.players[stage.selects].module.state_dict()
            selection = Selection(value, epoch, copy.deepcopy(state), dict(record))
            if not stage.pretrain:
                self._save_student(selection)
                if self._checkpoint_path() is not None:  # every player at the selected epoch
                    self._save(self.out_dir / "best.pt", index, epoch + 1, selection, best_test)
        test_value = record.get(f"test_{self.select_metric}", -1.0)
        if not stage.pretrain and test_value > best_test.get(self.select_metric, -1.0):
            best_test = {self.select_metric: test_value, "epoch": epoch}
        return selection, best_test

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
        if self.writes:
            write_checkpoint(path, stage=stage, epoch=epoch, seconds=self.seconds, players=self.method.players,
                             selection=selection, best_test=best_test, history=self.history, rng=states,
                             run_info=self.run_info)

    def _load(self, path: Path) -> tuple[int, int, Selection, dict[str, float]]:
        """Restore every player, generator and the history from ``path``; where to continue."""
        state = read_checkpoint(path, self.device, self.method.players, self.stages, self.dist.world)
        set_rng_state(state["rng"][self.dist.rank], self.batches)
        self.seconds = state["seconds"]
        self.history = list(state["history"])
        if self.writes:
            lines = "".join(json.dumps(r) + "\n" for r in self.history)
            (self.out_dir / "metrics.jsonl").write_text(lines)
        return state["stage"], state["epoch"], Selection(**state["selection"]), state["best_test"]
