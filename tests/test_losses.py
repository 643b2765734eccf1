"""Losses against values computed by hand."""

import math

import pytest
import torch

from kdgan.methods.losses import (
    discriminator_loss,
    distillation_loss,
    generator_loss,
    kl_temperature,
    l2_logits,
    soft_cross_entropy,
)


def test_l2_logits_is_mean_squared_difference():
    s = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    t = torch.tensor([[0.0, 4.0], [1.0, -1.0]])
    # squared differences: 1, 4, 1, 1 -> mean over B*K = 7 / 4
    assert l2_logits(s, t).item() == pytest.approx(7 / 4)


def test_kl_with_temperature_by_hand():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[2.0, 0.0]])
    temp = 2.0
    # teacher at T=2: softmax([1, 0]) = [e/(e+1), 1/(e+1)]; student: [1/2, 1/2]
    p = [math.e / (math.e + 1), 1 / (math.e + 1)]
    kl = sum(pi * math.log(pi / 0.5) for pi in p)
    assert kl_temperature(s, t, temp).item() == pytest.approx(kl * temp**2, rel=1e-5)


def test_kl_is_zero_for_equal_logits_and_batch_mean():
    z = torch.randn(5, 7)
    assert kl_temperature(z, z).item() == pytest.approx(0.0, abs=1e-6)
    one = kl_temperature(z[:1], z[:1] + torch.tensor([[1.0] + [0.0] * 6]))
    two = kl_temperature(torch.cat([z[:1], z[:1]]), torch.cat([z[:1], z[:1]]) + torch.tensor([[1.0] + [0.0] * 6]))
    assert one.item() == pytest.approx(two.item(), rel=1e-6)


def test_distillation_registry_and_unknown_name():
    assert distillation_loss("l2_logits") is l2_logits
    with pytest.raises(ValueError, match="choose one of"):
        distillation_loss("cosine")


def test_soft_cross_entropy_matches_cross_entropy_on_one_hot():
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    expected = -math.log(math.exp(1.0) / (math.exp(2.0) + math.exp(1.0) + 1.0))
    assert soft_cross_entropy(logits, torch.tensor([[0.0, 1.0, 0.0]])).item() == pytest.approx(expected, rel=1e-6)


def test_discriminator_loss_by_hand_and_optimum():
    g = torch.tensor([[0.0, math.log(3.0)]])
    p_true = torch.tensor([[0.0, 1.0]])
    p_fake = torch.tensor([[0.5, 0.5]])
    # D = sigmoid(g) = [1/2, 3/4]; loss = -(log 3/4) - 0.5 log(1/2) - 0.5 log(1/4)
    expected = -math.log(0.75) - 0.5 * math.log(0.5) - 0.5 * math.log(0.25)
    assert discriminator_loss(g, p_true, p_fake).item() == pytest.approx(expected, rel=1e-6)
    # the minimiser is D_k = p_u / (p_u + p_fake): g_k = log(p_u / p_fake)
    p_true, p_fake = torch.tensor([[0.7, 0.3]]), torch.tensor([[0.2, 0.8]])
    g = (torch.log(p_true / p_fake)).requires_grad_(True)
    discriminator_loss(g, p_true, p_fake).backward()
    assert g.grad.abs().max().item() < 1e-6


def test_generator_losses():
    s = torch.tensor([0.0, 2.0])
    assert generator_loss(s, "minimax")[0].item() == pytest.approx(math.log(0.5))
    assert generator_loss(s, "nonsaturating")[1].item() == pytest.approx(-math.log(1 / (1 + math.exp(-2.0))))
    with pytest.raises(ValueError):
        generator_loss(s, "wasserstein")
