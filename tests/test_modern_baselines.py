"""DKD, DIST and KD with logit standardisation: their losses on a tiny batch computed by hand (plain
Python floats, no torch), the identities their papers state, every option moving the loss, and
what happens on multi-label data. The docstring formulas of all three are also checked against
plain tensor operations in test_method_maths.py."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from kdgan.data.core import Batch
from kdgan.errors import ConfigError
from kdgan.methods import METHODS
from kdgan.methods.losses import decoupled_kd, dist_relations, kl_temperature, z_score

from .test_method_maths import Y_MULTI, batch, make

NEW = ("dkd", "dist", "kd_logit_std")
ZS = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
ZT = [[2.0, 0.5, 0.0], [0.0, 1.0, 1.0]]
LABELS = [0, 2]


def softmax(row: list[float], temp: float = 1.0) -> list[float]:
    e = [math.exp(v / temp) for v in row]
    return [v / sum(e) for v in e]


def kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def tensors() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(ZS, dtype=torch.float64), torch.tensor(ZT, dtype=torch.float64)


# ----------------------------------------------------------------- DKD
def test_decoupled_kd_by_hand():
    temp = 2.0
    tckd = nckd = 0.0
    for s, t, y in zip(ZS, ZT, LABELS):
        p_s, p_t = softmax(s, temp), softmax(t, temp)
        tckd += kl([p_t[y], 1 - p_t[y]], [p_s[y], 1 - p_s[y]])
        rest_s = [p / (1 - p_s[y]) for k, p in enumerate(p_s) if k != y]
        rest_t = [p / (1 - p_t[y]) for k, p in enumerate(p_t) if k != y]
        nckd += kl(rest_t, rest_s)
    got = decoupled_kd(*tensors(), torch.tensor(LABELS), temp)
    assert got[0].item() == pytest.approx(tckd / 2 * temp**2, rel=1e-9)
    assert got[1].item() == pytest.approx(nckd / 2 * temp**2, rel=1e-9)
    # one value worked out on paper: the first example at T = 2 has p_s,y = 0.506480 and
    # p_t,y = 0.543406, so TCKD = 4 (0.543406 ln(0.543406/0.506480) + 0.456594 ln(0.456594/0.493520))
    first = decoupled_kd(*(t[:1] for t in tensors()), torch.tensor([0]), temp)[0].item()
    assert first == pytest.approx(0.0109265, abs=1e-6)


def test_kd_is_tckd_plus_the_teachers_non_target_mass_times_nckd():
    """The paper's Eq. (5), per example: ``KD = TCKD + (1 - p_t,y) NCKD`` at any temperature."""
    zs, zt = tensors()
    for row, y in enumerate(LABELS):
        for temp in (1.0, 3.0):
            tckd, nckd = decoupled_kd(zs[row:row + 1], zt[row:row + 1], torch.tensor([y]), temp)
            p_ty = torch.softmax(zt[row] / temp, -1)[y]
            kd = kl_temperature(zs[row:row + 1], zt[row:row + 1], temp)
            assert kd.item() == pytest.approx((tckd + (1 - p_ty) * nckd).item(), rel=1e-9)


def test_decoupled_kd_stays_finite_for_a_saturated_teacher():
    """Probabilities of exactly 0 or 1 in float32 (a teacher 200 logits sure) leave both terms
    finite and the gradient finite: they are computed from logits."""
    zs = torch.tensor([[0.0, 1.0, -1.0]], requires_grad=True)
    zt = torch.tensor([[200.0, 0.0, -5.0]])
    tckd, nckd = decoupled_kd(zs, zt, torch.tensor([0]), 1.0)
    (tckd + nckd).backward()
    assert torch.isfinite(tckd) and torch.isfinite(nckd) and torch.isfinite(zs.grad).all()
    assert tckd.item() > 1.0  # the student's p_y = 0.24 against the teacher's 1


