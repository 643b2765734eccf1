"""Every method's loss, for every role, against its docstring formula written out by hand.

The players are tiny linear networks with fixed weights, so every logit is known; the formulas
below use only plain tensor operations (log-softmax, exp, sums), never :mod:`kdgan.methods.losses`.
Random draws (Gumbel noise, NOISY's mask) are replayed from the same seed. Options are chosen
so that swapping two weights, dropping a term or a mask, or changing a reduction moves the
value. A method added to the registry fails :func:`test_every_registered_method_has_a_case`
until it gets a case here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from kdgan.data.core import Batch
from kdgan.methods import METHODS
from kdgan.methods.base import Method
from kdgan.methods.sampling import TemperatureSchedule, adversarial_loss, concrete_sample, gumbel_noise
from kdgan.training.players import Player

K = 4  # labels
X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1], [1.0, 1.0, -1.0], [0.0, -0.5, 0.9]])
Y = torch.tensor([0, 3, 1, 2, 3])
PRIV = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, 2.0], [0.3, -0.3]])
# a multi-label batch: rows with one, two and three labels
Y_MULTI = torch.tensor([[1.0, 0, 0, 0], [0, 1, 1, 0], [1, 1, 0, 1], [0, 0, 0, 1], [0, 1, 0, 1]])


def linear(in_features: int, scale: float, shift: float) -> nn.Linear:
    """A linear layer with fixed, distinct weights."""
    layer = nn.Linear(in_features, K)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(K * in_features, dtype=torch.float32).reshape(K, in_features).sin() * scale)
        layer.bias.copy_(torch.arange(K, dtype=torch.float32) * shift - 0.2)
    return layer


class Teacher(nn.Module):
    """Logits ``A x + B privileged`` (``A x`` without privileged inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.view, self.privileged = linear(3, 1.3, -0.4), linear(2, 0.7, 0.1)

    def forward(self, x: Tensor, privileged: Tensor | None = None) -> Tensor:
        out = self.view(x)
        return out if privileged is None else out + self.privileged(privileged)


def players() -> dict[str, Player]:
    return {
        "student": Player.create(linear(3, 0.9, 0.3)),
        "teacher": Player.create(Teacher()),
        "discriminator": Player.create(linear(3, -1.1, 0.5)),
    }


def make(name: str, label_loss: str = "softmax", **options) -> Method:
    cls = METHODS[name]
    return cls(players(), cls.Options(**options), label_loss=label_loss)


def batch(multi: bool = False) -> Batch:
    return Batch(X, Y_MULTI if multi else Y, PRIV)


# ----------------------------------------------------------------- the formulas, by hand
def z(method: Method, role: str) -> Tensor:
    """The logits the method must use for ``role``: the teacher sees the privileged view."""
    with torch.no_grad():
        if role == "teacher":
            return method.players["teacher"].module(X, PRIV)
        return method.players[role].module(X)


def log_softmax(logits: Tensor) -> Tensor:
    return logits - logits.exp().sum(-1, keepdim=True).log()


def softmax(logits: Tensor) -> Tensor:
    return log_softmax(logits).exp()


def log_sigmoid(s: Tensor) -> Tensor:
    return -(1 + (-s).exp()).log()


def one_hot(y: Tensor) -> Tensor:
    return (y.unsqueeze(-1) == torch.arange(K)).float()


def p_true(y: Tensor) -> Tensor:
    """p_u: one-hot, or the multi-hot row divided by its label count."""
    return y / y.sum(-1, keepdim=True) if y.is_floating_point() else one_hot(y)


def ce(logits: Tensor, y: Tensor = Y) -> Tensor:
    return -(p_true(y) * log_softmax(logits)).sum(-1).mean()


def bce(logits: Tensor, y: Tensor) -> Tensor:
    """``-1/B sum_b sum_k (y log s + (1 - y) log(1 - s))``, s = sigmoid(z)."""
    return -(y * log_sigmoid(logits) + (1 - y) * log_sigmoid(-logits)).sum() / len(logits)


def kl(zs: Tensor, zt: Tensor, temp: float) -> Tensor:
    """``T^2 / B sum_b KL(softmax(zt/T) || softmax(zs/T))``."""
    log_p, log_q = log_softmax(zt / temp), log_softmax(zs / temp)
    return temp**2 * (log_p.exp() * (log_p - log_q)).sum(-1).mean()


def l2(zs: Tensor, zt: Tensor) -> Tensor:
    return ((zs - zt) ** 2).sum() / zs.numel()


def d_loss(g: Tensor, p_fake: Tensor, p_u: Tensor | None = None) -> Tensor:
    """``-1/B sum_b sum_k (p_u log D_k + p_fake log(1 - D_k))``, D = sigmoid(g); p_u of Y by default."""
    p_u = p_true(Y) if p_u is None else p_u
    return -(p_u * log_sigmoid(g) + p_fake * log_sigmoid(-g)).sum(-1).mean()


def g_term(score: Tensor, kind: str) -> Tensor:
    """minimax: log(1 - D) = log sigmoid(-s); nonsaturating: -log D."""
    return log_sigmoid(-score) if kind == "minimax" else -log_sigmoid(score)


def concrete_adv(logits: Tensor, g: Tensor, tau: float, kind: str, samples: int, seed: int) -> Tensor:
    """``mean over samples and rows of l(y~ . g)``, ``y~ = softmax((log p + Gumbel) / tau)``,
    replaying the Gumbel draws ``-log E``, ``E ~ Exp(1)``, from ``seed``."""
    torch.manual_seed(seed)
    gumbel = -torch.empty(samples, *logits.shape).exponential_().log()
    relaxed = softmax((log_softmax(logits) + gumbel) / tau)
    return g_term((relaxed * g).sum(-1), kind).mean()


def seeded(seed: int, fn: Callable[[], Tensor]) -> Tensor:
    torch.manual_seed(seed)
    return fn()


# ----------------------------------------------------------------- one case per method
def case_supervised() -> None:
    for player in ("student", "teacher"):
        method = make("supervised", player=player)
        assert method.schedule == (player,) and method.evaluated == player
        assert torch.allclose(method.loss(player, batch()), ce(z(method, player)), atol=1e-6)
        multi = method.loss(player, batch(multi=True))
        assert torch.allclose(multi, ce(z(method, player), Y_MULTI), atol=1e-6)
    sig = make("supervised", label_loss="sigmoid")
    assert torch.allclose(sig.loss("student", batch(multi=True)), bce(z(sig, "student"), Y_MULTI), atol=1e-6)
    assert torch.allclose(sig.loss("student", batch()), bce(z(sig, "student"), one_hot(Y)), atol=1e-6)


def case_mimic() -> None:
    plain = make("mimic")
    zs, zt = z(plain, "student"), z(plain, "teacher")
    assert torch.allclose(plain.loss("student", batch()), l2(zs, zt), atol=1e-6)
    weighted = make("mimic", label_weight=0.35)
    expected = l2(zs, zt) + 0.35 * ce(zs)
    assert torch.allclose(weighted.loss("student", batch()), expected, atol=1e-6)


def case_distn() -> None:
    for distill in ("kl", "l2_logits"):
        method = make("distn", weight=0.3, temperature=2.5, distill=distill)
        zs, zt = z(method, "student"), z(method, "teacher")
        soft = kl(zs, zt, 2.5) if distill == "kl" else l2(zs, zt)
        assert torch.allclose(method.loss("student", batch()), 0.7 * ce(zs) + 0.3 * soft, atol=1e-6)


def case_noisy() -> None:
    method = make("noisy", ratio=0.5, std=0.3)
    zs, zt = z(method, "student"), z(method, "teacher")
    torch.manual_seed(2)
    mask = (torch.rand(len(X), 1) < 0.5).float()
    noise = torch.randn(len(X), K) * 0.3
    assert 0 < mask.sum() < len(X)  # some rows perturbed, some not: a dropped mask changes the value
    expected = l2(zs, zt * (1 + mask * noise))
    assert torch.allclose(seeded(2, lambda: method.loss("student", batch())), expected, atol=1e-6)
    still = make("noisy", ratio=0.0, std=0.3)
    assert torch.allclose(still.loss("student", batch()), l2(zs, zt), atol=1e-6)


def case_codis() -> None:
    for distill, temp in (("kl", 2.0), ("l2_logits", 1.0)):
        method = make("codis", beta=0.6, gamma=0.15, distill=distill, temperature=temp)
        zs, zt = z(method, "student"), z(method, "teacher")
        soft = (lambda a, b, t=temp: kl(a, b, t)) if distill == "kl" else l2
        assert torch.allclose(method.loss("student", batch()), ce(zs) + 0.6 * soft(zs, zt), atol=1e-6)
        assert torch.allclose(method.loss("teacher", batch()), ce(zt) + 0.15 * soft(zt, zs), atol=1e-6)


def case_nagan() -> None:
    method = make("nagan", estimator="exact", label_weight=0.4, generator_loss="nonsaturating")
    zs, g = z(method, "student"), z(method, "discriminator")
    assert torch.allclose(method.loss("discriminator", batch()), d_loss(g, softmax(zs)), atol=1e-6)
    assert torch.allclose(method.pretrain_loss("discriminator", batch()), d_loss(g, softmax(zs)), atol=1e-6)
    assert torch.allclose(method.pretrain_loss("student", batch()), ce(zs), atol=1e-6)
    exact = (softmax(zs) * g_term(g, "nonsaturating")).sum(-1).mean()
    assert torch.allclose(method.loss("student", batch()), exact + 0.4 * ce(zs), atol=1e-6)
    # the concrete estimator at the annealed temperature, with replayed noise
    method = make("nagan", tau_start=2.0, tau_end=0.5, samples=3)
    method.start_epoch(1, 4)
    tau = 2.0 * 0.25 ** (1 / 3)
    expected = concrete_adv(zs, g, tau, "minimax", 3, seed=5)
    assert torch.allclose(seeded(5, lambda: method.loss("student", batch())), expected, atol=1e-6)


def case_kdgan() -> None:
    alpha, beta, gamma = 0.3, 0.7, 0.2
    method = make("kdgan", alpha=alpha, beta=beta, gamma=gamma, estimator="exact", distill="kl",
                  distill_temperature=2.0, label_weight=0.25)
    zs, zt, g = z(method, "student"), z(method, "teacher"), z(method, "discriminator")
    p_alpha = alpha * softmax(zs) + (1 - alpha) * softmax(zt)
    assert torch.allclose(method.loss("discriminator", batch()), d_loss(g, p_alpha), atol=1e-6)
    assert torch.allclose(method.pretrain_loss("discriminator", batch()), d_loss(g, p_alpha), atol=1e-6)
    assert torch.allclose(method.pretrain_loss("teacher", batch()), ce(zt), atol=1e-6)

    def exact(logits: Tensor) -> Tensor:
        return (softmax(logits) * g_term(g, "minimax")).sum(-1).mean()

    student = beta * kl(zs, zt, 2.0) + alpha * exact(zs) + 0.25 * ce(zs)
    teacher = gamma * kl(zt, zs, 2.0) + (1 - alpha) * exact(zt)  # the label term is the student's only
    assert torch.allclose(method.loss("student", batch()), student, atol=1e-6)
    assert torch.allclose(method.loss("teacher", batch()), teacher, atol=1e-6)
    # the paper's setting: l2 logits, concrete samples at the annealed temperature, replayed noise
    method = make("kdgan", alpha=alpha, beta=beta, gamma=gamma, tau_start=3.0, tau_end=0.2, samples=2,
                  generator_loss="nonsaturating")
    method.start_epoch(2, 5)
    tau = 3.0 * (0.2 / 3.0) ** 0.5
    for role, adv, ds, own, other in (("student", alpha, beta, zs, zt), ("teacher", 1 - alpha, gamma, zt, zs)):
        expected = ds * l2(own, other) + adv * concrete_adv(own, g, tau, "nonsaturating", 2, seed=11)
        assert torch.allclose(seeded(11, lambda r=role: method.loss(r, batch())), expected, atol=1e-6), role
    # alpha = 1: the teacher has no adversarial term at all (no noise is drawn for it)
    method = make("kdgan", alpha=1.0, beta=beta, gamma=gamma)
    assert torch.allclose(method.loss("teacher", batch()), gamma * l2(zt, zs), atol=1e-6)


def kl_rows(p: Tensor, q: Tensor) -> Tensor:
    """``sum_k p_k log(p_k / q_k)`` per row, a zero where ``p_k = 0``."""
    return torch.where(p > 0, p * (p / q).log(), torch.zeros_like(p)).sum(-1)


def case_dkd() -> None:
    """``CE + w (alpha TCKD + beta NCKD)``, from probabilities: ``b = (p_y, 1 - p_y)`` and the
    non-target distribution ``p_k / (1 - p_y)``, ``k != y``."""
    alpha, beta, temp = 0.7, 3.0, 2.0
    method = make("dkd", alpha=alpha, beta=beta, temperature=temp, warmup=4)
    zs, zt = z(method, "student"), z(method, "teacher")
    p_s, p_t = softmax(zs / temp), softmax(zt / temp)
    mask = one_hot(Y).bool()
    ps_y, pt_y = p_s[mask], p_t[mask]
    tckd = temp**2 * kl_rows(torch.stack([pt_y, 1 - pt_y], -1), torch.stack([ps_y, 1 - ps_y], -1)).mean()
    other_s = torch.where(mask, 0.0, p_s) / (1 - ps_y).unsqueeze(-1)
    other_t = torch.where(mask, 0.0, p_t) / (1 - pt_y).unsqueeze(-1)
    nckd = temp**2 * kl_rows(other_t, torch.where(mask, 1.0, other_s)).mean()
    for epoch, weight in ((0, 0.25), (1, 0.5), (3, 1.0), (9, 1.0)):  # linear warm-up over 4 epochs
        method.start_epoch(epoch, 10)
        expected = ce(zs) + weight * (alpha * tckd + beta * nckd)
        assert torch.allclose(method.loss("student", batch()), expected, atol=1e-6), epoch
    plain = make("dkd", alpha=alpha, beta=beta, temperature=temp, warmup=0)
    assert torch.allclose(plain.loss("student", batch()), ce(zs) + alpha * tckd + beta * nckd, atol=1e-6)


def pearson(a: Tensor, b: Tensor) -> Tensor:
    a, b = a - a.mean(-1, keepdim=True), b - b.mean(-1, keepdim=True)
    return (a * b).sum(-1) / ((a * a).sum(-1).sqrt() * (b * b).sum(-1).sqrt())


def case_dist() -> None:
    """``CE + beta tau^2 (1 - mean_b rho(rows)) + gamma tau^2 (1 - mean_k rho(columns))``."""
    beta, gamma, tau = 1.5, 0.4, 3.0
    method = make("dist", beta=beta, gamma=gamma, temperature=tau)
    zs, zt = z(method, "student"), z(method, "teacher")
    y_s, y_t = softmax(zs / tau), softmax(zt / tau)
    inter, intra = 1 - pearson(y_s, y_t).mean(), 1 - pearson(y_s.T, y_t.T).mean()
    expected = ce(zs) + beta * tau**2 * inter + gamma * tau**2 * intra
    assert torch.allclose(method.loss("student", batch()), expected, atol=1e-5)
    # multi-label (softmax over labels): the same relations, the multi-label cross-entropy
    multi = ce(zs, Y_MULTI) + beta * tau**2 * inter + gamma * tau**2 * intra
    assert torch.allclose(method.loss("student", batch(multi=True)), multi, atol=1e-5)


def standardise(logits: Tensor) -> Tensor:
    """Each row minus its mean over the K labels, over its sample standard deviation (1/(K-1))."""
    centred = logits - logits.sum(-1, keepdim=True) / K
    return centred / ((centred**2).sum(-1, keepdim=True) / (K - 1)).sqrt()


def case_kd_logit_std() -> None:
    """``ce_weight CE + kd_weight T^2 KL(softmax(Z(z_t)/T) || softmax(Z(z_s)/T))``."""
    method = make("kd_logit_std", temperature=1.5, kd_weight=4.0, ce_weight=0.3)
    zs, zt = z(method, "student"), z(method, "teacher")
    soft = kl(standardise(zs), standardise(zt), 1.5)
    assert torch.allclose(method.loss("student", batch()), 0.3 * ce(zs) + 4.0 * soft, atol=1e-5)
    multi = 0.3 * ce(zs, Y_MULTI) + 4.0 * soft
    assert torch.allclose(method.loss("student", batch(multi=True)), multi, atol=1e-5)


CASES: dict[str, Callable[[], None]] = {
    "supervised": case_supervised, "mimic": case_mimic, "distn": case_distn, "noisy": case_noisy,
    "codis": case_codis, "nagan": case_nagan, "kdgan": case_kdgan, "dkd": case_dkd, "dist": case_dist,
    "kd_logit_std": case_kd_logit_std,
}


def test_every_registered_method_has_a_case():
    assert set(METHODS) == set(CASES), "add a case_<method> with its loss written out by hand"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_loss_matches_the_docstring_formula(name):
    CASES[name]()


@pytest.mark.parametrize("name", sorted(METHODS))
def test_only_the_updated_role_gets_gradients(name):
    """``sg``: targets from other players (and D's scores) are constants of a player's loss."""
    method = make(name, **({"estimator": "exact"} if name in ("nagan", "kdgan") else {}))
    roles = [r for r in ("student", "teacher", "discriminator") if r in method.schedule]
    for role in roles:
        for player in method.players.values():
            player.module.zero_grad(set_to_none=True)
        method.loss(role, batch()).backward()
        for other, player in method.players.items():
            grads = [p.grad for p in player.module.parameters()]
            if other == role:
                assert all(g is not None and g.abs().sum() > 0 for g in grads), (role, other)
            else:
                assert all(g is None for g in grads), (role, other)


def test_privileged_inputs_reach_only_the_privileged_roles():
    method = make("codis")
    student = Player.create(Teacher())  # a network that would use the privileged view if given it
    method.players["student"] = student
    assert torch.equal(method.network_logits("student", batch()), student.module(X))
    assert torch.equal(method.network_logits("teacher", batch()), method.players["teacher"].module(X, PRIV))
    both = METHODS["kdgan"](players(), privileged_roles=("teacher", "discriminator"))
    both.players["discriminator"] = Player.create(Teacher())
    assert torch.equal(both.network_logits("discriminator", batch()), both.players["discriminator"].module(X, PRIV))
    assert torch.equal(method.network_logits("teacher", Batch(X, Y)), method.players["teacher"].module(X))


# ----------------------------------------------------------------- losses.py and sampling.py
def test_kl_sigmoid_by_hand():
    from kdgan.methods.losses import kl_sigmoid

    zs, zt = torch.tensor([[0.0, 2.0], [1.0, -1.0]]), torch.tensor([[1.0, 0.0], [-2.0, 3.0]])
    temp = 2.0
    total = 0.0
    for s_row, t_row in zip(zs.tolist(), zt.tolist()):
        for s, t in zip(s_row, t_row):
            p, q = 1 / (1 + math.exp(-t / temp)), 1 / (1 + math.exp(-s / temp))
            total += p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    assert kl_sigmoid(zs, zt, temp).item() == pytest.approx(total / 2 * temp**2, rel=1e-5)


def test_binary_cross_entropy_sums_labels_and_averages_rows():
    from kdgan.methods.losses import binary_cross_entropy

    logits, target = torch.tensor([[0.0, math.log(3.0)], [2.0, -1.0]]), torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    s = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    expected = -(math.log(0.5) + math.log(1 - 0.75) + math.log(s(2.0)) + math.log(s(-1.0))) / 2
    assert binary_cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_kl_default_temperature_is_three_and_l2_ignores_temperature():
    from kdgan.methods.losses import kl_temperature, l2_logits

    zs, zt = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 0.0, -1.0]])
    assert kl_temperature(zs, zt).item() == pytest.approx(kl(zs, zt, 3.0).item(), rel=1e-6)
    assert l2_logits(zs, zt, 5.0).item() == pytest.approx(l2(zs, zt).item())


