"""The training checks, called directly on small tensors: every refusal's message, every branch of
the divergence advice, the checkpoint checks and the stage plan. Fast (no training), so that
mutation testing (scripts/mutation.sh checks) runs them for every mutant."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from kdgan.config import OptimizerConfig, TrainConfig
from kdgan.data.core import Splits, TensorData
from kdgan.errors import ConfigError, DataError, DivergenceError
from kdgan.methods.base import Method
from kdgan.training.checkpoint import (
    RESUME_FIX,
    Selection,
    check_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from kdgan.training.checks import (
    check_epoch_loss,
    check_models,
    check_splits,
    divergence_cause,
    warn_huge_loss,
)
from kdgan.training.engine import Trainer
from kdgan.training.players import Player
from kdgan.training.stages import Stage, plan_stages

FIX = "every split must have the same input shape (are the test files from another dataset or resolution?)"


def data(n: int = 4, features: int = 3, classes: int = 3, privileged: int | None = None,
         multilabel: bool = False) -> TensorData:
    x = torch.arange(n * features, dtype=torch.float32).reshape(n, features) / 10
    if multilabel:
        y = torch.zeros(n, classes)
        y[:, 0] = 1.0
    else:
        y = torch.arange(n) % classes
    priv = None if privileged is None else torch.ones(n, privileged)
    return TensorData(x, y, classes, priv)


def refusal(splits: Splits) -> str:
    with pytest.raises(DataError) as caught:
        check_splits(splits)
    return str(caught.value)


# ----------------------------------------------------------------- check_splits
@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_an_empty_split_is_refused_by_name(name):
    parts = {"train": data(), "val": data(), "test": data(), name: data(n=0)}
    assert refusal(Splits(**parts)) == (
        f"the {name} split is empty; it needs at least one example (check the data files, data.n and data.val_size)"
    )


def test_privileged_inputs_in_some_splits_only_are_refused_both_ways():
    with_priv, without = data(privileged=2), data()
    assert refusal(Splits(without, with_priv, without)) == (
        "the val split has privileged inputs but the training split lacks them; every split must come from the "
        "same kind of files"
    )
    assert refusal(Splits(with_priv, with_priv, without)) == (
        "the test split lacks privileged inputs but the training split has them; every split must come from the "
        "same kind of files"
    )
    check_splits(Splits(with_priv, with_priv, with_priv))  # present everywhere: accepted


def test_an_input_shape_that_differs_from_the_training_split_is_refused():
    assert refusal(Splits(data(), data(features=4), data())) == (
        f"the val split's inputs have shape (4,) per example but the training split's have (3,); {FIX}"
    )
    assert refusal(Splits(data(privileged=2), data(privileged=2), data(privileged=5))) == (
        f"the test split's privileged inputs have shape (5,) per example but the training split's have (2,); {FIX}"
    )
    # only the shape of an example counts, not the number of examples
    check_splits(Splits(data(n=6), data(n=3), data(n=2)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_inputs_are_refused_naming_the_first_bad_row(bad):
    test = data(n=6)
    test.x[4, 1] = bad
    test.x[2, 0] = bad
    assert refusal(Splits(data(), data(), test)) == (
        "the test split's inputs hold NaN or infinite values (first in row 2); clean or impute the data file"
    )
    train = data(n=5, privileged=2)
    train.privileged[3, 1] = bad
    assert refusal(Splits(train, data(privileged=2), data(privileged=2))) == (
        "the train split's privileged inputs hold NaN or infinite values (first in row 3); clean or impute the "
        "data file"
    )


def test_non_finite_values_in_image_shaped_inputs_name_their_row():
    images = TensorData(torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 0]), 2)
    images.x[1, 0, 1, 1] = float("nan")
    clean = TensorData(torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]), 2)
    assert "hold NaN or infinite values (first in row 1)" in refusal(Splits(clean, images, clean))


def test_integer_inputs_are_not_checked_for_nan():
    ints = TensorData(torch.arange(8).reshape(4, 2), torch.tensor([0, 1, 0, 1]), 2)
    check_splits(Splits(ints, ints, ints))


def test_a_different_label_count_or_kind_is_refused():
    assert refusal(Splits(data(), data(), data(classes=5))) == (
        "the test split has 5 class targets but the training split 3 class targets; they must match"
    )
    assert refusal(Splits(data(), data(multilabel=True), data())) == (
        "the val split has 3 multi-label targets but the training split 3 class targets; they must match"
    )
    assert refusal(Splits(data(multilabel=True), data(multilabel=True), data(multilabel=True, classes=4))) == (
        "the test split has 4 multi-label targets but the training split 3 multi-label targets; they must match"
    )


def test_multilabel_split_without_any_label_is_refused():
    empty = data(multilabel=True)
    empty.y.zero_()
    assert refusal(Splits(data(multilabel=True), empty, data(multilabel=True))) == (
        "no example of the val split has any label; check the label columns of the data files"
    )


def warnings_of(function, *args, monkeypatch) -> list[tuple[str, type, int]]:
    """The (message, category, stacklevel) of each warning ``function(*args)`` gives. The stack
    level is recorded rather than where the warning lands, which a wrapper (mutmut's trampoline)
    would move: it is the level of the user's call, from a check that Trainer's methods call."""
    seen = []
    monkeypatch.setattr(warnings, "warn", lambda message, category=UserWarning, stacklevel=1: seen.append(
        (message, category, stacklevel)))
    function(*args)
    return seen


def test_multilabel_examples_without_labels_are_warned_of_per_split(monkeypatch):
    train, test = data(n=5, multilabel=True), data(n=4, multilabel=True)
    train.y[[1, 3]] = 0.0
    test.y[0] = 0.0
    assert warnings_of(check_splits, Splits(train, data(multilabel=True), test), monkeypatch=monkeypatch) == [(
        "multi-label examples without any label: 2 of 5 train, 1 of 4 test; they score 0 in P@k and are left out "
        "of R@k, F@k, nDCG@k, MAP and MRR (remove them from the data files if that is not intended)",
        UserWarning, 4,
    )]
    monkeypatch.undo()
    with pytest.warns(UserWarning, match="without any label: 1 of 4 val; they score 0"):
        val = data(multilabel=True)
        val.y[2] = 0.0
        check_splits(Splits(data(multilabel=True), val, data(multilabel=True)))


def test_fully_labelled_splits_give_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_splits(Splits(data(multilabel=True), data(multilabel=True), data(multilabel=True)))
        check_splits(Splits(data(), data(), data()))


# ----------------------------------------------------------------- check_models
class Duo(Method):
    name = "duo"
    roles = ("student", "teacher")
    schedule = ("teacher", "student")


class Recorder(nn.Module):
    """A linear layer that records the shape of every input it gets."""

    def __init__(self, features: int, outputs: int, shape: tuple[int, ...] | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(features, outputs)
        self.shape = shape
        self.seen: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(tuple(x.shape))
        out = self.linear(x)
        return out if self.shape is None else out.reshape(len(x), *self.shape)


def duo(student: nn.Module | None = None, teacher: nn.Module | None = None, options=None) -> Duo:
    student = student or Recorder(3, 3)
    teacher = teacher or Recorder(3, 3)
    players = {"student": Player.create(student), "teacher": Player.create(teacher)}
    return Duo(players, options)


def model_refusal(method: Method, splits: Splits) -> str:
    with pytest.raises(DataError) as caught:
        check_models(method, splits)
    return str(caught.value)


def test_matching_players_are_accepted_after_one_probe_of_two_examples():
    method, splits = duo(), Splits(data(n=5), data(), data())
    check_models(method, splits)
    assert method.players["student"].module.seen == [(2, 3)]
    assert method.players["teacher"].module.seen == [(2, 3)]
    single = duo()
    check_models(single, Splits(data(n=1), data(), data()))
    assert single.players["teacher"].module.seen == [(1, 3)]


def test_players_with_the_wrong_output_count_or_shape_are_refused_by_role():
    splits = Splits(data(), data(), data())
    assert model_refusal(duo(teacher=Recorder(3, 4)), splits) == (
        "the teacher network outputs shape (4,) per example but the data has 3 labels; build it with 3 outputs"
    )
    assert model_refusal(duo(student=Recorder(3, 3, shape=(3, 1))), splits) == (
        "the student network outputs shape (3, 1) per example but the data has 3 labels; build it with 3 outputs"
    )
    assert model_refusal(duo(student=Recorder(3, 1, shape=())), splits) == (
        "the student network outputs shape () per example but the data has 3 labels; build it with 3 outputs"
    )


def test_a_player_that_cannot_take_the_inputs_is_refused_with_torchs_reason():
    narrow = nn.Linear(5, 3)
    with pytest.raises(RuntimeError) as torch_error:
        narrow(torch.zeros(2, 3))
    message = model_refusal(duo(teacher=narrow), Splits(data(), data(), data()))
    assert message == f"the teacher network cannot take inputs of shape (3,): {torch_error.value}"


def test_players_with_non_finite_weights_are_refused_before_any_forward():
    for bad in (float("nan"), float("inf")):
        teacher = Recorder(3, 3)
        with torch.no_grad():
            teacher.linear.bias[1] = bad
        method = duo(teacher=teacher)
        assert model_refusal(method, Splits(data(), data(), data())) == (
            "the teacher network's weights hold NaN or infinite values before training; check its init weights "
            "file (teacher.init)"
        )
        assert teacher.seen == []


# ----------------------------------------------------------------- divergence advice
@dataclass
class Knobs:
    alpha: float = 0.5
    steps: int = 3
    name: str = "x"


def test_a_non_finite_option_is_named_first():
    for value, shown in ((float("inf"), "inf"), (float("nan"), "nan"), (-float("inf"), "-inf")):
        method = duo(options=Knobs(alpha=value))
        method.players["student"].optimizer.param_groups[0]["lr"] = float("nan")  # the option comes first
        assert divergence_cause(method, Splits(data(), data(), data()), "student", 3, True, "stop") == (
            f"Set options.alpha to a finite number (it is {shown})"
        )


def test_a_non_finite_optimizer_setting_of_the_role_is_named():
    method = duo(options=Knobs())
    splits = Splits(data(), data(), data())
    method.players["teacher"].optimizer.param_groups[0]["lr"] = float("inf")
    assert divergence_cause(method, splits, "teacher", 0, False, "stop") == (
        "Set the teacher's optimizer lr to a finite number (it is inf)"
    )
    method.players["teacher"].optimizer.param_groups[0]["lr"] = 0.01
    method.players["teacher"].optimizer.param_groups[0]["betas"] = (0.9, float("nan"))
    assert divergence_cause(method, splits, "teacher", 2, True, "skip") == (
        "Set the teacher's optimizer betas to a finite number (it is (0.9, nan))"
    )
    # the student's own settings are finite: its advice is about the learning rate
    assert divergence_cause(method, splits, "student", 2, True, "skip").startswith("Lower the student's")


def test_a_loss_not_finite_before_the_first_update_points_at_options_and_input_scale():
    train = data(privileged=2)
    train.x[1, 2] = -12345.0
    train.privileged[0, 0] = 300.0
    method = duo(options=Knobs())
    for role in ("student", "teacher"):
        assert divergence_cause(method, Splits(train, data(privileged=2), data(privileged=2)), role, 0, False,
                                "stop") == (
            f"The loss was not finite before the {role}'s first update, so the learning rate is not the cause: "
            "check the method's options and the inputs' scale (largest |value| in the training inputs: 1.23e+04; "
            "normalize them with data.normalize)"
        )
    big_privileged = data(privileged=2)
    big_privileged.privileged[2, 1] = -7.5
    assert "(largest |value| in the training inputs: 7.5;" in divergence_cause(
        method, Splits(big_privileged, big_privileged, big_privileged), "student", 0, False, "skip")
    # inputs without privileged features, and privileged features of width 0
    assert "(largest |value| in the training inputs: 1.1;" in divergence_cause(
        method, Splits(data(), data(), data()), "student", 0, False, "stop")
    no_features = TensorData(torch.zeros(3, 0), torch.tensor([0, 1, 2]), 3)
    assert "(largest |value| in the training inputs: 0;" in divergence_cause(
        method, Splits(no_features, no_features, no_features), "student", 0, False, "stop")
    empty_view = data(privileged=0)
    assert "(largest |value| in the training inputs: 1.1;" in divergence_cause(
        method, Splits(empty_view, empty_view, empty_view), "student", 0, False, "stop")


def test_a_loss_that_diverged_after_updates_points_at_the_learning_rate():
    method = duo()  # NoOptions: nothing to check there
    splits = Splits(data(), data(), data())
    method.players["student"].optimizer.param_groups[0]["lr"] = 0.0025
    method.players["teacher"].optimizer.param_groups[0]["lr"] = 3e-7
    assert divergence_cause(method, splits, "student", 4, False, "stop") == (
        "Lower the student's learning rate (now 0.0025), set train.grad_clip, or set train.on_nonfinite=skip"
    )
    assert divergence_cause(method, splits, "teacher", 0, True, "stop") == (
        "Lower the teacher's learning rate (now 3e-07), set train.grad_clip, or set train.on_nonfinite=skip"
    )
    assert divergence_cause(method, splits, "teacher", 1, True, "skip") == (
        "Lower the teacher's learning rate (now 3e-07) or set train.grad_clip"
    )


# ----------------------------------------------------------------- epoch loss
def cause(role: str, step: int) -> str:
    return f"Fix {role} at {step}"


def test_a_non_finite_loss_stops_the_run_unless_skipping():
    with pytest.raises(DivergenceError) as caught:
        check_epoch_loss("teacher", 1.0, 0, (0, 5), "epoch 2 (train)", False, cause)
    assert str(caught.value) == (
        "the teacher's loss became NaN or infinite at step 0 of epoch 2 (train); checkpoints written before it are "
        "intact. Fix teacher at 0, and start again with a new --out"
    )
    with pytest.raises(DivergenceError, match=r"at step 7 of epoch 0 \(pretrain-student\).*Fix student at 7,"):
        check_epoch_loss("student", float("nan"), 7, (0, 9), "epoch 0 (pretrain-student)", False, cause)
    check_epoch_loss("student", 1e30, -1, (0, 9), "epoch 0 (train)", False, cause)  # finite: nothing
    check_epoch_loss("student", 0.5, -1, (9, 9), "epoch 0 (train)", False, cause)  # counts matter in skip mode only
    check_epoch_loss("student", 0.5, 3, (8, 9), "epoch 0 (train)", True, cause)  # skipped some: goes on


def test_skip_mode_stops_when_every_step_was_skipped():
    with pytest.raises(DivergenceError) as caught:
        check_epoch_loss("discriminator", 0.0, 0, (4, 4), "epoch 1 (train)", True, cause)
    assert str(caught.value) == (
        "train.on_nonfinite=skip skipped all 4 steps of the discriminator in epoch 1 (train): its loss or gradient "
        "was NaN or infinite at every step, so it no longer learns; checkpoints written before it are intact. "
        "Fix discriminator at 0, and start again with a new --out"
    )
    with pytest.raises(DivergenceError, match="Fix student at 0,"):
        check_epoch_loss("student", 0.0, 2, (6, 6), "epoch 1 (train)", True, cause)


def test_a_huge_loss_is_warned_of_with_the_advice(monkeypatch):
    assert warnings_of(warn_huge_loss, "teacher", 3.2e22, "epoch 3 (train)", monkeypatch=monkeypatch) == [(
        "the teacher's mean loss in epoch 3 (train) is 3.2e+22: training is probably diverging (the run goes on; "
        "selection keeps the best validation epoch). Lower the learning rate of this player or of the players it "
        "learns from, or set train.grad_clip",
        RuntimeWarning, 4,
    )]


# ----------------------------------------------------------------- checkpoints
STAGES = [Stage("pretrain-teacher", ("teacher",), 2, "teacher", True),
          Stage("train", ("teacher", "student"), 3, "student", False)]
ROLES = ("student", "teacher")


def valid_state(**changes) -> dict:
    state = {"stage": 1, "epoch": 3, "seconds": 1.0, "players": {"student": {}, "teacher": {}},
             "selection": Selection().__dict__, "best_test": {}, "history": [], "rng": [{}]}
    state.update(changes)
    return state


def checkpoint_refusal(state, path=Path("run/last.pt")) -> str:
    with pytest.raises(DataError) as caught:
        check_checkpoint(state, path, ROLES, STAGES)
    message = str(caught.value)
    assert message.endswith(f". {RESUME_FIX}")
    return message.removesuffix(f" {RESUME_FIX}")


def test_selection_starts_below_every_score_with_nothing_kept():
    selection = Selection()
    assert (selection.value, selection.epoch, selection.state, selection.metrics) == (-math.inf, -1, None, {})
    assert Selection().metrics is not selection.metrics


def test_a_checkpoint_of_this_run_is_accepted():
    check_checkpoint(valid_state(), Path("last.pt"), ROLES, STAGES)
    check_checkpoint(valid_state(stage=0, epoch=0), Path("last.pt"), ["teacher", "student"], STAGES)
    check_checkpoint(valid_state(stage=0, epoch=2), Path("last.pt"), ROLES, STAGES)


def test_a_file_that_is_not_a_checkpoint_or_lacks_keys_is_refused():
    assert checkpoint_refusal([1, 2]) == "run/last.pt holds a list, not a kdgan checkpoint."
    state = valid_state()
    del state["seconds"], state["rng"]
    assert checkpoint_refusal(state) == (
        "run/last.pt lacks the key(s) seconds, rng; it is not a complete kdgan checkpoint."
    )


def test_a_checkpoint_of_other_players_is_refused():
    assert checkpoint_refusal(valid_state(players={"student": {}, "discriminator": {}})) == (
        "run/last.pt holds the players student, discriminator but this run has student, teacher; it was written "
        "by another config."
    )
    assert checkpoint_refusal(valid_state(players={"student": {}})).startswith(
        "run/last.pt holds the players student but")
    assert checkpoint_refusal(valid_state(players=["student", "teacher"])).startswith(
        "run/last.pt holds the players list but this run has student, teacher;")


@pytest.mark.parametrize("stage, epoch", [(2, 0), (-1, 0), (0, 3), (1, 4), (1, -1), (1.0, 2), (1, 2.0), ("1", 2)])
def test_a_checkpoint_of_other_stages_is_refused(stage, epoch):
    assert checkpoint_refusal(valid_state(stage=stage, epoch=epoch)) == (
        f"run/last.pt stops at stage {stage}, epoch {epoch}, which this run's stages (pretrain-teacher (2 epochs), "
        "train (3 epochs)) do not have; it was written by another config."
    )


@pytest.mark.parametrize("selection", [None, {"value": 1.0, "epoch": 0, "state": None},
                                       {**Selection().__dict__, "extra": 1}])
def test_a_damaged_selection_is_refused(selection):
    assert checkpoint_refusal(valid_state(selection=selection)) == "run/last.pt has a damaged 'selection' entry."


def linear_players(features: int = 3, seed: int = 0) -> dict[str, Player]:
    torch.manual_seed(seed)
    decay = OptimizerConfig(lr_decay=0.5)
    return {"student": Player.create(nn.Linear(features, 3), decay), "teacher": Player.create(nn.Linear(features, 3))}


def write(path: Path, players: dict[str, Player], rng: list) -> None:
    selection = Selection(0.75, 1, {"w": torch.ones(2)}, {"val_acc": 0.75})
    write_checkpoint(path, stage=1, epoch=2, seconds=4.5, players=players, selection=selection,
                     best_test={"acc": 0.5, "epoch": 1}, history=[{"epoch": 0}], rng=rng, run_info={"seed": 3})


def test_a_checkpoint_round_trips_every_entry_and_player_state(tmp_path):
    source = linear_players(seed=1)
    source["student"].optimizer.step()
    source["student"].scheduler.step()
    write(tmp_path / "last.pt", source, rng=[{"a": 1}])
    target = linear_players(seed=2)
    state = read_checkpoint(tmp_path / "last.pt", torch.device("cpu"), target, STAGES, world=1)
    assert {k: state[k] for k in ("stage", "epoch", "seconds", "best_test", "history", "rng", "run_info")} == {
        "stage": 1, "epoch": 2, "seconds": 4.5, "best_test": {"acc": 0.5, "epoch": 1}, "history": [{"epoch": 0}],
        "rng": [{"a": 1}], "run_info": {"seed": 3},
    }
    assert state["selection"]["value"] == 0.75 and state["selection"]["metrics"] == {"val_acc": 0.75}
    assert torch.equal(state["selection"]["state"]["w"], torch.ones(2))
    for role in ROLES:
        assert torch.equal(target[role].module.weight, source[role].module.weight)
    assert target["student"].scheduler.last_epoch == 1
    assert target["student"].optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_a_checkpoint_of_another_world_size_is_refused(tmp_path):
    write(tmp_path / "last.pt", linear_players(), rng=[{}, {}])
    with pytest.raises(ConfigError) as caught:
        read_checkpoint(tmp_path / "last.pt", torch.device("cpu"), linear_players(), STAGES, world=1)
    assert str(caught.value) == (
        f"{tmp_path / 'last.pt'} was written by 2 processes; resume it with the same number, not 1"
    )
    read_checkpoint(tmp_path / "last.pt", torch.device("cpu"), linear_players(), STAGES, world=2)


def test_a_checkpoint_whose_networks_do_not_fit_is_refused_with_one_line_of_torchs_reason(tmp_path):
    path = tmp_path / "last.pt"
    write(path, linear_players(features=3), rng=[{}])
    wider = linear_players(features=4)
    with pytest.raises(RuntimeError) as torch_error:
        wider["student"].module.load_state_dict(linear_players(features=3)["student"].module.state_dict())
    reason = " ".join(str(torch_error.value).split())[:300]
    with pytest.raises(DataError) as caught:
        read_checkpoint(path, torch.device("cpu"), wider, STAGES, world=1)
    assert str(caught.value) == (
        f"{path} does not fit this run's student (RuntimeError: {reason}); it was written by another config or "
        f"version. {RESUME_FIX}"
    )
    assert "\n" not in str(caught.value)


class Refusing:
    """A player whose state cannot be loaded, with a long multi-line reason."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def load_state_dict(self, state: dict) -> None:
        raise self.error


@pytest.mark.parametrize("kind", [RuntimeError, ValueError, KeyError, TypeError])
def test_a_players_load_error_is_shortened_to_300_characters(tmp_path, kind):
    path = tmp_path / "last.pt"
    write(path, linear_players(), rng=[{}])
    players = {"student": linear_players()["student"], "teacher": Refusing(kind("first  line\n   " + "x" * 400))}
    with pytest.raises(DataError) as caught:
        read_checkpoint(path, torch.device("cpu"), players, STAGES, world=1)
    reason = ("first line " + "x" * 400)[:300]
    if kind is KeyError:  # str(KeyError) is its argument's repr
        reason = ("'first line\\n " + "x" * 400)[:300]
    assert str(caught.value) == (
        f"{path} does not fit this run's teacher ({kind.__name__}: {reason}); it was written by another config or "
        f"version. {RESUME_FIX}"
    )


def test_an_incomplete_checkpoint_file_is_refused_before_any_player_is_loaded(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"stage": 0}, path)
    players = {"student": Refusing(RuntimeError("loaded")), "teacher": Refusing(RuntimeError("loaded"))}
    with pytest.raises(DataError) as caught:
        read_checkpoint(path, torch.device("cpu"), players, STAGES, world=1)
    assert str(caught.value).startswith(f"{path} lacks the key(s) epoch, seconds, players,")


