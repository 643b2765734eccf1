"""Every training option changes training the way it says: the engine's update against the same
update done by hand (plain tensor arithmetic, no torch.optim), so that an ignored option fails.

The student is a linear layer with fixed weights on eight fixed examples, trained with one
full batch per step, so every gradient is known exactly.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from kdgan.config import DataConfig, OptimizerConfig, TrainConfig
from kdgan.data import load_splits
from kdgan.data.core import Splits, TensorData
from kdgan.methods import Mimic, NaGAN, Supervised
from kdgan.training.engine import Trainer
from kdgan.training.players import Player

K = 4
X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, -1.0],
                  [0.0, -0.5, 0.9], [2.0, 0.1, 0.3], [-1.2, -0.4, 0.6], [0.7, 1.4, -0.2]])
Y = torch.tensor([0, 3, 1, 2, 3, 0, 1, 2])
XV = X.flip(0) * 0.8 + 0.1
SPLITS = Splits(TensorData(X, Y, K), TensorData(XV, Y, K), TensorData(XV, Y.flip(0), K))


def linear(scale: float = 0.9) -> nn.Linear:
    layer = nn.Linear(3, K)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(3 * K, dtype=torch.float32).reshape(K, 3).sin() * scale)
        layer.bias.copy_(torch.arange(K, dtype=torch.float32) * 0.3 - 0.2)
    return layer


def trainer(optimizer: OptimizerConfig, passes: int = 1, batch_size: int = len(X), **train) -> Trainer:
    player = Player.create(linear(), optimizer, passes)
    config = TrainConfig(**{"epochs": 1, "progress": False, **train})
    return Trainer(Supervised({"student": player}), SPLITS, config, batch_size=batch_size)


def params(t: Trainer) -> list[Tensor]:
    module = t.method.players["student"].module
    return [module.weight.detach(), module.bias.detach()]


def start() -> list[Tensor]:
    module = linear()
    return [module.weight.detach().clone(), module.bias.detach().clone()]


def grads(w: Tensor, b: Tensor) -> list[Tensor]:
    """Gradient of the mean cross-entropy on (X, Y) for logits ``X w^T + b``, by hand:
    ``dL/dz = (softmax(z) - onehot(y)) / B``."""
    z = X @ w.T + b
    p = (z - z.logsumexp(-1, keepdim=True)).exp()
    dz = (p - (Y.unsqueeze(-1) == torch.arange(K)).float()) / len(X)
    return [dz.T @ X, dz.sum(0)]


def sgd(steps: int, lrs: list[float] | float, momentum: float = 0.0, weight_decay: float = 0.0,
        clip: float | None = None) -> list[Tensor]:
    """``steps`` full-batch SGD updates written out: ``d = g + wd p``, ``buf = m buf + d`` (``buf = d``
    at the first step), ``p -= lr buf``; with ``clip``, ``g`` is first scaled to total norm <= clip."""
    p = start()
    lrs = lrs if isinstance(lrs, list) else [lrs] * steps
    buf: list[Tensor] | None = None
    for lr in lrs:
        g = grads(*p)
        if clip is not None:
            norm = math.sqrt(sum((gi**2).sum().item() for gi in g))
            g = [gi * min(1.0, clip / (norm + 1e-6)) for gi in g]
        d = [gi + weight_decay * pi for gi, pi in zip(g, p)]
        buf = d if buf is None else [momentum * bi + di for bi, di in zip(buf, d)]
        p = [pi - lr * bi for pi, bi in zip(p, buf)]
    return p


def close(a: list[Tensor], b: list[Tensor]) -> bool:
    return all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))


def test_sgd_lr_momentum_and_weight_decay_by_hand():
    t = trainer(OptimizerConfig(name="sgd", lr=0.3, momentum=0.7, weight_decay=0.2), passes=2)
    t.fit()
    assert close(params(t), sgd(2, 0.3, momentum=0.7, weight_decay=0.2))
    # the options matter: each dropped in turn gives other weights
    assert not close(params(t), sgd(2, 0.3, momentum=0.0, weight_decay=0.2))
    assert not close(params(t), sgd(2, 0.3, momentum=0.7, weight_decay=0.0))
    assert not close(params(t), sgd(2, 0.1, momentum=0.7, weight_decay=0.2))


def test_passes_make_that_many_steps_per_epoch():
    t = trainer(OptimizerConfig(name="sgd", lr=0.5, momentum=0.0), passes=3)
    t.fit()
    assert close(params(t), sgd(3, 0.5))
    assert not close(params(t), sgd(1, 0.5))


def test_lr_decay_multiplies_the_lr_after_each_game_epoch():
    t = trainer(OptimizerConfig(name="sgd", lr=0.4, momentum=0.0, lr_decay=0.5), epochs=3)
    stage = t.stages[-1]
    for epoch in range(2):
        t._train_epoch(stage, epoch)
    assert close(params(t), sgd(2, [0.4, 0.2]))
    assert not close(params(t), sgd(2, 0.4))
    t._train_epoch(stage, 2)
    assert t.method.players["student"].optimizer.param_groups[0]["lr"] == pytest.approx(0.4 * 0.5**3)


def test_lr_decay_is_not_applied_during_pretraining():
    player = Player.create(linear(), OptimizerConfig(name="sgd", lr=0.4, momentum=0.0, lr_decay=0.5))
    teacher = Player.create(linear(-0.5), OptimizerConfig(name="sgd", lr=0.1))
    t = Trainer(Mimic({"student": player, "teacher": teacher}), SPLITS, TrainConfig(progress=False, epochs=1),
                batch_size=len(X), pretrain_epochs={"student": 2})
    t.fit()
    assert [r["stage"] for r in t.history] == ["pretrain-student"] * 2 + ["train"]
    assert player.optimizer.param_groups[0]["lr"] == pytest.approx(0.4 * 0.5)  # one game epoch, one decay


def test_game_lr_is_used_from_the_first_game_epoch_and_then_decays():
    t = trainer(OptimizerConfig(name="sgd", lr=0.4, momentum=0.0, lr_decay=0.5, game_lr=0.1))
    t.fit()
    assert close(params(t), sgd(1, 0.1))
    assert t.method.players["student"].optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_grad_clip_scales_the_gradient_to_the_given_norm():
    norm = math.sqrt(sum((g**2).sum().item() for g in grads(*start())))
    clip = norm / 4  # well below the gradient's norm, so clipping changes the step
    t = trainer(OptimizerConfig(name="sgd", lr=0.5, momentum=0.0), grad_clip=clip)
    t.fit()
    assert close(params(t), sgd(1, 0.5, clip=clip))
    assert not close(params(t), sgd(1, 0.5))


def adam_step(lr: float, weight_decay: float, decoupled: bool) -> list[Tensor]:
    """One Adam(W) step from the start: the bias-corrected moments are g and g^2, so the update is
    ``lr g / (|g| + eps)``; Adam adds ``wd p`` to g, AdamW multiplies p by ``1 - lr wd`` first."""
    p, eps = start(), 1e-8
    out = []
    for pi, gi in zip(p, grads(*p)):
        if decoupled:
            pi = pi * (1 - lr * weight_decay)
        else:
            gi = gi + weight_decay * pi
        out.append(pi - lr * gi / (gi.abs() + eps))
    return out


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_and_adamw_weight_decay_by_hand(name):
    t = trainer(OptimizerConfig(name=name, lr=0.05, weight_decay=0.5))
    t.fit()
    assert close(params(t), adam_step(0.05, 0.5, decoupled=name == "adamw"))
    assert not close(params(t), adam_step(0.05, 0.5, decoupled=name != "adamw"))
    assert not close(params(t), adam_step(0.05, 0.0, decoupled=False))


def test_batch_size_sets_the_steps_and_every_example_is_seen_once_per_epoch():
    t = trainer(OptimizerConfig(), batch_size=3, epochs=2)
    seen: list[list[int]] = []
    loss = t.method.loss

    def recording(role, batch):
        seen.append(batch.index.tolist())
        return loss(role, batch)

    t.method.loss = recording
    t.fit()
    assert [len(b) for b in seen] == [3, 3, 2, 3, 3, 2]
    assert sorted(sum(seen[:3], [])) == list(range(8)) == sorted(sum(seen[3:], []))
    assert seen[:3] != seen[3:]  # a new permutation each epoch


def test_eval_test_each_epoch_adds_test_scores_to_each_game_epoch():
    for flag in (False, True):
        history = trainer(OptimizerConfig(), epochs=2, eval_test_each_epoch=flag).fit().history
        assert all(("test_accuracy" in record) == flag for record in history)


def test_bf16_precision_autocasts_the_forward_passes():
    for precision, expected in (("fp32", False), ("bf16", True)):
        t = trainer(OptimizerConfig(), precision=precision)
        enabled: list[bool] = []
        loss = t.method.loss

        def recording(role, batch, loss=loss, enabled=enabled):
            enabled.append(torch.is_autocast_enabled("cpu"))
            return loss(role, batch)

        t.method.loss = recording
        t.fit()
        assert enabled == [expected]


def test_discriminator_report_by_hand():
    """d_true_acc: true pairs scored above 1/2 (logit > 0); d_fake_acc: the student's top label
    scored below 1/2."""
    student, disc = linear(), nn.Linear(3, K)
    with torch.no_grad():
        disc.weight.copy_(torch.arange(3 * K, dtype=torch.float32).reshape(K, 3).cos())
        disc.bias.copy_(torch.tensor([0.1, -0.3, 0.2, -0.1]))
    method = NaGAN({"student": Player.create(student), "discriminator": Player.create(disc)})
    t = Trainer(method, SPLITS, TrainConfig(progress=False, epochs=0))
    with torch.no_grad():
        logits, scores = student(XV), disc(XV)
    true_score = scores[torch.arange(len(XV)), Y]
    fake_score = scores[torch.arange(len(XV)), logits.argmax(-1)]
    expected = {"d_true_acc": (true_score > 0).float().mean().item(),
                "d_fake_acc": (fake_score < 0).float().mean().item()}
    assert 0 < expected["d_true_acc"] < 1 and expected["d_true_acc"] != 1 - expected["d_fake_acc"]
    report = t.discriminator_report(logits)
    assert {k: report[k] for k in expected} == pytest.approx(expected)


# ----------------------------------------------------------------- normalisation statistics
def test_per_feature_statistics_come_from_the_labelled_training_split_only():
    raw = load_splits(DataConfig(name="digits", n=50, val_size=100), seed=0)
    normed = load_splits(DataConfig(name="digits", n=50, val_size=100, normalize="per_feature"), seed=0)
    mean, std = raw.train.x.mean(0), raw.train.x.std(0).clamp_min(1e-6)
    pooled = torch.cat([raw.train.x, raw.val.x]).mean(0)
    assert not torch.allclose(mean, pooled, atol=1e-3)  # the splits differ, so the source matters
    for part in ("train", "val", "test"):
        expected = (getattr(raw, part).x - mean) / std
        assert torch.allclose(getattr(normed, part).x, expected, atol=1e-5), part
    assert torch.allclose(normed.preprocess["mean"], mean) and torch.allclose(normed.preprocess["std"], std)
    assert torch.equal(normed.train.y, raw.train.y) and torch.equal(normed.test.y, raw.test.y)


def test_per_image_standardises_each_example_on_its_own():
    raw = load_splits(DataConfig(name="digits", n=50, val_size=100), seed=0)
    normed = load_splits(DataConfig(name="digits", n=50, val_size=100, normalize="per_image"), seed=0)
    for part in ("train", "val", "test"):
        x = getattr(raw, part).x.flatten(1)
        std = x.std(1, correction=0, keepdim=True).clamp_min(1 / math.sqrt(x.shape[1]))
        expected = ((x - x.mean(1, keepdim=True)) / std).reshape(getattr(raw, part).x.shape)
        assert torch.allclose(getattr(normed, part).x, expected, atol=1e-5), part
    assert normed.preprocess == {"kind": "per_image"}


def test_a_players_checkpoint_restores_its_optimizer_and_lr_schedule():
    """Resuming must continue the decay where it stopped: the scheduler's state is saved and loaded."""
    config = OptimizerConfig(name="sgd", lr=0.4, momentum=0.5, lr_decay=0.5)
    t = trainer(config, epochs=2)
    t._train_epoch(t.stages[-1], 0)
    player = t.method.players["student"]
    state = player.state_dict()
    assert state["scheduler"] == player.scheduler.state_dict() and state["scheduler"]["last_epoch"] == 1
    fresh = Player.create(linear(0.1), config)
    fresh.load_state_dict(state)
    assert fresh.scheduler.state_dict() == player.scheduler.state_dict()
    assert fresh.optimizer.param_groups[0]["lr"] == player.optimizer.param_groups[0]["lr"] == 0.2
    for mine, theirs in zip(fresh.module.parameters(), player.module.parameters()):
        buffers = fresh.optimizer.state[mine]["momentum_buffer"], player.optimizer.state[theirs]["momentum_buffer"]
        assert torch.equal(*buffers)
    assert torch.equal(fresh.module.weight, player.module.weight)
    plain = Player.create(linear(), OptimizerConfig(name="sgd", lr=0.4))
    assert plain.scheduler is None and plain.state_dict()["scheduler"] is None
    plain.load_state_dict(state)  # a scheduler state for a player without decay is ignored
    assert plain.scheduler is None


