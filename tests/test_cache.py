"""The output cache of players that are not training: exact, invalidated on update, never leaked."""

from collections import Counter

import pytest
import torch

from kdgan.config import DataConfig, load_config
from kdgan.data import load_splits
from kdgan.data.core import Batch, TensorData
from kdgan.training.build import build_trainer
from kdgan.training.cache import OutputCache
from kdgan.training.runs import find_config

from .conftest import tiny_overrides


@pytest.fixture(scope="module")
def splits():
    return load_splits(DataConfig(name="digits", n=100, val_size=100), seed=0)


def _trained(splits, method: str, cache: bool, extra: tuple[str, ...] = ()):
    overrides = [*tiny_overrides(epochs=2), f"method={method}", f"train.cache_outputs={str(cache).lower()}", *extra]
    if method != "kdgan":
        overrides.append("options={}")
    trainer = build_trainer(load_config(find_config("digits_kdgan"), overrides), splits=splits)
    result = trainer.fit()
    return trainer, result


@pytest.mark.parametrize("method", ["kdgan", "distn", "codis"])
def test_cached_run_equals_uncached_run(splits, method):
    cached, cached_result = _trained(splits, method, cache=True)
    plain, plain_result = _trained(splits, method, cache=False)
    assert cached.output_cache is not None and plain.output_cache is None
    for role, player in cached.method.players.items():
        for a, b in zip(player.module.parameters(), plain.method.players[role].module.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert cached_result.test["accuracy"] == pytest.approx(plain_result.test["accuracy"], abs=1e-9)


def test_kdgan_round_runs_each_fixed_network_once_over_the_training_set(splits):
    """D, T, C one pass each: C's outputs serve D's and T's passes, D's serve T's and C's, and T's
    (after its pass) serve C's pass and the next round's D pass."""
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=3), "discriminator.pretrain_epochs=0"])
    trainer = build_trainer(config, splits=splits)
    calls: Counter = Counter()
    run = trainer.method.network_logits

    def counting(role, batch):
        if not torch.is_grad_enabled() and trainer.method.output_cache is not None:
            calls[role] += len(batch.x)
        return run(role, batch)

    trainer.method.network_logits = counting
    trainer.fit()
    n = len(splits.train)
    # Round 1 runs T for D's pass and again after T's pass; later rounds reuse the latter.
    assert calls == {"student": 3 * n, "discriminator": 3 * n, "teacher": 4 * n}


def test_cache_never_serves_the_updating_player_or_gradient_forwards():
    data = TensorData(torch.randn(10, 3), torch.arange(10) % 2, 2)
    computed: Counter = Counter()

    def compute(role, batch):
        computed[role] += 1
        return batch.x[:, :2] * (2.0 if role == "teacher" else 1.0)

    cache = OutputCache(data, compute, chunk=4)
    batch = data.batch(torch.tensor([7, 2]))
    with torch.no_grad():
        assert cache.serves("teacher", batch)
        torch.testing.assert_close(cache.lookup("teacher", batch), data.x[[7, 2], :2] * 2)
        cache.lookup("teacher", data.batch(torch.tensor([0, 9])))
        assert computed["teacher"] == 3  # chunks 4 + 4 + 2, once
        cache.start_updates("teacher")
        assert not cache.serves("teacher", batch) and cache.serves("student", batch)
        cache.stop_updates()
        cache.lookup("teacher", batch)
        assert computed["teacher"] == 6  # forgotten when it started updating
        cache.invalidate("teacher")
        cache.lookup("teacher", batch)
        assert computed["teacher"] == 9
    assert not cache.serves("student", batch)  # gradients wanted: run the network
    with torch.no_grad():
        assert not cache.serves("student", Batch(data.x[:1], data.y[:1]))  # no row index: not a training row


def test_cache_is_off_with_augmented_inputs_and_detached_outside_training(splits):
    trainer, _ = _trained(splits, "kdgan", cache=True)
    assert trainer.method.output_cache is None  # evaluation never sees training-set logits
    trainer.augment = lambda x, generator: x + 0.01 * torch.randn(x.shape, generator=generator)
    assert trainer._new_output_cache() is None  # an augmented batch is not the stored example