# ----------------------------------------------------------------- stage plan
class Trio(Method):
    name = "trio"
    roles = ("student", "teacher", "discriminator")
    schedule = ("discriminator", "teacher", "student")


def trio() -> Trio:
    return Trio({role: Player.create(nn.Linear(3, 3)) for role in Trio.roles})


def test_plan_pretrains_requested_roles_in_fixed_order_then_plays_the_game():
    stages = plan_stages(trio(), {"discriminator": 1, "student": 0, "teacher": 2, "other": 5}, 4)
    assert stages == [
        Stage("pretrain-teacher", ("teacher",), 2, "teacher", True),
        Stage("pretrain-discriminator", ("discriminator",), 1, None, True),
        Stage("train", ("discriminator", "teacher", "student"), 4, "student", False),
    ]
    assert plan_stages(trio(), {"student": 3}, 0) == [
        Stage("pretrain-student", ("student",), 3, "student", True),
        Stage("train", ("discriminator", "teacher", "student"), 0, "student", False),
    ]


def test_plan_skips_roles_the_method_does_not_have():
    assert plan_stages(duo(), {"discriminator": 2, "teacher": 1}, 5) == [
        Stage("pretrain-teacher", ("teacher",), 1, "teacher", True),
        Stage("train", ("teacher", "student"), 5, "student", False),
    ]
    assert plan_stages(duo(), {}, 2) == [Stage("train", ("teacher", "student"), 2, "student", False)]