def test_run_result_summary_leaves_out_the_history():
    result = trainer(OptimizerConfig(), epochs=1).fit()
    summary = result.to_dict()
    assert "history" not in summary and len(result.history) == 1
    assert set(summary) == {"method", "selected_epoch", "val", "test", "best_test", "seconds"}


# ----------------------------------------------------------------- the loop's records and files
def test_progress_shows_a_bar_named_after_the_stage_only_when_asked(capsys):
    for progress in (False, True):
        trainer(OptimizerConfig(), epochs=2, progress=progress).fit()
        err = capsys.readouterr().err
        assert ("supervised train" in err) == progress, err


@pytest.mark.parametrize(("every", "saved"), [(2, [2, 4, 5]), (0, [5]), (1, [1, 2, 3, 4, 5])])
def test_checkpoint_every_writes_last_pt_every_n_epochs_and_at_the_end(tmp_path, every, saved):
    t = Trainer(Supervised({"student": Player.create(linear())}), SPLITS,
                TrainConfig(progress=False, epochs=5, checkpoint_every=every), batch_size=len(X), out_dir=tmp_path)
    calls: list[tuple[str, int, int]] = []
    save = t._save

    def recording(path, stage, epoch, selection, best_test):
        calls.append((path.name, stage, epoch))
        save(path, stage, epoch, selection, best_test)

    t._save = recording
    t.fit()
    assert [epoch for name, _, epoch in calls if name == "last.pt"] == saved
    assert all(stage == 0 for _, stage, _ in calls)  # the game is this run's only stage
    improved, top = [], float("-inf")  # best.pt: every player whenever validation improves
    for record in t.history:
        if record["val_accuracy"] > top:
            improved, top = [*improved, record["epoch"] + 1], record["val_accuracy"]
    assert [epoch for name, _, epoch in calls if name == "best.pt"] == improved


