"""The engine: model checks, divergence handling, selection, checkpoints and resuming."""

import json

import pytest
import torch

from kdgan.config import DataConfig, TrainConfig, load_config
from kdgan.data import load_splits
from kdgan.errors import ConfigError, DataError, DivergenceError
from kdgan.methods import get_method
from kdgan.models.mlp import MLP
from kdgan.training.build import build_trainer, load_student
from kdgan.training.checks import check_models
from kdgan.training.engine import Trainer
from kdgan.training.players import Player
from kdgan.training.runs import find_config, prepare_run_dir

from .conftest import fit_until_killed, tiny_overrides


@pytest.fixture(scope="module")
def splits():
    return load_splits(DataConfig(name="digits", n=100, val_size=100), seed=0)


def test_output_size_mismatch_is_refused_before_training(splits):
    config = load_config(find_config("digits_kdgan"), tiny_overrides())
    trainer = build_trainer(config, splits=splits)
    method = trainer.method
    method.players["teacher"].module.head[-1] = torch.nn.Linear(256, 12)
    with pytest.raises(DataError, match="teacher network outputs shape \\(12,\\) per example but the data has 10"):
        check_models(method, splits)


def test_network_that_cannot_take_the_inputs_is_refused(splits):
    with pytest.raises(ConfigError, match="lenet needs image inputs"):
        flat = splits.train.__class__(splits.train.x.flatten(1), splits.train.y, 10)
        from kdgan.data import Splits

        config = load_config(find_config("digits_kdgan"), tiny_overrides())
        build_trainer(config, splits=Splits(flat, flat, flat))


def test_nan_loss_stops_the_run_and_keeps_the_last_checkpoint(splits, tmp_path):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=3), "method=supervised", "options={}",
                                                        "student.pretrain_epochs=0"])
    trainer = build_trainer(config, splits=splits, out_dir=tmp_path)
    trainer.fit()
    good = torch.load(tmp_path / "last.pt", weights_only=False)
    trainer = build_trainer(config, splits=splits, out_dir=tmp_path / "again")
    original = trainer.method.loss
    trainer.method.loss = lambda role, batch: original(role, batch) * float("nan")
    with pytest.raises(DivergenceError, match=r"student's loss became NaN or infinite at step 0 of epoch 0"):
        trainer.fit()
    assert not (tmp_path / "again" / "final.json").exists()
    assert torch.load(tmp_path / "last.pt", weights_only=False)["epoch"] == good["epoch"]


def test_skip_mode_skips_non_finite_updates(splits):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=2), "method=supervised", "options={}",
                                                        "student.pretrain_epochs=0", "train.on_nonfinite=skip"])
    trainer = build_trainer(config, splits=splits)
    original, calls, finite = trainer.method.loss, [], []
    optimizer = trainer.method.players["student"].optimizer
    real_step = optimizer.step
    optimizer.step = lambda *args, **kwargs: (finite.append(calls[-1]), real_step(*args, **kwargs))[1]

    def every_third_loss_infinite(role, batch):
        calls.append(len(calls) % 3 == 0)
        return original(role, batch) * (float("inf") if calls[-1] else 1.0)

    trainer.method.loss = every_third_loss_infinite
    result = trainer.fit()
    assert not any(finite) and len(finite) == calls.count(False)  # only the finite steps updated the student
    skipped = [r["skipped_student"] for r in result.history if r["stage"] == "train" and r["epoch"] >= 0]
    assert sum(skipped) == calls.count(True) > 0 and all(s > 0 for s in skipped)


def test_selected_epoch_is_the_best_on_validation_and_is_saved(splits, tmp_path):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=4), "train.eval_test_each_epoch=true"])
    result = build_trainer(config, splits=splits, out_dir=tmp_path).fit()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["stage"] == "train"]
    best = max(train, key=lambda r: r["val_accuracy"])
    assert result.selected_epoch == best["epoch"]
    assert result.test["accuracy"] == pytest.approx(best["test_accuracy"])
    assert result.best_test["accuracy"] == pytest.approx(max(r["test_accuracy"] for r in train))
    final = json.loads((tmp_path / "final.json").read_text())
    assert final["test"]["accuracy"] == pytest.approx(result.test["accuracy"])
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["epoch"] == result.selected_epoch + 1
    assert set(best["players"]) == {"student", "teacher", "discriminator"}
    student = load_student(tmp_path)
    logits = student(splits.test.x)
    assert (logits.argmax(-1) == splits.test.y).float().mean().item() == pytest.approx(result.test["accuracy"])