def test_soft_cross_entropy_with_a_soft_target_and_batch_mean():
    from kdgan.methods.losses import soft_cross_entropy

    logits = torch.tensor([[1.0, 0.0, -1.0], [0.5, 0.5, 2.0]])
    target = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    expected = -(target * log_softmax(logits)).sum(-1).mean()
    assert soft_cross_entropy(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_discriminator_loss_averages_over_rows_and_ignores_fake_gradients():
    from kdgan.methods.losses import discriminator_loss

    g = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    p_u, p_fake = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.3, 0.7], [0.6, 0.4]], requires_grad=True)
    value = discriminator_loss(g, p_u, p_fake)
    assert value.item() == pytest.approx(d_loss(g, p_fake.detach(), p_u).item(), rel=1e-6)
    assert not value.requires_grad  # p_fake is detached: only D learns from this loss


def test_generator_loss_default_is_minimax():
    from kdgan.methods.losses import generator_loss

    s = torch.tensor([1.5, -0.5])
    assert torch.allclose(generator_loss(s), log_sigmoid(-s))
    assert torch.allclose(generator_loss(s, "nonsaturating"), -log_sigmoid(s))
    with pytest.raises(ValueError, match="minimax or nonsaturating"):
        generator_loss(s, "hinge")


def test_gumbel_noise_is_minus_log_of_exponential_draws():
    like = torch.zeros(1, dtype=torch.float64)
    torch.manual_seed(2)
    noise = gumbel_noise((4, 3), like)
    torch.manual_seed(2)
    assert noise.dtype == torch.float64 and noise.shape == (4, 3)
    assert torch.equal(noise, -torch.empty(4, 3, dtype=torch.float64).exponential_().log())