def test_game_records_hold_the_annealed_temperature_and_pretraining_records_do_not():
    players = {"student": Player.create(linear()), "discriminator": Player.create(linear(-0.7))}
    method = NaGAN(players, NaGAN.Options(tau_start=2.0, tau_end=0.5, estimator="exact"))
    t = Trainer(method, SPLITS, TrainConfig(progress=False, epochs=3), batch_size=len(X),
                pretrain_epochs={"discriminator": 1})
    history = t.fit().history
    assert [r["stage"] for r in history] == ["pretrain-discriminator", "train", "train", "train"]
    assert "tau" not in history[0]
    assert [r["tau"] for r in history[1:]] == pytest.approx([2.0, 1.0, 0.5])


def test_seconds_add_up_the_epochs_training_time(monkeypatch):
    import itertools

    from kdgan.training import engine
    clock = itertools.count(start=0.0, step=0.12345)
    monkeypatch.setattr(engine.time, "perf_counter", lambda: next(clock))
    result = trainer(OptimizerConfig(), epochs=3).fit()
    assert [r["seconds"] for r in result.history] == [0.123, 0.247, 0.37]  # 0.12345 per epoch, rounded
    assert result.seconds == 0.37


def test_selection_keeps_the_first_of_equally_good_epochs_and_best_test_the_first_best():
    frozen = OptimizerConfig(name="sgd", lr=1e-12, momentum=0.0)  # nothing changes: every epoch ties
    result = trainer(frozen, epochs=3, eval_test_each_epoch=True).fit()
    assert result.selected_epoch == 0
    assert result.best_test == {"accuracy": result.history[0]["test_accuracy"], "epoch": 0}
    assert trainer(frozen, epochs=2).fit().best_test == {}  # no test scores per epoch: no best test


