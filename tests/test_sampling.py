"""Concrete samples, the temperature schedule, and the estimators' gradients."""

import pytest
import torch

from kdgan.methods.sampling import TemperatureSchedule, adversarial_loss, concrete_sample, straight_through


def test_argmax_frequencies_match_probabilities():
    torch.manual_seed(0)
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    samples = concrete_sample(p.log().expand(1, 4), tau=0.5, samples=40_000)
    freq = torch.bincount(samples.argmax(-1).flatten(), minlength=4).float() / 40_000
    # binomial std at 40k draws is at most 0.0025: allow 4 std
    assert torch.allclose(freq, p, atol=0.01)


def test_samples_approach_one_hot_as_temperature_shrinks():
    torch.manual_seed(0)
    logits = torch.randn(64, 10)
    peaks = [concrete_sample(logits, tau, samples=8).max(-1).values.mean().item() for tau in (5.0, 1.0, 0.1, 0.01)]
    assert peaks == sorted(peaks)
    assert peaks[-1] > 0.99 and peaks[0] < 0.5
    sums = concrete_sample(logits, 0.3).sum(-1)
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-5)


def test_straight_through_is_one_hot_forward_with_relaxed_gradient():
    logits = torch.randn(3, 5, requires_grad=True)
    relaxed = torch.softmax(logits, -1)
    hard = straight_through(relaxed)
    assert torch.equal(hard.detach().sum(-1), torch.ones(3))
    assert set(hard.detach().unique().tolist()) <= {0.0, 1.0}
    weights = torch.randn(3, 5)
    (hard * weights).sum().backward()
    grad_st = logits.grad.clone()
    logits.grad = None
    (torch.softmax(logits, -1) * weights).sum().backward()
    assert torch.allclose(grad_st, logits.grad)


def test_temperature_schedule_is_exponential_between_ends():
    sched = TemperatureSchedule(1.0, 0.1, 11)
    assert sched(0) == pytest.approx(1.0)
    assert sched(10) == pytest.approx(0.1)
    assert sched(5) == pytest.approx(0.1**0.5)
    assert sched(50) == pytest.approx(0.1)  # clamped past the end


def _gradient_samples(estimator: str, trials: int = 300) -> torch.Tensor:
    torch.manual_seed(1)
    disc = torch.tensor([[2.0, -1.0, 0.5, -2.0]])
    grads = []
    for _ in range(trials):
        logits = torch.tensor([[0.3, -0.2, 0.1, 0.0]], requires_grad=True)
        adversarial_loss(logits, disc, tau=0.5, estimator=estimator).backward()
        grads.append(logits.grad.flatten())
    return torch.stack(grads)


def test_reparameterised_gradient_has_lower_variance_than_reinforce():
    concrete = _gradient_samples("concrete").var(0).sum()
    reinforce = _gradient_samples("reinforce").var(0).sum()
    assert concrete < reinforce / 2


def test_estimators_agree_on_the_direction_of_the_mean_gradient():
    # minimising log(1 - D) pushes probability toward the label D scores highest (index 0)
    for estimator in ("concrete", "straight_through", "reinforce", "exact"):
        mean = _gradient_samples(estimator, trials=2000).mean(0)
        assert mean.argmin().item() == 0, estimator


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="unknown estimator"):
        adversarial_loss(torch.zeros(1, 3), torch.zeros(1, 3), 1.0, estimator="gumbel")


def test_exact_estimator_has_no_variance_and_matches_reinforce_in_expectation():
    exact = _gradient_samples("exact", trials=20)
    assert exact.var(0).max().item() < 1e-12
    reinforce = _gradient_samples("reinforce", trials=4000).mean(0)
    assert torch.allclose(reinforce, exact[0], atol=0.05)  # about 4 standard errors of the 4,000-draw mean