def test_concrete_sample_replayed_by_hand():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]])
    sample = seeded(4, lambda: concrete_sample(logits, 0.7, samples=2))
    torch.manual_seed(4)
    gumbel = -torch.empty(2, 2, 3).exponential_().log()
    assert sample.shape == (2, 2, 3)
    assert torch.allclose(sample, softmax((log_softmax(logits) + gumbel) / 0.7), atol=1e-6)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_adversarial_loss_estimators_by_hand(kind):
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]])
    g = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    exact = adversarial_loss(logits, g, 0.5, "exact", kind)
    assert exact.item() == pytest.approx((softmax(logits) * g_term(g, kind)).sum(-1).mean().item(), rel=1e-6)
    concrete = seeded(6, lambda: adversarial_loss(logits, g, 0.5, "concrete", kind, samples=3))
    assert concrete.item() == pytest.approx(concrete_adv(logits, g, 0.5, kind, 3, seed=6).item(), rel=1e-5)
    # straight-through: the forward value is the loss of the one-hot argmax of the relaxed samples
    hard = seeded(6, lambda: adversarial_loss(logits, g, 0.5, "straight_through", kind, samples=3))
    torch.manual_seed(6)
    gumbel = -torch.empty(3, 2, 3).exponential_().log()
    drawn = (log_softmax(logits) + gumbel).argmax(-1)
    picked = torch.gather(g.expand(3, 2, 3), -1, drawn.unsqueeze(-1)).squeeze(-1)
    assert hard.item() == pytest.approx(g_term(picked, kind).mean().item(), rel=1e-5)