def test_best_test_is_the_highest_test_score_of_any_game_epoch():
    result = trainer(OptimizerConfig(name="sgd", lr=0.5, momentum=0.0), epochs=6, eval_test_each_epoch=True).fit()
    scores = [r["test_accuracy"] for r in result.history]
    assert result.best_test == {"accuracy": max(scores), "epoch": scores.index(max(scores))}


def test_fit_does_not_resume_unless_asked(tmp_path):
    def make() -> Trainer:
        return Trainer(Supervised({"student": Player.create(linear())}), SPLITS,
                       TrainConfig(progress=False, epochs=2), batch_size=len(X), out_dir=tmp_path)

    make().fit()
    fresh = make()
    fresh._load = lambda path: pytest.fail("fit() resumed without resume=True")
    assert len(fresh.fit().history) == 2
    resumed = make()
    loaded: list[str] = []
    load = resumed._load
    resumed._load = lambda path: loaded.append(path.name) or load(path)
    resumed.fit(resume=True)
    assert loaded == ["last.pt"]


def test_kdgan_game_records_score_the_teacher_but_not_the_discriminator_as_a_classifier():
    from kdgan.methods import KDGAN

    players = {"student": Player.create(linear()), "teacher": Player.create(linear(-0.5)),
               "discriminator": Player.create(linear(0.4))}
    t = Trainer(KDGAN(players, KDGAN.Options(estimator="exact")), SPLITS, TrainConfig(progress=False, epochs=1),
                batch_size=len(X))
    record = t.fit().history[-1]
    assert {"loss_discriminator", "loss_teacher", "loss_student", "teacher_val_accuracy", "d_true_acc",
            "d_fake_acc", "tau", "val_accuracy"} <= set(record)
    assert not [key for key in record if key.startswith(("discriminator_val", "student_val"))]
    assert all(p.requires_grad for player in players.values() for p in player.module.parameters())