# ----------------------------------------------------------------- the Trainer's own checks and advice
def trainer(**kwargs) -> Trainer:
    return Trainer(duo(options=Knobs()), Splits(data(), data(), data()), **kwargs)


def test_trainer_batch_size_defaults_and_empty_out_dir():
    default = trainer()
    assert (default.batch_size, default.eval_batch_size, default.out_dir) == (10, 1000, None)
    with pytest.raises(ConfigError) as caught:
        trainer(out_dir="  ")
    assert str(caught.value) == "out_dir is empty; give the folder for the run's files, or None to write none"


def test_trainer_records_the_config_only_when_the_data_came_from_it():
    config = {"method": "kdgan"}
    assert trainer(run_info={"config": config}).recorded_config() == config
    assert trainer(run_info={"config": config, "data_from_config": True}).recorded_config() == config
    assert trainer(run_info={"config": config, "data_from_config": False}).recorded_config() is None
    assert trainer(run_info={"data_from_config": True}).recorded_config() is None


def test_trainer_advice_depends_on_whether_the_role_was_trained_before():
    run = trainer(config=TrainConfig(on_nonfinite="stop"))
    assert run._divergence_cause("student", 0).startswith("The loss was not finite before the student's first")
    run.history = [{"stage": "train", "epoch": 0}]
    assert run._divergence_cause("student", 0) == (
        "Lower the student's learning rate (now 0.001), set train.grad_clip, or set train.on_nonfinite=skip"
    )
    assert run._divergence_cause("teacher", 3).startswith("Lower the teacher's learning rate")
    pretrained = Trainer(duo(), Splits(data(), data(), data()), config=TrainConfig(on_nonfinite="skip"),
                         pretrain_epochs={"teacher": 1})
    pretrained.history = [{"stage": "pretrain-teacher", "epoch": 0}]
    assert pretrained._divergence_cause("student", 0).startswith("The loss was not finite before")
    assert pretrained._divergence_cause("teacher", 0) == (
        "Lower the teacher's learning rate (now 0.001) or set train.grad_clip"
    )


def test_trainer_logits_are_each_players_eval_outputs_on_the_split():
    run = trainer()
    splits = run.splits
    with torch.no_grad():
        expected = run.method.players["teacher"].module(splits.test.x)
    assert torch.allclose(run.logits("teacher", "test"), expected)
    assert run.logits("student", "val").shape == (4, 3)