@pytest.mark.parametrize("kind", ["minimax", "nonsaturating"])
def test_reinforce_loss_by_hand_with_leave_one_out_baseline(kind):
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]], requires_grad=True)
    g = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    value = seeded(8, lambda: adversarial_loss(logits, g, 0.5, "reinforce", kind, samples=3))
    torch.manual_seed(8)
    log_p = log_softmax(logits.detach())
    drawn = (log_p + (-torch.empty(3, 2, 3).exponential_().log())).argmax(-1)
    reward = g_term(torch.gather(g.expand(3, 2, 3), -1, drawn.unsqueeze(-1)).squeeze(-1), kind)
    baseline = (reward.sum() - reward) / (reward.numel() - 1)
    chosen = torch.gather(log_p.expand(3, 2, 3), -1, drawn.unsqueeze(-1)).squeeze(-1)
    assert value.item() == pytest.approx(((reward - baseline) * chosen).mean().item(), rel=1e-5)
    # one sample of one row: no other sample to form a baseline, so the advantage is the reward
    single = seeded(8, lambda: adversarial_loss(logits[:1], g[:1], 0.5, "reinforce", kind))
    torch.manual_seed(8)
    pick = (log_p[:1] + (-torch.empty(1, 1, 3).exponential_().log())).argmax(-1).item()
    assert single.item() == pytest.approx((g_term(g[0, pick], kind) * log_p[0, pick]).item(), rel=1e-5)


