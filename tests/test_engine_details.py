"""Details of the training engine that the end-to-end engine tests leave open: the metrics of given
logits, fused optimizers, the once-only huge-loss warning, skip mode with gradient clipping, the
index of the first non-finite step, the seconds bookkeeping, what run directories and checkpoints
hold, checkpoint timing, resuming, the run lock and the TensorBoard steps."""

from __future__ import annotations

import json
import re
import threading
import warnings

import pytest
import torch
import yaml

import kdgan.training.engine as engine
import kdgan.training.tracking as tracking
from kdgan.config import DataConfig, OptimizerConfig, TrainConfig, load_config
from kdgan.data import load_splits
from kdgan.errors import DivergenceError, RunInUseError
from kdgan.methods import get_method
from kdgan.methods.supervised import SupervisedOptions
from kdgan.models.mlp import MLP
from kdgan.training.build import build_trainer
from kdgan.training.diagnostics import gradient_norms
from kdgan.training.engine import Trainer
from kdgan.training.players import Player
from kdgan.training.runlock import run_lock
from kdgan.training.runs import find_config

from .conftest import fit_until_killed, tiny_overrides


@pytest.fixture(scope="module")
def splits():
    return load_splits(DataConfig(name="digits", n=100, val_size=100), seed=0)


def supervised(splits, lr: float = 0.0, role: str = "student", **trainer) -> Trainer:
    """A plain-MLP supervised run (SGD at ``lr``; 0 keeps every loss the same) of 10 steps per epoch."""
    torch.manual_seed(0)
    module = MLP((1, 8, 8), 10, hidden=[8])
    method = get_method("supervised")({role: Player(module, torch.optim.SGD(module.parameters(), lr=lr))},
                                      SupervisedOptions(player=role))
    trainer.setdefault("config", TrainConfig(epochs=1, progress=False))
    return Trainer(method, splits, **trainer)


def distn(splits, **trainer) -> Trainer:
    """A DISTN run of small MLPs whose student is pretrained for one epoch (a stage before the game)."""
    torch.manual_seed(0)
    players = {role: Player.create(MLP((1, 8, 8), 10, hidden=[8])) for role in ("teacher", "student")}
    trainer.setdefault("config", TrainConfig(epochs=1, progress=False))
    return Trainer(get_method("distn")(players), splits, pretrain_epochs={"student": 1}, **trainer)


def config(**options) -> TrainConfig:
    return TrainConfig(**{"epochs": 1, "progress": False, **options})


def scaled_loss(trainer: Trainer, factor) -> list[float]:
    """Multiply the student's loss by ``factor(step)``; returns the list of unscaled losses seen."""
    loss, seen = trainer.method.loss, []

    def scaled(role, batch):
        value = loss(role, batch)
        seen.append(float(value))
        return value * factor(len(seen) - 1)

    trainer.method.loss = scaled
    return seen


# ----------------------------------------------------------------- evaluation
def test_evaluate_scores_the_logits_it_is_given(splits):
    trainer = supervised(splits)
    y = splits.val.y
    right = torch.nn.functional.one_hot(y, 10).float()
    wrong = torch.nn.functional.one_hot((y + 1) % 10, 10).float()
    assert trainer.evaluate("student", "val", right)["accuracy"] == 1.0
    assert trainer.evaluate("student", "val", wrong)["accuracy"] == 0.0
    assert trainer.evaluator.metrics("student", "val", right)["accuracy"] == 1.0


def test_an_epoch_record_scores_validation_with_one_forward_pass(splits):
    trainer = supervised(splits)
    logits, calls = trainer.method.logits, []
    trainer.method.logits = lambda role, batch: calls.append((role, len(batch.x))) or logits(role, batch)
    record = trainer.evaluator.epoch_record("student", ("student",), True, config())
    assert calls == [("student", len(splits.val))]  # one batch of 100 rows (eval batch 1000), never twice
    assert 0.0 <= record["val_accuracy"] <= 1.0


def test_bf16_precision_autocasts_to_bfloat16_on_every_device(splits):
    trainer = supervised(splits, config=config(precision="bf16"))
    assert trainer.autocast().fast_dtype == torch.bfloat16
    trainer.device = torch.device("cuda")  # CUDA's own autocast default is float16
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "CUDA is not available": only the dtype is read here
        assert trainer.autocast().fast_dtype == torch.bfloat16