def test_resumed_run_equals_uninterrupted_run(splits, tmp_path):
    overrides = tiny_overrides(epochs=4)
    config = load_config(find_config("digits_kdgan"), overrides)
    full = build_trainer(config, splits=splits, out_dir=tmp_path / "full").fit()

    interrupted = build_trainer(config, splits=splits, out_dir=tmp_path / "cut")
    fit_until_killed(interrupted, 2)
    resumed = build_trainer(config, splits=splits, out_dir=tmp_path / "cut").fit(resume=True)
    assert resumed.test == full.test and resumed.val == full.val
    assert resumed.selected_epoch == full.selected_epoch
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(full.history)


def test_run_directory_is_never_overwritten(tmp_path):
    config = load_config(find_config("digits_kdgan"))
    prepare_run_dir(tmp_path / "run", config, resume=False)
    with pytest.raises(ConfigError, match="already holds a run; pass --resume"):
        prepare_run_dir(tmp_path / "run", config, resume=False)
    changed = load_config(find_config("digits_kdgan"), ["seed=5"])
    with pytest.raises(ConfigError, match="config differs"):
        prepare_run_dir(tmp_path / "run", changed, resume=True)
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["torch"] == torch.__version__ and info["device"] == "cpu"


def test_adversarial_runs_log_discriminator_accuracy_and_tensorboard(splits, tmp_path):
    pytest.importorskip("tensorboard")
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=2), "train.tensorboard=true"])
    result = build_trainer(config, splits=splits, out_dir=tmp_path).fit()
    last = result.history[-1]
    assert 0.0 <= last["d_true_acc"] <= 1.0 and 0.0 <= last["d_fake_acc"] <= 1.0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_game_lr_replaces_the_pretraining_lr_when_the_game_starts(splits):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=2), "student.optimizer.lr=0.002",
                                                        "student.optimizer.game_lr=0.0001"])
    trainer = build_trainer(config, splits=splits)
    seen: dict[str, set[float]] = {"pretrain": set(), "game": set()}
    pretrain_loss, loss = trainer.method.pretrain_loss, trainer.method.loss
    lr = lambda: trainer.method.players["student"].optimizer.param_groups[0]["lr"]  # noqa: E731

    def pretrain(role, batch):
        if role == "student":
            seen["pretrain"].add(lr())
        return pretrain_loss(role, batch)

    def game(role, batch):
        seen["game"].add(lr())
        return loss(role, batch)

    trainer.method.pretrain_loss, trainer.method.loss = pretrain, game
    trainer.fit()
    assert seen == {"pretrain": {0.002}, "game": {0.0001}}
    assert trainer.method.players["teacher"].optimizer.param_groups[0]["lr"] == config.teacher.optimizer.lr


def test_game_lr_must_be_positive():
    with pytest.raises(ConfigError, match="optimizer.game_lr must be > 0"):
        load_config(find_config("digits_kdgan"), ["student.optimizer.game_lr=0"])


@pytest.mark.parametrize("report", [True, False])
def test_report_players_controls_the_teacher_and_discriminator_scores(splits, report):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=1),
                                                        f"train.report_players={str(report).lower()}"])
    record = build_trainer(config, splits=splits).fit().history[-1]
    assert record["stage"] == "train" and "val_accuracy" in record
    reported = {"teacher_val_accuracy", "d_true_acc", "d_fake_acc"} & set(record)
    assert reported == ({"teacher_val_accuracy", "d_true_acc", "d_fake_acc"} if report else set())