def test_sampling_defaults_and_errors():
    logits = torch.tensor([[1.0, 0.0, -1.0], [0.2, 0.4, 0.1]])
    g = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    assert concrete_sample(logits, 0.5).shape == (1, 2, 3)  # one sample by default
    default = seeded(9, lambda: adversarial_loss(logits, g, 0.5))  # concrete, minimax, one sample
    assert default.item() == pytest.approx(concrete_adv(logits, g, 0.5, "minimax", 1, seed=9).item(), rel=1e-5)
    with pytest.raises(ValueError, match="^unknown estimator 'gumbel'; choose one of concrete, straight_through, "
                       "reinforce, exact, regression$"):
        adversarial_loss(logits, g, 0.5, "gumbel")
    from kdgan.methods.losses import distillation_loss

    with pytest.raises(ValueError, match=f"^unknown distillation loss 'cosine'; choose one of {DISTILLS}$"):
        distillation_loss("cosine")


def test_temperature_schedule_single_epoch_and_negative_epoch():
    assert TemperatureSchedule(2.0, 0.3, 1)(0) == 0.3
    assert TemperatureSchedule(2.0, 0.5, 2)(0) == pytest.approx(2.0) and TemperatureSchedule(2.0, 0.5, 2)(1) == 0.5
    assert TemperatureSchedule(2.0, 0.3, 0)(5) == 0.3
    assert TemperatureSchedule(2.0, 0.5, 3)(-4) == pytest.approx(2.0)
    assert TemperatureSchedule(2.0, 0.5, 4)(1) == pytest.approx(2.0 * 0.25 ** (1 / 3))