# ----------------------------------------------------------------- players
@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_players_get_fused_optimizers(name):
    player = Player.create(torch.nn.Linear(3, 2), OptimizerConfig(name=name))
    assert player.optimizer.param_groups[0]["fused"] is True
    assert player.optimizer.defaults["fused"] is True


def test_the_game_lr_becomes_the_schedules_base_lr():
    player = Player.create(torch.nn.Linear(3, 2), OptimizerConfig(lr=0.01, lr_decay=0.5, game_lr=0.001))
    player.start_game()
    assert player.scheduler.base_lrs == [0.001]
    assert player.scheduler.state_dict()["base_lrs"] == [0.001]  # what last.pt keeps
    player.scheduler.step()
    assert player.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005)


# ----------------------------------------------------------------- steps
def test_a_parameter_the_loss_does_not_reach_is_left_alone(splits):
    """Gradients are set to None before each update, so weight decay never moves a parameter whose
    gradient is left over from an earlier loss (a zeroed gradient would)."""
    trainer = supervised(splits)
    module = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    player = Player(module, torch.optim.SGD(module.parameters(), lr=0.1, weight_decay=0.5))
    unused = module[1].weight
    before = unused.detach().clone()
    unused.grad = torch.ones_like(unused)
    assert trainer._step(player, module[0](torch.ones(1, 2)).sum())
    assert unused.grad is None
    assert torch.equal(unused.detach(), before)