def test_skip_mode_logs_the_mean_of_the_finite_steps_only():
    """An epoch whose every other step is skipped logs the mean loss of the steps it kept."""
    splits = load_splits(DataConfig(name="digits", n=100, val_size=100), seed=0)
    module = MLP((1, 8, 8), 10, hidden=[8])
    method = get_method("supervised")({"student": Player(module, torch.optim.SGD(module.parameters(), lr=0.0))})
    loss, kept = method.loss, []

    def infinite_on_odd_steps(role, batch):
        value = loss(role, batch)
        step = len(kept)
        kept.append(float(value) if step % 2 == 0 else None)
        return value * (float("inf") if step % 2 else 1.0)

    method.loss = infinite_on_odd_steps
    result = Trainer(method, splits, TrainConfig(epochs=1, progress=False, on_nonfinite="skip")).fit()
    finite = [v for v in kept if v is not None]
    assert result.history[0]["skipped_student"] == len(kept) - len(finite) == 5
    assert result.history[0]["loss_student"] == pytest.approx(sum(finite) / len(finite), rel=1e-6)


# ------------------------------------------------------------------ train.select_start
def _hurtful_game(select_start: bool) -> list[str]:
    """A well-pretrained digits student (val 0.83) and a game at a learning rate that ruins it."""
    return [*tiny_overrides(epochs=3), "student.pretrain_epochs=20", "student.optimizer.game_lr=0.05",
            f"train.select_start={str(select_start).lower()}", "train.eval_test_each_epoch=true"]


def test_select_start_keeps_the_student_the_game_was_given_when_every_game_epoch_is_worse(splits, tmp_path):
    off = build_trainer(load_config(find_config("digits_kdgan"), _hurtful_game(False)), splits=splits).fit()
    on = build_trainer(load_config(find_config("digits_kdgan"), _hurtful_game(True)), splits=splits,
                       out_dir=tmp_path).fit()
    games = lambda result: [r for r in result.history if r["stage"] == "train"]  # noqa: E731
    start, *epochs = games(on)
    assert start["epoch"] == -1 and [r["epoch"] for r in epochs] == [0, 1, 2]
    pretrained = [r for r in on.history if r["stage"] == "pretrain-student"]
    assert start["val_accuracy"] == max(r["val_accuracy"] for r in pretrained)  # the restored best pretrain epoch
    assert max(r["val_accuracy"] for r in epochs) < start["val_accuracy"]  # the game only hurts here
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(epochs) == strip(games(off))  # it changes the selection, never the training
    assert off.selected_epoch >= 0 and off.val["accuracy"] < start["val_accuracy"]
    assert on.selected_epoch == -1 and on.val["accuracy"] == start["val_accuracy"]
    assert on.test["accuracy"] == pytest.approx(start["test_accuracy"])
    assert on.best_test["accuracy"] == pytest.approx(max(r["test_accuracy"] for r in games(on)))
    saved = load_student(tmp_path)
    accuracy = (saved(splits.test.x).argmax(-1) == splits.test.y).float().mean().item()
    assert accuracy == pytest.approx(on.test["accuracy"])
    assert json.loads((tmp_path / "final.json").read_text())["selected_epoch"] == -1


def test_select_start_picks_a_game_epoch_that_beats_the_start(splits):
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=4), "train.select_start=true"])
    result = build_trainer(config, splits=splits).fit()
    game = [r for r in result.history if r["stage"] == "train"]
    assert game[0]["epoch"] == -1 and game[0]["val_accuracy"] < max(r["val_accuracy"] for r in game[1:])
    best = max(game, key=lambda r: r["val_accuracy"])  # the first of equals: a later epoch must do strictly better
    assert result.selected_epoch == best["epoch"] >= 0


def test_select_start_resumes_exactly(splits, tmp_path):
    config = load_config(find_config("digits_kdgan"), _hurtful_game(True))
    full = build_trainer(config, splits=splits, out_dir=tmp_path / "full").fit()
    interrupted = build_trainer(config, splits=splits, out_dir=tmp_path / "cut")
    fit_until_killed(interrupted, 1)
    resumed = build_trainer(config, splits=splits, out_dir=tmp_path / "cut").fit(resume=True)
    assert (resumed.selected_epoch, resumed.test, resumed.val) == (-1, full.test, full.val)
    lines = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines if r["stage"] == "train"] == [-1, 0, 1, 2]
