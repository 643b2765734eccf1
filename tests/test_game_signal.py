"""Issue 15's game pieces: the regression estimator, sampled and pooled discriminator losses,
supervised D pretraining, loss terms and the signal diagnostics (gradient norms, D's report)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kdgan.config import DataConfig, TrainConfig
from kdgan.data import load_splits
from kdgan.data.core import Batch, Splits, TensorData
from kdgan.errors import ConfigError, DataError
from kdgan.methods import METHODS
from kdgan.methods.losses import sampled_discriminator_loss
from kdgan.methods.sampling import adversarial_loss, reward_regression
from kdgan.models.mlp import MLP
from kdgan.training.diagnostics import gradient_norms
from kdgan.training.engine import Trainer
from kdgan.training.players import Player

LOGITS = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 1.5]])
G = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])  # D's per-label logits


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_regression_estimator_value_and_gradient_follow_its_formula():
    torch.manual_seed(3)
    drawn = torch.multinomial(torch.softmax(LOGITS / 2.0, -1), 4, replacement=True)
    torch.manual_seed(3)
    logits = LOGITS.clone().requires_grad_(True)
    loss = reward_regression(logits, G, tau=2.0, samples=4)
    loss.backward()
    expected, grad = 0.0, torch.zeros_like(LOGITS)
    for b in range(2):
        for s in range(4):
            y = int(drawn[b, s])
            z, r = float(LOGITS[b, y]), sigmoid(float(G[b, y]))
            expected -= (r * math.log(sigmoid(z)) + (1 - r) * math.log(1 - sigmoid(z))) / 8
            grad[b, y] += (sigmoid(z) - r) / 8  # d/dz_y of the sigmoid cross-entropy onto the reward
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(logits.grad, grad, atol=1e-7)


def test_regression_estimator_samples_from_the_flattened_distribution(monkeypatch):
    """A huge temperature draws labels almost uniformly; a tiny one draws the argmax only."""
    peaked = torch.tensor([[8.0, 0.0, 0.0]]).expand(2000, 3)
    drawn: list[torch.Tensor] = []
    original = torch.multinomial
    monkeypatch.setattr(torch, "multinomial", lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    torch.manual_seed(0)
    for tau in (1e-3, 1e3):
        reward_regression(peaked, torch.zeros(2000, 3), tau, samples=1)
    assert (drawn[0] == 0).all()
    assert 0.28 <= (drawn[1] == 0).float().mean().item() <= 0.39


def test_adversarial_loss_dispatches_regression():
    torch.manual_seed(1)
    a = adversarial_loss(LOGITS, G, 0.5, "regression", samples=3)
    torch.manual_seed(1)
    assert a.item() == reward_regression(LOGITS, G, 0.5, 3).item()


def test_sampled_discriminator_loss_by_hand():
    true_drawn = torch.tensor([[0, 0], [1, 1]])
    fake = [torch.tensor([[1, 2, 2], [0, 1, 2]]), torch.tensor([[2, 2, 2], [0, 0, 0]])]
    weights = [0.25, 0.75]
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    true_part = sum(sp(-float(G[b, y])) for b in range(2) for y in true_drawn[b]) / 4
    fake_part = sum(w * sum(sp(float(G[b, y])) for b in range(2) for y in f[b]) / 6 for f, w in zip(fake, weights))
    assert sampled_discriminator_loss(G, true_drawn, fake, weights).item() == pytest.approx(true_part + fake_part)
    pooled = sum(
        w * (sum(sp(-float(G[b, y])) for b in range(2) for y in true_drawn[b])
             + sum(sp(float(G[b, y])) for b in range(2) for y in f[b])) / 10
        for f, w in zip(fake, weights)
    )
    assert sampled_discriminator_loss(G, true_drawn, fake, weights, pooled=True).item() == pytest.approx(pooled)


@pytest.mark.parametrize("pooled", [False, True])
def test_sampled_discriminator_loss_refuses_draws_and_weights_of_different_lengths(pooled):
    fake = [torch.tensor([[0], [1]]), torch.tensor([[2], [2]])]
    with pytest.raises(ValueError, match="^zip\\(\\) argument 2 is shorter than argument 1$"):
        sampled_discriminator_loss(G, torch.tensor([[0], [1]]), fake, [0.5], pooled=pooled)


def test_regression_estimator_keeps_the_logits_dtype():
    """D's rewards are cast to the logits' dtype: float64 logits against float32 scores give a
    float64 loss, equal to the formula in float64."""
    logits = LOGITS.double()
    torch.manual_seed(3)
    drawn = torch.multinomial(torch.softmax(logits / 2.0, -1), 4, replacement=True)
    torch.manual_seed(3)
    loss = reward_regression(logits, G, tau=2.0, samples=4)
    z, r = logits.gather(-1, drawn), torch.sigmoid(G.gather(-1, drawn)).double()
    # -mean(r log sigmoid(z) + (1 - r) log(1 - sigmoid(z))), with log sigmoid(z) = -log(1 + e^-z)
    expected = (r * torch.log1p((-z).exp()) + (1 - r) * torch.log1p(z.exp())).mean()
    assert loss.dtype == torch.float64
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)


def tiny_method(name: str, **options) -> object:
    torch.manual_seed(0)
    players = {role: Player.create(nn.Linear(3, 3)) for role in ("student", "teacher", "discriminator")}
    cls = METHODS[name]
    players = {r: p for r, p in players.items() if r in cls.roles}
    return cls(players, cls.Options(**options))


X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1]])
Y = torch.tensor([0, 2, 1])


def test_sampled_discriminator_loss_is_an_unbiased_estimate_of_the_exact_one():
    exact = tiny_method("kdgan", alpha=0.3).discriminator_loss(Batch(X, Y)).item()
    method = tiny_method("kdgan", alpha=0.3, discriminator_loss="sampled", true_samples=50, fake_samples=400)
    torch.manual_seed(0)
    estimate = sum(method.discriminator_loss(Batch(X, Y)).item() for _ in range(40)) / 40
    assert estimate == pytest.approx(exact, rel=0.01)
    pooled = tiny_method("kdgan", alpha=0.3, discriminator_loss="pooled")
    assert pooled.discriminator_loss(Batch(X, Y)).item() != pytest.approx(exact, rel=0.01)


def test_sampled_discriminator_loss_refuses_examples_without_a_label():
    """Refused before training (no check inside the training step), for sampled and pooled alike."""
    multi = TensorData(X, torch.tensor([[1.0, 0, 1], [0, 0, 0], [0, 1, 0]]), 3)
    splits = Splits(multi, multi, multi)
    for kind in ("sampled", "pooled"):
        with pytest.raises(DataError, match="some training examples have no label"):
            tiny_method("nagan", discriminator_loss=kind).check_data(splits)
    with pytest.raises(DataError, match="some training examples have no label"):
        Trainer(tiny_method("nagan", discriminator_loss="pooled"), splits, TrainConfig(progress=False))
    tiny_method("nagan").check_data(splits)  # the exact loss needs no drawn label
    full = TensorData(X, torch.tensor([[1.0, 0, 1], [0, 1, 0], [0, 1, 0]]), 3)
    tiny_method("nagan", discriminator_loss="sampled").check_data(Splits(full, full, full))


def test_supervised_discriminator_pretraining_is_cross_entropy_on_the_labels():
    game = tiny_method("kdgan")
    supervised = tiny_method("kdgan", discriminator_pretrain="supervised")
    g = supervised.players["discriminator"].module(X)
    expected = -torch.log_softmax(g, -1)[torch.arange(3), Y].mean()
    assert supervised.pretrain_loss("discriminator", Batch(X, Y)).item() == pytest.approx(expected.item())
    assert game.pretrain_loss("discriminator", Batch(X, Y)).item() == pytest.approx(
        game.discriminator_loss(Batch(X, Y)).item())
    assert game.pretrain_loss("discriminator", Batch(X, Y)).item() != pytest.approx(expected.item())


@pytest.mark.parametrize("options, message", [
    ({"discriminator_pretrain": "classifier"}, "options.discriminator_pretrain must be game or supervised"),
    ({"discriminator_loss": "mean"}, "options.discriminator_loss must be one of exact, sampled, pooled"),
    ({"true_samples": 0}, "options.true_samples and options.fake_samples must be >= 1"),
])
def test_bad_game_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        METHODS["kdgan"].Options(**options)


@pytest.mark.parametrize("name, role, terms", [
    ("kdgan", "student", ["distillation", "adversarial", "label"]),
    ("kdgan", "teacher", ["distillation", "adversarial"]),
    ("kdgan", "discriminator", ["discriminator"]),
    ("nagan", "student", ["adversarial", "label"]),
    ("nagan", "discriminator", ["discriminator"]),
    ("distn", "student", ["loss"]),
    ("codis", "teacher", ["loss"]),  # the one-term default passes the role on: the teacher's own loss
])
def test_loss_terms_name_the_terms_and_sum_to_the_loss(name, role, terms):
    options = {"label_weight": 0.5} if name in ("kdgan", "nagan") else {}
    method = tiny_method(name, **options)
    batch = Batch(X, Y)
    torch.manual_seed(5)
    parts = method.loss_terms(role, batch)
    torch.manual_seed(5)
    assert list(parts) == terms
    assert sum(parts.values()).item() == pytest.approx(method.loss(role, batch).item(), rel=1e-6)


def test_gradient_norms_measure_each_weighted_term_and_leave_the_random_state_alone():
    method = tiny_method("kdgan", alpha=0.4, beta=2.0)
    batch = Batch(X, Y)
    state = torch.get_rng_state()
    norms = gradient_norms(method, ("teacher", "student"), batch)
    assert torch.equal(torch.get_rng_state(), state)
    assert not any(p.requires_grad for player in method.players.values() for p in player.module.parameters())
    assert set(norms) == {"grad_teacher_distillation", "grad_teacher_adversarial",
                          "grad_student_distillation", "grad_student_adversarial"}
    student = method.players["student"].module
    student.requires_grad_(True)
    torch.set_rng_state(state)
    term = method.loss_terms("student", batch)["distillation"]
    grads = torch.autograd.grad(term, list(student.parameters()))
    expected = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
    assert norms["grad_student_distillation"] == pytest.approx(expected, rel=1e-6)


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(name="digits", n=50, val_size=50), seed=0)


def kdgan_trainer(splits, report: bool) -> Trainer:
    torch.manual_seed(0)
    players = {
        "student": Player.create(MLP((1, 8, 8), 10, hidden=[16], dropout=0.2)),
        "teacher": Player.create(MLP((1, 8, 8), 10, hidden=[32])),
        "discriminator": Player.create(MLP((1, 8, 8), 10, hidden=[16])),
    }
    method = METHODS["kdgan"](players)
    config = TrainConfig(epochs=2, progress=False, diagnostics=report, checkpoint_every=0)
    return Trainer(method, splits, config, pretrain_epochs={"discriminator": 1})


def test_diagnostics_are_logged_per_game_epoch_and_do_not_change_training(digits):
    with_report = kdgan_trainer(digits, True).fit()
    without = kdgan_trainer(digits, False).fit()
    assert with_report.test == without.test and with_report.val == without.val
    losses = [{k: v for k, v in r.items() if k.startswith("loss_")} for r in with_report.history]
    assert losses == [{k: v for k, v in r.items() if k.startswith("loss_")} for r in without.history]
    game = [r for r in with_report.history if r["stage"] == "train"]
    for record in game:
        for key in ("grad_student_adversarial", "grad_student_distillation", "grad_teacher_adversarial",
                    "grad_discriminator_discriminator", "d_class_acc", "d_reward_true", "d_reward_student",
                    "d_reward_teacher", "d_true_acc", "d_fake_acc"):  # D's report is report_players' (default on)
            assert math.isfinite(record[key]) and record[key] >= 0, key
        assert 0 <= record["d_reward_student"] <= 1 and 0 <= record["d_class_acc"] <= 1
    assert not any(k.startswith("grad_") for r in without.history for k in r)


def test_discriminator_report_values_by_hand(digits):
    trainer = kdgan_trainer(digits, True)
    val = digits.val
    student = trainer.logits("student", "val")
    report = trainer.discriminator_report(student)
    g = trainer.logits("discriminator", "val")
    teacher = trainer.logits("teacher", "val")
    rows = torch.arange(len(val))
    assert report["d_class_acc"] == pytest.approx((g.argmax(-1) == val.y).float().mean().item())
    assert report["d_reward_true"] == pytest.approx(torch.sigmoid(g[rows, val.y]).mean().item(), rel=1e-5)
    assert report["d_reward_student"] == pytest.approx(
        (student.softmax(-1) * torch.sigmoid(g)).sum(-1).mean().item(), rel=1e-5)
    assert report["d_reward_teacher"] == pytest.approx(
        (teacher.softmax(-1) * torch.sigmoid(g)).sum(-1).mean().item(), rel=1e-5)
    assert report["d_true_acc"] == pytest.approx((g[rows, val.y] > 0).float().mean().item())