class _InfiniteGradient(torch.autograd.Function):
    """Identity forward (a finite loss), infinite gradient backward."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


def test_skip_mode_with_grad_clip_skips_exactly_the_steps_with_non_finite_gradients(splits):
    trainer = supervised(splits, config=config(epochs=2, on_nonfinite="skip", grad_clip=1.0))
    loss, infinite = trainer.method.loss, []

    def every_third_gradient_infinite(role, batch):
        infinite.append(len(infinite) % 3 == 0)
        value = loss(role, batch)
        return _InfiniteGradient.apply(value) if infinite[-1] else value

    trainer.method.loss = every_third_gradient_infinite
    optimizer, updates = trainer.method.players["student"].optimizer, []
    real_step = optimizer.step
    optimizer.step = lambda *args, **kwargs: (updates.append(infinite[-1]), real_step(*args, **kwargs))[1]
    result = trainer.fit()
    assert not any(updates) and len(updates) == infinite.count(False) == 13
    assert [r["skipped_student"] for r in result.history] == [4, 3]  # steps 0, 3, 6, 9 | 12, 15, 18 of 20


def test_the_first_non_finite_step_is_named(splits):
    trainer = supervised(splits)
    scaled_loss(trainer, lambda step: float("nan") if step >= 2 else 1.0)
    with pytest.raises(DivergenceError, match=r"student's loss became NaN or infinite at step 2 of epoch 0 \(train\)"):
        trainer.fit()


def test_skip_mode_logs_the_one_finite_step_of_an_epoch(splits):
    trainer = supervised(splits, config=config(on_nonfinite="skip"))
    seen = scaled_loss(trainer, lambda step: 1.0 if step == 4 else float("inf"))
    record = trainer.fit().history[0]
    assert record["skipped_student"] == 9
    assert record["loss_student"] == pytest.approx(seen[4], rel=1e-6)


def test_a_huge_mean_loss_is_warned_of_once_per_player(splits):
    trainer = supervised(splits, config=config(epochs=3))
    scaled_loss(trainer, lambda step: 1e8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = trainer.fit()
    assert len(result.history) == 3 and all(r["loss_student"] > 1e6 for r in result.history)
    huge = [str(w.message) for w in caught if "mean loss" in str(w.message)]
    assert len(huge) == 1, huge
    assert caught[[str(w.message) for w in caught].index(huge[0])].category is RuntimeWarning
    assert huge[0].startswith("the student's mean loss in epoch 0 (train) is 2.")
    assert "e+08: training is probably diverging" in huge[0]


# ----------------------------------------------------------------- records and seconds
class _Clock:
    """perf_counter for the engine alone: each call 0.1234567 s after the last."""

    def __init__(self) -> None:
        self.calls = 0

    def perf_counter(self) -> float:
        self.calls += 1
        return self.calls * 0.1234567


def test_seconds_accumulate_over_every_timed_record_with_three_decimals(splits, monkeypatch):
    monkeypatch.setattr(engine, "time", _Clock())
    trainer = distn(splits, config=config(epochs=2, select_start=True))
    result = trainer.fit()
    assert [(r["stage"], r["epoch"]) for r in result.history] == [("pretrain-student", 0), ("train", -1),
                                                                    ("train", 0), ("train", 1)]
    expected = [round(k * 0.1234567, 3) for k in range(1, 5)]  # 0.123, 0.247, 0.37, 0.494
    assert [r["seconds"] for r in result.history] == expected
    assert all(isinstance(r["seconds"], float) for r in result.history)
    assert result.seconds == expected[-1]


def test_pretraining_records_hold_no_game_only_scores(splits):
    trainer = distn(splits, config=config(eval_test_each_epoch=True))
    pretrain, game = trainer.fit().history
    assert pretrain["stage"] == "pretrain-student" and "val_accuracy" in pretrain
    assert not [k for k in pretrain if k.startswith("test_")]
    assert "test_accuracy" in game


def test_the_result_names_the_method(splits, tmp_path):
    result = supervised(splits, out_dir=tmp_path).fit()
    assert result.method == "supervised"
    assert json.loads((tmp_path / "final.json").read_text())["method"] == "supervised"


# ----------------------------------------------------------------- run directory files
def test_a_fresh_run_replaces_what_an_earlier_run_left(splits, tmp_path):
    (tmp_path / "config.yaml").write_text("old: 1\n")
    (tmp_path / "metrics.jsonl").write_text('{"stage": "old"}\n')
    trainer = supervised(splits, out_dir=tmp_path, run_info={"config": {"seed": 3}}, config=config(epochs=2))
    result = trainer.fit()
    assert yaml.safe_load((tmp_path / "config.yaml").read_text()) == {"seed": 3}
    assert json.loads((tmp_path / "run.json").read_text())["device"] == "cpu"
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == result.history


def test_a_second_fit_of_one_trainer_starts_its_record_and_clock_again(splits, tmp_path, monkeypatch):
    ticks = iter(range(10_000))
    monkeypatch.setattr(engine.time, "perf_counter", lambda: float(next(ticks)))  # 1 s per reading
    trainer = supervised(splits, out_dir=tmp_path, config=config(epochs=2))
    first = trainer.fit()
    reporter = trainer.history  # kdgan tune swaps in its own list: a new fit must keep that object
    second = trainer.fit()
    assert [r["epoch"] for r in second.history] == [0, 1]
    assert trainer.history is reporter
    assert second.seconds == first.seconds > 0
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == second.history


def test_resume_without_an_out_dir_starts_afresh(splits):
    result = supervised(splits).fit(resume=True)
    assert [r["epoch"] for r in result.history] == [0]


def test_fit_holds_the_run_lock(splits, tmp_path):
    trainer = supervised(splits, out_dir=tmp_path)
    loss, refused = trainer.method.loss, []

    def try_the_lock():
        try:
            with run_lock(tmp_path):
                refused.append(False)
        except RunInUseError:
            refused.append(True)

    def loss_that_checks_the_lock(role, batch):
        if not refused:
            other = threading.Thread(target=try_the_lock)
            other.start()
            other.join()
        return loss(role, batch)

    trainer.method.loss = loss_that_checks_the_lock
    trainer.fit()
    assert refused == [True]


def test_checkpoints_keep_the_selection_best_test_and_run_info(splits, tmp_path):
    trainer = supervised(splits, lr=0.05, out_dir=tmp_path, run_info={"note": "kept"},
                         config=config(epochs=3, eval_test_each_epoch=True))
    result = trainer.fit()
    last = torch.load(tmp_path / "last.pt", weights_only=False)
    assert last["run_info"] == {"note": "kept"}
    selected = [r for r in result.history if r["epoch"] == result.selected_epoch]
    assert last["selection"]["metrics"] == selected[0]
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert isinstance(best["best_test"], dict) and best["run_info"] == {"note": "kept"}
    assert best["selection"]["metrics"] == selected[0]


def test_checkpoints_are_written_every_checkpoint_every_epochs_and_at_the_end(splits, tmp_path):
    trainer = supervised(splits, out_dir=tmp_path, config=config(epochs=7, checkpoint_every=3))
    save, saved = trainer._save, []
    trainer._save = lambda path, stage, epoch, *rest: (saved.append((path.name, epoch)), save(path, stage, epoch,
                                                                                              *rest))[1]
    trainer.fit()
    assert [epoch for name, epoch in saved if name == "last.pt"] == [3, 6, 7]


def test_resume_rewrites_metrics_from_the_checkpoint(splits, tmp_path):
    make = lambda: supervised(splits, out_dir=tmp_path, config=config(epochs=4, checkpoint_every=2))  # noqa: E731
    interrupted = make()
    fit_until_killed(interrupted, 3)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3  # epoch 2 is past last.pt (epoch 2)
    result = make().fit(resume=True)
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2, 3]
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]


def test_the_student_file_records_the_models_in_shape_and_the_evaluated_role(splits, tmp_path):
    supervised(splits, out_dir=tmp_path / "a", run_info={"model": {"in_shape": [1, 64]}}).fit()
    student = torch.load(tmp_path / "a" / "student.pt", weights_only=False)
    assert student["model"]["in_shape"] == [1, 64]
    supervised(splits, role="teacher", out_dir=tmp_path / "b").fit()
    teacher = torch.load(tmp_path / "b" / "student.pt", weights_only=False)
    assert teacher["role"] == teacher["model"]["role"] == "teacher"
    assert teacher["model"]["in_shape"] == [1, 8, 8]


# ----------------------------------------------------------------- tensorboard
class _Board:
    """Stands in for TensorBoardLogger: keeps the steps it is given."""

    steps: list = []

    def __init__(self, log_dir) -> None:
        self.log_dir = log_dir

    def log(self, record, step=None) -> int:
        _Board.steps.append(step)
        return len(record)

    def flush(self) -> None:
        pass


def test_tensorboard_steps_count_the_records_and_only_when_asked(splits, tmp_path, monkeypatch):
    supervised(splits, out_dir=tmp_path / "off", config=config(epochs=2)).fit()
    assert not (tmp_path / "off" / "tensorboard").exists()
    monkeypatch.setattr(tracking, "TensorBoardLogger", _Board)
    monkeypatch.setattr(_Board, "steps", [])
    trainer = distn(splits, out_dir=tmp_path / "on", config=config(epochs=3, tensorboard=True))
    result = trainer.fit()
    assert _Board.steps == [1, 2, 3, 4] == list(range(1, len(result.history) + 1))
    assert trainer.tensorboard.log_dir == tmp_path / "on" / "tensorboard"


# ----------------------------------------------------------------- output cache
def test_the_output_cache_fills_in_chunks_of_the_eval_batch(splits):
    overrides = [*tiny_overrides(epochs=1), "method=distn", "options={}", "data.eval_batch_size=30"]
    trainer = build_trainer(load_config(find_config("digits_kdgan"), overrides), splits=splits)
    network_logits, sizes = trainer.method.network_logits, []
    trainer.method.network_logits = lambda role, batch: sizes.append(len(batch.x)) or network_logits(role, batch)
    trainer.fit()
    assert trainer.output_cache is not None and trainer.output_cache.chunk == 30
    assert max(sizes) == 30  # never the whole training split in one forward pass


# ----------------------------------------------------------------- diagnostics
def test_diagnostics_measure_the_gradients_under_the_runs_precision(splits):
    trainer = distn(splits, config=config(precision="bf16", diagnostics=True))
    record = trainer.fit().history[-1]  # one game epoch: the selected state is the state it measured
    probe = splits.train.batch(torch.arange(10))
    bf16 = gradient_norms(trainer.method, ("student",), probe, trainer.autocast)
    fp32 = gradient_norms(trainer.method, ("student",), probe)
    assert set(bf16) == {"grad_student_loss"} <= set(record)
    assert {k: record[k] for k in bf16} == bf16
    assert bf16 != fp32  # the precision shows in the norms, so the record above is bf16's


# ----------------------------------------------------------------- progress bars
def test_the_progress_bar_shows_the_scores_and_leaves_nothing_behind(splits, capsys):
    supervised(splits, config=config(epochs=3, progress=True)).fit()
    err = capsys.readouterr().err
    assert "supervised train:" in err and "/3 [" in err
    assert re.search(r"best=0\.\d{4}, val=0\.\d{4}\]", err)
    assert "\n" not in err and err.endswith("\r") and not err.split("\r")[-2].strip()  # the bar is erased


def test_a_resumed_stage_shows_its_progress_from_where_it_stopped(splits, tmp_path, capsys):
    make = lambda progress: supervised(splits, out_dir=tmp_path, config=config(epochs=4, progress=progress))  # noqa: E731
    interrupted = make(False)
    fit_until_killed(interrupted, 2)
    capsys.readouterr()
    make(True).fit(resume=True)
    err = capsys.readouterr().err
    assert "| 2/4 [" in err and "0/4" not in err and "/2 [" not in err
