"""Issue 15's data options and the authors' recipe: affine augmentation selectable in configs and
applied to every method's training batches alike, unlabelled inputs (``data.unlabelled``) reaching
every term that needs no label and never a label term, and configs/mnist_kdgan_authors.yaml."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdgan.config import DataConfig, RunConfig, TrainConfig, from_dict, load_config
from kdgan.data import load_splits
from kdgan.data.augment import random_affine
from kdgan.data.core import Batch, labelled_split
from kdgan.data.preprocess import apply_preprocess, per_feature
from kdgan.errors import ConfigError, DataError
from kdgan.methods import METHODS
from kdgan.methods.losses import discriminator_loss, kl_temperature, sampled_discriminator_loss
from kdgan.methods.sampling import TemperatureSchedule
from kdgan.models.mlp import MLP
from kdgan.training.build import build_trainer, method_options, training_augmentation
from kdgan.training.engine import Trainer
from kdgan.training.players import Player
from kdgan.training.runs import find_config


def run_config(**data) -> RunConfig:
    return from_dict(RunConfig, {"data": {"name": "digits", **data}})


# ----------------------------------------------------------------- affine augmentation
def test_affine_augmentation_is_selectable_and_its_ranges_are_used():
    x = torch.rand(6, 1, 8, 8)
    default = training_augmentation(run_config(augment="affine"))
    chosen = training_augmentation(run_config(augment="affine", affine={"rotation": 40.0, "shift": 0.0, "zoom": 0.3}))
    assert torch.equal(default(x, torch.Generator().manual_seed(1)),
                       random_affine(x, 15.0, 0.1, 0.1, torch.Generator().manual_seed(1)))  # the authors' values
    assert torch.equal(chosen(x, torch.Generator().manual_seed(1)),
                       random_affine(x, 40.0, 0.0, 0.3, torch.Generator().manual_seed(1)))
    still = training_augmentation(run_config(augment="affine", affine={"rotation": 0.0, "shift": 0.0, "zoom": 0.0}))
    assert torch.allclose(still(x, torch.Generator()), x, atol=1e-6)
    assert training_augmentation(run_config()) is None


@pytest.mark.parametrize("data, message", [
    ({"augment": "rotate"}, "data.augment must be null, crop_flip or affine"),
    ({"augment": "affine", "affine": {"zoom": 1.0}}, "data.affine needs rotation >= 0, shift >= 0 and 0 <= zoom < 1"),
    ({"affine": {"rotation": 5.0}}, "data.affine sets the ranges of data.augment: affine"),
    ({"augment": "affine", "affine": {"angle": 5.0}}, "unknown config key 'data.affine.angle'"),
    ({"unlabelled": -1}, "data.unlabelled must be a number of training-pool examples >= 0 or 'all'"),
    ({"unlabelled": "many"}, "data.unlabelled must be a number of training-pool examples >= 0 or 'all'"),
    ({"unlabelled_batch_size": 20}, "data.unlabelled_batch_size is read only with data.unlabelled"),
    ({"unlabelled": 10, "unlabelled_batch_size": 0}, "data.unlabelled_batch_size must be >= 1"),
])
def test_bad_data_options_are_refused(data, message):
    with pytest.raises(ConfigError, match=message):
        run_config(**data)


@pytest.fixture(scope="module")
def digits():
    return load_splits(DataConfig(name="digits", n=30, val_size=50), seed=0)


def tiny_players(roles) -> dict[str, Player]:
    torch.manual_seed(0)
    return {role: Player.create(MLP((1, 8, 8), 10, hidden=[8])) for role in roles}


def recorded_fit(name: str, splits, augment=None, **trainer) -> tuple[Trainer, list[tuple[str, bool, Batch]]]:
    """Fit ``name`` for one epoch of each stage, recording (role, pretraining, batch) per loss call."""
    cls = METHODS[name]
    method = cls(tiny_players(cls.roles))
    calls: list[tuple[str, bool, Batch]] = []
    loss, pretrain_loss = method.loss, method.pretrain_loss
    method.loss = lambda role, batch: calls.append((role, False, batch)) or loss(role, batch)
    method.pretrain_loss = lambda role, batch: calls.append((role, True, batch)) or pretrain_loss(role, batch)
    pretrain = {role: 1 for role in cls.roles}
    result = Trainer(method, splits, TrainConfig(epochs=1, progress=False, checkpoint_every=0),
                     pretrain_epochs=pretrain, augment=augment, **trainer)
    result.fit()
    return result, calls


@pytest.mark.parametrize("name, pretrained, trained", [
    ("kdgan", {"student", "teacher", "discriminator"}, {"student", "teacher", "discriminator"}),
    ("distn", {"student", "teacher"}, {"student"}),
    ("mimic", {"student", "teacher"}, {"student"}),
])
def test_augmentation_reaches_every_training_batch_of_every_method_and_never_evaluation(digits, name, pretrained,
                                                                                         trained):
    marked = lambda x, generator: torch.full_like(x, 7.0)  # noqa: E731 - an augmentation nothing else produces
    trainer, calls = recorded_fit(name, digits, marked)
    assert {role for role, pre, _ in calls if pre} == pretrained
    assert {role for role, pre, _ in calls if not pre} == trained
    assert all(bool((batch.x == 7.0).all()) for _, _, batch in calls)
    # validation and test are scored on the stored, unaugmented inputs
    student = trainer.method.players["student"].module
    with torch.no_grad():
        expected = (student(digits.val.x).argmax(-1) == digits.val.y).float().mean().item()
    assert trainer.evaluate("student", "val")["accuracy"] == pytest.approx(expected)
    assert not bool((digits.val.x == 7.0).all())


# ----------------------------------------------------------------- unlabelled inputs: data
def test_unlabelled_examples_come_from_the_rest_of_the_training_pool():
    base = DataConfig(name="digits", n=30, val_size=50)
    plain = load_splits(base, seed=0)
    some = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=200), seed=0)
    every = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled="all"), seed=0)
    assert plain.unlabelled is None
    assert torch.equal(some.train.x, plain.train.x) and torch.equal(some.val.x, plain.val.x)  # unchanged splits
    assert len(some.unlabelled) == 200
    pool_size = len(plain.train) + len(plain.val) + len(every.unlabelled)
    from kdgan.data.digits import load_digits_pool

    pool, _ = load_digits_pool()
    assert pool_size == len(pool)
    assert not bool(every.unlabelled.y.any())  # labels are never carried along
    # no unlabelled row is a labelled or validation row (compared by pool row)
    train, val = labelled_split(pool, 30, 50, 0)
    rows = {tuple(r.tolist()) for r in torch.cat([train.x, val.x]).flatten(1)}
    assert not any(tuple(r.tolist()) in rows for r in some.unlabelled.x.flatten(1)
                   if sum(1 for q in pool.x.flatten(1) if torch.equal(q, r)) == 1)  # skip duplicate images
    with pytest.raises(DataError, match="data.unlabelled=5000 but only"):
        load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=5000), seed=0)


def test_unlabelled_examples_get_the_labelled_splits_preprocessing():
    raw = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=100), seed=0)
    scaled = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=100, normalize="per_feature"),
                         seed=0)
    spec = per_feature(raw.train.x)  # statistics of the labelled examples only
    assert torch.allclose(scaled.unlabelled.x, apply_preprocess(spec, raw.unlabelled.x))


# ----------------------------------------------------------------- unlabelled inputs: losses
X = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.1]])
Y = torch.tensor([0, 2, 1])
U = torch.tensor([[3.0, 1.0, -2.0], [0.0, -0.5, 0.4]])


def tiny_method(name: str, **options):
    torch.manual_seed(0)
    cls = METHODS[name]
    players = {role: Player.create(nn.Linear(3, 3)) for role in ("student", "teacher", "discriminator")}
    return cls({r: p for r, p in players.items() if r in cls.needed_roles(cls.Options(**options))},
               cls.Options(**options))


def mixed() -> Batch:
    return Batch(X, Y).with_unlabelled(Batch(U, torch.tensor([1, 1])))


def test_a_mixed_batch_marks_its_unlabelled_rows_and_blanks_their_labels():
    batch = mixed()
    assert batch.labelled.tolist() == [True, True, True, False, False]
    assert batch.y.tolist() == [0, 2, 1, -1, -1]  # -1: a label term reading them fails (one_hot refuses it)
    assert batch.index is None  # two datasets: the output cache never serves it
    multi = Batch(X, torch.eye(3)).with_unlabelled(Batch(U, torch.zeros(2, 3)))
    assert bool(multi.y[3:].isnan().all())
    plain = Batch(X, Y)
    assert plain.label_rows(X) is X


@pytest.mark.parametrize("name, options", [
    ("supervised", {}), ("distn", {}), ("codis", {}), ("mimic", {"label_weight": 0.5}), ("noisy", {}),
    ("kdgan", {"label_weight": 0.5}), ("nagan", {"label_weight": 0.5}), ("dkd", {}), ("dist", {}),
    ("kd_logit_std", {}), ("kdgan", {"discriminator_loss": "sampled"}), ("kdgan", {"discriminator_loss": "pooled"}),
])
def test_no_label_term_reads_an_unlabelled_row(name, options):
    """Unlabelled rows carry label -1, which one_hot and gather refuse: every loss of every player
    on a mixed batch is finite, so no label term read them."""
    method = tiny_method(name, **options)
    for role in method.schedule:
        assert torch.isfinite(method.loss(role, mixed()))
    for role in method.roles:
        assert torch.isfinite(method.pretrain_loss(role, mixed()))


def test_label_terms_average_labelled_rows_and_distillation_terms_every_row():
    method = tiny_method("distn", weight=0.3, temperature=2.0)
    batch = mixed()
    student, teacher = (method.players[r].module(batch.x) for r in ("student", "teacher"))
    ce = F.cross_entropy(student[:3], Y)
    expected = 0.7 * ce + 0.3 * kl_temperature(student, teacher, 2.0)
    assert method.loss("student", batch).item() == pytest.approx(expected.item(), rel=1e-6)
    # the distillation term sees the unlabelled rows: dropping them changes it
    assert method.loss("student", Batch(X, Y)).item() != pytest.approx(expected.item(), rel=1e-3)


def sp(x: float) -> float:
    return math.log1p(math.exp(x))


G = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0], [2.0, 0.5, -0.5]])  # D's logits; row 2 unlabelled
LABELLED = torch.tensor([True, True, False])


def test_exact_discriminator_loss_with_unlabelled_rows_by_hand():
    p_true = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])  # the two labelled rows
    p_fake = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    true_part = (sp(-1.0) + sp(1.0)) / 2
    fake_part = sum(float(p_fake[b, k]) * sp(float(G[b, k])) for b in range(3) for k in range(3)) / 3
    assert discriminator_loss(G, p_true, p_fake, LABELLED).item() == pytest.approx(true_part + fake_part)


def test_sampled_discriminator_losses_with_unlabelled_rows_by_hand():
    true_drawn = torch.tensor([[0, 0], [2, 2]])
    fake = [torch.tensor([[1], [0], [2]])]
    true_mean = (2 * sp(-1.0) + 2 * sp(1.0)) / 4
    fake_mean = (sp(-2.0) + sp(0.0) + sp(-0.5)) / 3
    assert sampled_discriminator_loss(G, true_drawn, fake, [0.5], labelled=LABELLED).item() == pytest.approx(
        true_mean + 0.5 * fake_mean)
    assert sampled_discriminator_loss(G, true_drawn, fake, [0.5], pooled=True, labelled=LABELLED).item() == \
        pytest.approx(0.5 * (2 * true_mean + 1 * fake_mean) / 3)
    # without unlabelled rows the pooled share form equals the per-example pooling
    every = torch.ones(3, dtype=torch.bool)
    true3 = torch.tensor([[0, 0], [2, 2], [1, 1]])
    assert sampled_discriminator_loss(G, true3, fake, [0.5], pooled=True, labelled=every).item() == pytest.approx(
        sampled_discriminator_loss(G, true3, fake, [0.5], pooled=True).item())


# four rows (not as many as the two labels), rows 1 and 3 unlabelled: the labelled ones are not a prefix
G4 = torch.tensor([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.0], [2.0, 1.0]])
EVERY_OTHER = torch.tensor([True, False, True, False])


def test_exact_discriminator_loss_with_unlabelled_rows_on_more_rows_than_labels():
    p_true = torch.tensor([[0.0, 1.0], [1.0, 0.0]])  # rows 0 and 2: labels 1 and 0
    p_fake = torch.tensor([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    true_part = (sp(2.0) + sp(1.5)) / 2  # -log D = softplus(-g) at g = -2.0 and g = -1.5
    fake_part = sum(float(p_fake[b, k]) * sp(float(G4[b, k])) for b in range(4) for k in range(2)) / 4
    value = discriminator_loss(G4, p_true, p_fake, EVERY_OTHER)
    assert value.item() == pytest.approx(true_part + fake_part, rel=1e-6)


def test_sampled_discriminator_losses_read_the_labelled_rows_and_every_generator():
    true_drawn = torch.tensor([[0, 1], [1, 1]])  # rows 0 and 2
    fake = [torch.tensor([[1], [0], [0], [1]]), torch.tensor([[0], [1], [1], [0]])]
    weights = [0.25, 0.75]
    true_mean = (sp(-1.0) + sp(2.0) + 2 * sp(0.0)) / 4
    fake_means = [(sp(-2.0) + sp(0.5) + sp(-1.5) + sp(1.0)) / 4, (sp(1.0) + sp(3.0) + sp(0.0) + sp(2.0)) / 4]
    sampled = sampled_discriminator_loss(G4, true_drawn, fake, weights, labelled=EVERY_OTHER)
    assert sampled.item() == pytest.approx(true_mean + 0.25 * fake_means[0] + 0.75 * fake_means[1], rel=1e-6)
    # pooled: per generator the k / (k + m) = 2/3 and m / (k + m) = 1/3 shares, summed over both generators
    pooled = sampled_discriminator_loss(G4, true_drawn, fake, weights, pooled=True, labelled=EVERY_OTHER)
    expected = sum(w * (2 * true_mean + f) / 3 for w, f in zip(weights, fake_means))
    assert pooled.item() == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------- unlabelled inputs: the engine
def test_game_steps_pair_each_labelled_batch_with_unlabelled_rows_and_pretraining_does_not():
    splits = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=40), seed=0)
    _, calls = recorded_fit("kdgan", splits, unlabelled_batch_size=20)
    pretraining = [batch for _, pre, batch in calls if pre]
    game = [batch for _, pre, batch in calls if not pre]
    assert pretraining and all(batch.labelled is None for batch in pretraining)
    assert len(game) == 3 * 3  # an epoch is still one pass over the 30 labelled examples (batches of 10), per player
    rows = {tuple(r.tolist()) for r in splits.unlabelled.x.flatten(1)}
    for batch in game:
        assert batch.labelled.tolist() == [True] * 10 + [False] * 20
        assert all(tuple(r.tolist()) in rows for r in batch.x[10:].flatten(1))
    # in a pass the unlabelled rows follow one permutation, then a fresh one: the first 40 are all distinct
    first_pass = [tuple(r.tolist()) for batch in game[:3] for r in batch.x[10:].flatten(1)]
    assert len(set(first_pass[:40])) == len(rows)


def test_a_run_with_unlabelled_rows_differs_from_one_without(digits):
    """The option is not ignored: the same seed with unlabelled inputs trains a different student."""
    with_rows = load_splits(DataConfig(name="digits", n=30, val_size=50, unlabelled=100), seed=0)
    a, _ = recorded_fit("distn", digits)
    b, _ = recorded_fit("distn", with_rows)
    sa, sb = (t.method.players["student"].module.state_dict() for t in (a, b))
    assert any(not torch.equal(sa[k], sb[k]) for k in sa)


# ----------------------------------------------------------------- the authors' recipe
def test_the_authors_recipe_config_loads_with_their_settings():
    config = load_config(find_config("mnist_kdgan_authors"))
    options = method_options(config)
    assert config.method == "kdgan" and config.data.augment == "affine"
    assert (config.data.affine.rotation, config.data.affine.shift, config.data.affine.zoom) == (15.0, 0.1, 0.1)
    assert (options.estimator, options.discriminator_pretrain, options.discriminator_loss) == (
        "regression", "supervised", "pooled")
    assert (options.true_samples, options.fake_samples, options.alpha) == (5, 20, 0.1)
    assert [config.player(r).passes for r in ("discriminator", "teacher", "student")] == [20, 10, 10]
    for role in ("student", "teacher", "discriminator"):
        assert (config.player(role).optimizer.lr, config.player(role).optimizer.weight_decay) == (5e-4, 4e-5)
    assert config.discriminator.model["dropout"] == 0.5
    schedule = TemperatureSchedule(options.tau_start, options.tau_end, config.train.epochs)
    for epoch in (0, 1, 30, config.train.epochs - 1):  # their tau = 10 * 0.88^epoch
        assert schedule(epoch) == pytest.approx(10 * 0.88**epoch, rel=1e-3)


def test_a_run_with_unlabelled_rows_and_affine_augmentation_resumes_exactly(tmp_path):
    """The unlabelled batches and the augmentation draw from the run's checkpointed generator only."""
    from tests.conftest import fit_until_killed, tiny_overrides

    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=3), "data.unlabelled=200",
                                                       "data.augment=affine", "data.n=50"])
    full = build_trainer(config, out_dir=tmp_path / "full").fit()
    interrupted = build_trainer(config, out_dir=tmp_path / "cut")
    fit_until_killed(interrupted, 1)
    resumed = build_trainer(config, out_dir=tmp_path / "cut").fit(resume=True)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)
    assert resumed.test == full.test


def test_methods_without_a_label_free_term_never_see_unlabelled_rows():
    """supervised and DKD (every term needs the true class) train exactly as without data.unlabelled,
    since no unlabelled batch is drawn for them (which would also advance the run's generator)."""
    assert not METHODS["supervised"].uses_unlabelled and not METHODS["dkd"].uses_unlabelled
    assert METHODS["distn"].uses_unlabelled and METHODS["kdgan"].uses_unlabelled
    plain = load_splits(DataConfig(name="digits", n=50, val_size=50), seed=0)
    extra = load_splits(DataConfig(name="digits", n=50, val_size=50, unlabelled=200), seed=0)
    results = []
    for splits in (plain, extra):
        torch.manual_seed(0)
        module = MLP((1, 8, 8), 10, hidden=[16], dropout=0.2)
        method = METHODS["supervised"]({"student": Player.create(module)})
        results.append(Trainer(method, splits, TrainConfig(epochs=2, progress=False)).fit())
    untimed = [[{k: v for k, v in r.items() if k != "seconds"} for r in result.history] for result in results]
    assert results[0].test == results[1].test and untimed[0] == untimed[1]