# ----------------------------------------------------------------- options: the edges of each range
DISTILLS = "l2_logits, kl, kl_sigmoid"
OPTION_CASES = [  # (method, options, None if accepted else the whole error message)
    ("supervised", {"player": "teacher"}, None),
    ("supervised", {"player": "discriminator"}, "options.player must be 'student' or 'teacher', got 'discriminator'"),
    ("distn", {"weight": 0.0, "temperature": 0.5}, None),
    ("distn", {"weight": 1.0}, None),
    ("distn", {"weight": -0.1}, "options.weight must be in [0, 1], got -0.1"),
    ("distn", {"weight": 1.5}, "options.weight must be in [0, 1], got 1.5"),
    ("distn", {"temperature": 0.0}, "options.temperature must be > 0, got 0.0"),
    ("distn", {"distill": "cosine"}, f"options.distill must be one of {DISTILLS}"),
    ("noisy", {"ratio": 0.0, "std": 0.0}, None),
    ("noisy", {"ratio": 1.0}, None),
    ("noisy", {"ratio": 1.5}, "options.ratio must be in [0, 1], got 1.5"),
    ("noisy", {"ratio": -0.5}, "options.ratio must be in [0, 1], got -0.5"),
    ("noisy", {"std": -0.1}, "options.std must be >= 0, got -0.1"),
    ("codis", {"beta": 0.0, "gamma": 0.0}, None),
    ("codis", {"beta": -1.0}, "options.beta and options.gamma must be >= 0"),
    ("codis", {"gamma": -1.0}, "options.beta and options.gamma must be >= 0"),
    ("codis", {"distill": "cosine"}, f"options.distill must be one of {DISTILLS}"),
    ("nagan", {"tau_start": 0.05, "tau_end": 0.05, "samples": 1, "label_weight": 0.0}, None),
    ("nagan", {"estimator": "gumbel"},
     "options.estimator must be one of concrete, straight_through, reinforce, exact, regression, got 'gumbel'"),
    ("nagan", {"tau_start": 0.0}, "options.tau_start and tau_end must be > 0, got 0.0, 0.1"),
    ("nagan", {"tau_end": 0.0}, "options.tau_start and tau_end must be > 0, got 1.0, 0.0"),
    ("nagan", {"samples": 0}, "options.samples must be >= 1, got 0"),
    ("nagan", {"generator_loss": "hinge"}, "options.generator_loss must be minimax or nonsaturating, got 'hinge'"),
    ("nagan", {"label_weight": -1.0}, "options.label_weight must be >= 0, got -1.0"),
    ("nagan", {"true_samples": 1, "fake_samples": 1, "discriminator_loss": "pooled"}, None),
    ("nagan", {"discriminator_pretrain": "classifier"},
     "options.discriminator_pretrain must be game or supervised, got 'classifier'"),
    ("nagan", {"discriminator_loss": "mean"}, "options.discriminator_loss must be one of exact, sampled, pooled, "
     "got 'mean'"),
    ("nagan", {"true_samples": 0}, "options.true_samples and options.fake_samples must be >= 1, got 0, 20"),
    ("nagan", {"fake_samples": 0}, "options.true_samples and options.fake_samples must be >= 1, got 5, 0"),
    ("kdgan", {"alpha": 0.0, "beta": 0.0, "gamma": 0.0, "distill_temperature": 0.5}, None),
    ("kdgan", {"alpha": 1.0}, None),
    ("kdgan", {"alpha": 1.5}, "options.alpha must be in [0, 1], got 1.5"),
    ("kdgan", {"alpha": -0.5}, "options.alpha must be in [0, 1], got -0.5"),
    ("kdgan", {"beta": -1.0}, "options.beta and options.gamma must be >= 0, got -1.0, 0.01"),
    ("kdgan", {"gamma": -1.0}, "options.beta and options.gamma must be >= 0, got 1.0, -1.0"),
    ("kdgan", {"distill": "cosine"}, f"options.distill must be one of {DISTILLS}, got 'cosine'"),
    ("kdgan", {"distill_temperature": 0.0}, "options.distill_temperature must be > 0, got 0.0"),
    ("kdgan", {"samples": 0}, "options.samples must be >= 1, got 0"),  # the shared adversarial checks run too
    ("dkd", {"alpha": 0.0, "beta": 0.0, "temperature": 0.5, "warmup": 0}, None),
    ("dkd", {"alpha": -1.0}, "options.alpha and options.beta must be >= 0, got -1.0, 8.0"),
    ("dkd", {"beta": -1.0}, "options.alpha and options.beta must be >= 0, got 1.0, -1.0"),
    ("dkd", {"temperature": 0.0}, "options.temperature must be > 0, got 0.0"),
    ("dkd", {"warmup": -1}, "options.warmup must be >= 0 epochs, got -1"),
    ("dist", {"beta": 0.0, "gamma": 0.0, "temperature": 0.5}, None),
    ("dist", {"beta": -1.0}, "options.beta and options.gamma must be >= 0, got -1.0, 2.0"),
    ("dist", {"gamma": -1.0}, "options.beta and options.gamma must be >= 0, got 2.0, -1.0"),
    ("dist", {"temperature": 0.0}, "options.temperature must be > 0, got 0.0"),
    ("kd_logit_std", {"kd_weight": 0.0, "ce_weight": 0.0, "temperature": 0.5}, None),
    ("kd_logit_std", {"temperature": 0.0}, "options.temperature must be > 0, got 0.0"),
    ("kd_logit_std", {"kd_weight": -1.0}, "options.kd_weight and options.ce_weight must be >= 0, got -1.0, 1.0"),
    ("kd_logit_std", {"ce_weight": -1.0}, "options.kd_weight and options.ce_weight must be >= 0, got 9.0, -1.0"),
]