def test_dkd_refuses_multi_label_batches():
    """Comparisons leave it out of multi-label tables (``multilabel = False``); a run that still
    reaches its loss with multi-hot targets stops with the reason and the alternatives."""
    assert [name for name in NEW if not METHODS[name].multilabel] == ["dkd"]
    method = make("dkd")
    with pytest.raises(ConfigError, match="^method 'dkd' needs one class per example .*for multi-label data use "
                                          "distn, dist or kd_logit_std$"):
        method.loss("student", batch(multi=True))


# ----------------------------------------------------------------- DIST
def pearson(a: list[float], b: list[float]) -> float:
    """With the authors' 1e-8 added to the denominator."""
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    return num / (math.sqrt(sum((x - ma) ** 2 for x in a)) * math.sqrt(sum((y - mb) ** 2 for y in b)) + 1e-8)


def test_dist_relations_by_hand():
    tau = 4.0
    zs, zt = [*ZS, [0.0, -1.0, 1.5]], [*ZT, [1.0, -0.5, 0.5]]  # three examples: columns of three
    y_s, y_t = [softmax(r, tau) for r in zs], [softmax(r, tau) for r in zt]
    inter = 1 - sum(pearson(s, t) for s, t in zip(y_s, y_t)) / 3
    columns = [([r[k] for r in y_s], [r[k] for r in y_t]) for k in range(3)]
    intra = 1 - sum(pearson(s, t) for s, t in columns) / 3
    got_inter, got_intra = dist_relations(torch.tensor(zs, dtype=torch.float64), torch.tensor(zt, dtype=torch.float64),
                                          tau)
    assert got_inter.item() == pytest.approx(inter * tau**2, rel=1e-6)
    assert got_intra.item() == pytest.approx(intra * tau**2, rel=1e-6)
    assert 0.1 < intra < 1.9 and 0.1 < inter < 1.9  # neither term trivially 0 or 1 here


def test_dist_is_zero_for_a_copy_and_a_batch_of_one_has_intra_tau_squared():
    zs, zt = tensors()
    inter, intra = dist_relations(zt, zt, 2.0)  # zero up to the 1e-8 in the denominator
    assert inter.item() == pytest.approx(0.0, abs=1e-4) and intra.item() == pytest.approx(0.0, abs=1e-4)
    inter, intra = dist_relations(zs[:1], zt[:1], 2.0)
    assert intra.item() == pytest.approx(4.0)  # one example: no spread across the batch, correlation 0
    assert torch.isfinite(inter)


# ----------------------------------------------------------------- logit standardisation
def test_logit_standardized_kd_by_hand():
    temp = 2.0

    def standard(row: list[float]) -> list[float]:
        mean = sum(row) / len(row)
        std = math.sqrt(sum((v - mean) ** 2 for v in row) / (len(row) - 1))
        return [(v - mean) / std for v in row]

    expected = sum(kl(softmax(standard(t), temp), softmax(standard(s), temp)) for s, t in zip(ZS, ZT)) / 2
    zs, zt = tensors()
    got = kl_temperature(z_score(zs), z_score(zt), temp).item()
    assert got == pytest.approx(expected * temp**2, rel=1e-6)
    # the first row z-scores to (1, 0, -1) exactly: mean 0, sample std 1
    assert z_score(zs[:1])[0].tolist() == pytest.approx([1.0, 0.0, -1.0], abs=1e-6)


def test_logit_standardization_ignores_the_students_logit_range():
    """Shifting and scaling a student's logits changes Hinton's KD but not the standardised KD."""
    method = make("kd_logit_std", ce_weight=0.0)
    moved = make("kd_logit_std", ce_weight=0.0)
    with torch.no_grad():
        layer = moved.players["student"].module
        layer.weight.mul_(3.0)
        layer.bias.mul_(3.0).add_(5.0)
    a, b = method.loss("student", batch()), moved.loss("student", batch())
    assert a.item() == pytest.approx(b.item(), rel=1e-4)
    plain = [make("distn", weight=1.0), make("distn", weight=1.0)]
    plain[1].players["student"] = moved.players["student"]
    assert abs(plain[0].loss("student", batch()).item() - plain[1].loss("student", batch()).item()) > 0.1