def test_run_files_hold_the_history_the_result_and_the_selected_student(tmp_path):
    import json

    from kdgan.storage import load_checkpoint

    splits = Splits(SPLITS.train, SPLITS.val, SPLITS.test, label_names=["a", "b", "c", "d"],
                    preprocess={"kind": "per_image"})
    t = Trainer(Supervised({"student": Player.create(linear())}), splits, TrainConfig(progress=False, epochs=3),
                batch_size=len(X), out_dir=tmp_path, run_info={"note": "mine"})
    result = t.fit()
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == result.history
    final = (tmp_path / "final.json").read_text()
    assert json.loads(final) == json.loads(json.dumps(result.to_dict())) and final.startswith('{\n  "method"')
    student = load_checkpoint(tmp_path / "student.pt")
    assert student["epoch"] == result.selected_epoch and student["metric"] == "accuracy"
    assert student["val_value"] == result.val["accuracy"] and student["run_info"] == {"note": "mine"}
    assert student["role"] == "student" and student["model"]["in_shape"] == [3]
    assert student["label_names"] == ["a", "b", "c", "d"] and student["preprocess"] == {"kind": "per_image"}
    assert torch.equal(student["state_dict"]["weight"], t.method.players["student"].module.weight)


def test_a_run_without_game_epochs_saves_the_student_as_it_is(tmp_path):
    t = Trainer(Supervised({"student": Player.create(linear())}), SPLITS, TrainConfig(progress=False, epochs=0),
                batch_size=len(X), out_dir=tmp_path)
    result = t.fit()
    from kdgan.storage import load_checkpoint

    student = load_checkpoint(tmp_path / "student.pt")
    assert student["epoch"] == -1 == result.selected_epoch and student["val_value"] == result.val["accuracy"]
    assert torch.equal(student["state_dict"]["weight"], linear().weight.detach())