@pytest.mark.parametrize(("name", "options", "message"), OPTION_CASES)
def test_option_ranges(name, options, message):
    from kdgan.errors import ConfigError

    if message is None:
        assert METHODS[name].Options(**options)
    else:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            METHODS[name].Options(**options)


def test_method_construction_errors_and_defaults():
    from kdgan.errors import ConfigError
    from kdgan.methods import KDGAN, get_method

    assert get_method("kdgan") is KDGAN
    with pytest.raises(ConfigError, match=re.escape(f"unknown method 'gan'; known methods: {', '.join(METHODS)}")):
        get_method("gan")
    some = {"student": players()["student"]}
    with pytest.raises(ConfigError, match=re.escape("method 'kdgan' needs players teacher, discriminator (config")):
        KDGAN(some)
    never = "^the student never receives privileged inputs: it is deployed without them$"
    with pytest.raises(ConfigError, match=never):
        KDGAN(players(), privileged_roles=("student", "teacher"))
    with pytest.raises(ConfigError, match=re.escape("label_loss must be one of softmax, sigmoid, got 'hinge'")):
        KDGAN(players(), label_loss="hinge")
    for name, cls in METHODS.items():
        assert cls(players()).options == cls.Options(), name  # no options: the defaults
    fresh = KDGAN(players(), KDGAN.Options(tau_start=2.0, tau_end=0.5))
    assert fresh.temperature == 0.5  # outside the engine (no start_epoch): the final temperature