def test_z_score_standardises_each_row_by_its_own_mean_and_std():
    logits = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, -2.0, 4.0, 2.0]], dtype=torch.float64)
    # row means 3 and 1; sample variances (4 + 1 + 0 + 9) / 3 and (1 + 9 + 9 + 1) / 3
    centred = torch.tensor([[-2.0, -1.0, 0.0, 3.0], [-1.0, -3.0, 3.0, 1.0]], dtype=torch.float64)
    std = torch.tensor([[math.sqrt(14 / 3)], [math.sqrt(20 / 3)]], dtype=torch.float64)
    assert torch.allclose(z_score(logits, eps=0.5), centred / (std + 0.5), rtol=1e-12)
    assert torch.allclose(z_score(logits), centred / (std + 1e-7), rtol=1e-12)


def test_z_score_of_a_constant_row_is_zero_not_nan():
    assert torch.equal(z_score(torch.full((1, 4), 3.0)), torch.zeros(1, 4))


# ----------------------------------------------------------------- options, shared behaviour
CHANGED = {  # every option of the new methods, and a value other than its default
    "dkd": {"alpha": 2.5, "beta": 1.0, "temperature": 1.5, "warmup": 2},
    "dist": {"beta": 0.5, "gamma": 5.0, "temperature": 1.0},
    "kd_logit_std": {"temperature": 4.0, "kd_weight": 1.0, "ce_weight": 0.1},
}


def test_every_option_of_the_new_methods_is_listed():
    for name in NEW:
        assert {f.name for f in dataclasses.fields(METHODS[name].Options)} == set(CHANGED[name]), name


@pytest.mark.parametrize(("name", "option"), [(n, o) for n in NEW for o in CHANGED[n]])
def test_each_option_changes_the_loss(name, option):
    default = make(name).loss("student", batch())
    changed = make(name, **{option: CHANGED[name][option]}).loss("student", batch())
    assert abs(changed.item() - default.item()) > 1e-4


def test_a_fresh_dkd_is_in_game_epoch_zero():
    # outside the engine (no start_epoch yet) the warm-up weight is that of game epoch 0: 1 / warmup
    assert make("dkd", warmup=4).warmup_weight() == 0.25


def test_decoupled_kd_builds_its_class_indices_on_the_inputs_device():
    # the non-target indices follow the target's device, not the default one (meta: no data needed)
    zs, zt = (t.to("meta") for t in tensors())
    tckd, nckd = decoupled_kd(zs, zt, torch.tensor(LABELS, device="meta"), 2.0)
    assert tckd.device.type == "meta" and nckd.device.type == "meta"


def test_dkd_warmup_counts_game_epochs_and_reaches_full_weight():
    method = make("dkd")  # the paper's 20 warm-up epochs
    weights = []
    for epoch in (0, 9, 19, 25):
        method.start_epoch(epoch, 30)
        weights.append(method.warmup_weight())
    assert weights == pytest.approx([1 / 20, 10 / 20, 1.0, 1.0])


@pytest.mark.parametrize("name", ["dist", "kd_logit_std"])
def test_label_free_terms_apply_to_multi_label_batches(name):
    """DIST's relations and the standardised KL do not use the labels: on a multi-label batch only
    the cross-entropy changes (to the multi-label one), so the difference is that of the CE terms."""
    method = make(name)
    single, multi = method.loss("student", batch()), method.loss("student", batch(multi=True))
    logits = method.players["student"].module(batch().x).detach()
    ce_single = method.cross_entropy(logits, batch())
    ce_multi = method.cross_entropy(logits, Batch(batch().x, Y_MULTI))
    weight = method.options.ce_weight if name == "kd_logit_std" else 1.0
    assert (multi - single).item() == pytest.approx(weight * (ce_multi - ce_single).item(), rel=1e-5)