def test_augment_transforms_the_training_batches_with_the_trainers_generator():
    seen: list[Tensor] = []

    def augment(x: Tensor, generator: torch.Generator) -> Tensor:
        assert generator is t.batches
        return x * 0 + 1.0

    t = Trainer(Supervised({"student": Player.create(linear())}), SPLITS, TrainConfig(progress=False, epochs=1),
                batch_size=4, augment=augment)
    loss = t.method.loss
    t.method.loss = lambda role, batch: seen.append(batch.x) or loss(role, batch)
    t.fit()
    assert len(seen) == 2 and all(torch.equal(x, torch.ones(4, 3)) for x in seen)


def test_the_batch_order_follows_the_seed():
    def order(**seed) -> list[list[int]]:
        t = Trainer(Supervised({"student": Player.create(linear())}), SPLITS, TrainConfig(progress=False, epochs=2),
                    batch_size=3, **seed)
        seen: list[list[int]] = []
        loss = t.method.loss
        t.method.loss = lambda role, batch: seen.append(batch.index.tolist()) or loss(role, batch)
        t.fit()
        return seen

    assert order(seed=0) == order(seed=0) == order()  # the default seed is 0
    assert order(seed=0) != order(seed=5)
    generator = torch.Generator().manual_seed(0)
    first = torch.randperm(8, generator=generator).tolist()
    assert sum(order(seed=0)[:3], []) == first


def test_the_logged_loss_is_the_mean_of_the_epochs_steps():
    t = trainer(OptimizerConfig(name="sgd", lr=0.5, momentum=0.0), passes=2)
    record = t.fit().history[0]
    w, b = start()
    after_one = sgd(1, 0.5)

    def ce(w: Tensor, b: Tensor) -> float:
        z = X @ w.T + b
        return (z.logsumexp(-1) - z[torch.arange(len(X)), Y]).mean().item()

    assert record["loss_student"] == pytest.approx((ce(w, b) + ce(*after_one)) / 2, rel=1e-5)


def test_select_metric_chooses_the_validation_score_that_selects_the_epoch(tmp_path):
    multi = (torch.arange(8).unsqueeze(-1) + torch.arange(K)) % 3 == 0  # one or two labels per row
    data = TensorData(X, multi.float(), K)
    splits = Splits(data, TensorData(XV, multi.float(), K), data)
    t = Trainer(Supervised({"student": Player.create(linear())}), splits,
                TrainConfig(progress=False, epochs=4, select_metric="p@3"), batch_size=len(X), out_dir=tmp_path)
    assert t.select_metric == "p@3"
    result = t.fit()
    scores = [r["val_p@3"] for r in result.history]
    assert result.selected_epoch == scores.index(max(scores))
    from kdgan.storage import load_checkpoint

    assert load_checkpoint(tmp_path / "student.pt")["metric"] == "p@3"
    auto = Trainer(Supervised({"student": Player.create(linear())}), splits, TrainConfig(progress=False))
    assert auto.select_metric == "map" and trainer(OptimizerConfig()).select_metric == "accuracy"


def test_pretraining_selects_classifiers_on_validation_but_not_the_discriminator():
    players = {"student": Player.create(linear()), "teacher": Player.create(linear(-0.5)),
               "discriminator": Player.create(linear(0.4))}
    from kdgan.methods import KDGAN

    t = Trainer(KDGAN(players, KDGAN.Options(estimator="exact")), SPLITS, TrainConfig(progress=False, epochs=1),
                batch_size=len(X), pretrain_epochs={"teacher": 1, "student": 1, "discriminator": 1})
    history = t.fit().history
    assert [r["stage"] for r in history] == ["pretrain-teacher", "pretrain-student", "pretrain-discriminator", "train"]
    assert "val_accuracy" in history[0] and "val_accuracy" in history[1] and "val_accuracy" not in history[2]


def test_player_defaults_one_pass_and_no_scheduler():
    player = Player.create(linear())
    assert player.passes == 1 and player.scheduler is None and player.game_lr is None
    assert isinstance(player.optimizer, torch.optim.Adam) and player.optimizer.param_groups[0]["lr"] == 1e-3