def test_forward_serves_cached_logits_only_for_fixed_players_without_gradient():
    from kdgan.data.core import TensorData
    from kdgan.training.cache import OutputCache

    method = make("codis")
    data = TensorData(X, Y, K, PRIV)
    cache = OutputCache(data, lambda role, b: torch.full((len(b.x), K), float(b.index.sum()) + len(role)))
    method.output_cache = cache
    cache.start_updates("student")
    rows = data.batch(torch.tensor([1, 3]))
    with torch.no_grad():
        served = method.logits("teacher", rows)
        assert torch.equal(served, torch.full((2, K), float(sum(range(5))) + 7)[:2])  # the cache's fake logits
        assert torch.equal(method.logits("student", rows), method.players["student"].module(X[[1, 3]]))
    assert torch.equal(method.logits("teacher", rows), method.players["teacher"].module(X[[1, 3]], PRIV[[1, 3]]))


def test_random_draws_are_made_on_the_inputs_device():
    meta = torch.zeros(1, device="meta")
    assert gumbel_noise((2, 3), meta).device.type == "meta"
    method = make("noisy", ratio=0.5)
    for player in method.players.values():
        player.module.to("meta")
    loss = method.loss("student", Batch(X.to("meta"), Y.to("meta"), PRIV.to("meta")))
    assert loss.device.type == "meta"


RANGE_CASES = [  # (low, high, log, None if accepted else the whole error message)
    (0.0, 1.0, False, None),  # a linear range may start at 0
    (-2.0, -1.0, False, None),
    (0.5, 2.0, True, None),  # a log range needs low > 0 only, not low > 1
    (1.0, 1.0, False, "a search range needs low < high (and low > 0 when log), got [1.0, 1.0]"),
    (2.0, 1.0, False, "a search range needs low < high (and low > 0 when log), got [2.0, 1.0]"),
    (0.0, 1.0, True, "a search range needs low < high (and low > 0 when log), got [0.0, 1.0]"),
    (-1.0, 1.0, True, "a search range needs low < high (and low > 0 when log), got [-1.0, 1.0]"),
]


@pytest.mark.parametrize(("low", "high", "log", "message"), RANGE_CASES)
def test_search_range_edges(low, high, log, message):
    from kdgan.errors import ConfigError
    from kdgan.methods.search import Range

    if message is None:
        assert Range(low, high, log=log).high == high
    else:
        with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
            Range(low, high, log=log)


def test_noisy_ratio_zero_perturbs_no_row_even_on_a_draw_of_zero(monkeypatch):
    """The mask is ``u < ratio`` with ``u`` uniform on [0, 1): P(mask) = ratio exactly, so ratio 0
    leaves every row alone even when the draw is 0.0 (which torch.rand can return)."""
    method = make("noisy", ratio=0.0, std=0.3)
    zs, zt = z(method, "student"), z(method, "teacher")
    monkeypatch.setattr(torch, "rand", lambda *shape, device=None: torch.zeros(*shape, device=device))
    assert torch.allclose(method.loss("student", batch()), l2(zs, zt), atol=1e-6)
