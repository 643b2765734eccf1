"""Config validation: unknown keys, types, ranges and overrides give errors that name the fix."""

import re
from dataclasses import replace

import pytest
import torch

from kdgan.config import DataConfig, RunConfig, apply_overrides, from_dict, load_config, load_saved_config, saved_config
from kdgan.data import load_splits
from kdgan.deploy.student_file import open_student
from kdgan.errors import ConfigError
from kdgan.methods.kdgan import KDGANOptions
from kdgan.training.build import build_trainer, method_options
from kdgan.training.runs import find_config

from .conftest import tiny_overrides


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown config key 'data\.nn'.*valid keys here: name, dir, n"):
        from_dict(RunConfig, {"data": {"nn": 5}})
    with pytest.raises(ConfigError, match="unknown config key 'epochz'"):
        from_dict(RunConfig, {"epochz": 5})


def test_unknown_method_option_is_refused():
    with pytest.raises(ConfigError, match=r"unknown config key 'options\.alpah'.*alpha"):
        from_dict(KDGANOptions, {"alpah": 0.5}, "options")


def test_types_and_ranges():
    with pytest.raises(ConfigError, match="seed must be an integer"):
        from_dict(RunConfig, {"seed": "zero"})
    with pytest.raises(ConfigError, match=r"alpha must be in \[0, 1\]"):
        from_dict(KDGANOptions, {"alpha": 1.5})
    with pytest.raises(ConfigError, match="tau_start and tau_end must be > 0"):
        from_dict(KDGANOptions, {"tau_end": 0})
    with pytest.raises(ConfigError, match="lr must be > 0"):
        from_dict(RunConfig, {"student": {"optimizer": {"lr": -1}}})
    assert from_dict(KDGANOptions, {"alpha": 1}).alpha == 1.0  # ints are accepted as floats


def test_overrides_are_parsed_as_yaml_and_nested():
    assert apply_overrides({"x": 1}, ["options.alpha=0.3", "student.model.hidden=[64, 64]", "x=true"]) == {
        "options": {"alpha": 0.3}, "student": {"model": {"hidden": [64, 64]}}, "x": True,
    }
    for bad in ("alpha", "=3", "a..b=1"):
        with pytest.raises(ConfigError, match="key=value"):
            apply_overrides({}, [bad])
    with pytest.raises(ConfigError, match="data.n holds the value 5, not a section"):
        apply_overrides({"data": {"n": 5}}, ["data.n.x=1"])


def test_overrides_apply_in_order_and_an_empty_mapping_empties_the_section():
    base = {"method": "kdgan", "options": {"alpha": 0.5, "distill": "l2_logits"}}
    assert apply_overrides(base, ["options={}", "options.warmup=5"])["options"] == {"warmup": 5}
    assert apply_overrides(base, ["options.warmup=5", "options={}"])["options"] == {}
    assert apply_overrides(base, ["options={beta: 2}"])["options"] == {"alpha": 0.5, "distill": "l2_logits",
                                                                       "beta": 2}
    assert base == {"method": "kdgan", "options": {"alpha": 0.5, "distill": "l2_logits"}}  # not changed
    config = load_config(find_config("digits_kdgan"), ["method=distn", "options={}", "options.temperature=3"])
    assert config.method == "distn" and config.options == {"temperature": 3}
    assert method_options(config).temperature == 3  # no 'unknown config key options.distill' from kdgan's


def test_a_new_method_starts_from_its_own_default_options():
    """The base config's options belong to its method: they would be unknown keys for another."""
    config = load_config(find_config("digits_kdgan"), ["method=supervised"])
    assert config.method == "supervised" and config.options == {}
    config = load_config(find_config("digits_kdgan"), ["options.temperature=3", "method=distn"])
    assert config.options == {"temperature": 3}  # given by --set, before or after the method
    same = load_config(find_config("digits_kdgan"), ["method=kdgan"])
    assert same.options["distill"] == "l2_logits"  # the same method keeps its options


def test_a_new_dataset_drops_the_old_datasets_own_keys():
    base = {"data": {"name": "arrays", "train": "a.npz", "test_fraction": 0.3, "n": 50, "batch_size": 5}}
    data = apply_overrides(base, ["data={name: folder, dir: imgs}"])["data"]
    assert data == {"name": "folder", "dir": "imgs", "n": 50, "batch_size": 5}
    data = apply_overrides(base, ["data.test_fraction=0.1", "data.name=yfcc"])["data"]
    assert data == {"name": "yfcc", "test_fraction": 0.1, "n": 50, "batch_size": 5}
    assert apply_overrides(base, ["data.name=arrays"]) == base
    own = load_config(find_config("own_arrays_kdgan"), ["data={name: folder, dir: imgs}"]).data
    assert (own.name, own.dir, own.train, own.test, own.n, own.val_size) == ("folder", "imgs", None, None, None, 100)


def test_a_new_network_drops_the_old_networks_options():
    base = {"student": {"model": {"name": "mlp", "hidden": [32], "dropout": 0.1}}}
    assert apply_overrides(base, ["student.model.name=lenet"])["student"]["model"] == {"name": "lenet"}
    model = apply_overrides(base, ["student.model={name: lenet, fc: 8}"])["student"]["model"]
    assert model == {"name": "lenet", "fc": 8}
    assert apply_overrides(base, ["student.model={name: mlp, dropout: 0.0}"])["student"]["model"] == {
        "name": "mlp", "hidden": [32], "dropout": 0.0}
    config = load_config(find_config("digits_kdgan"), ["teacher=null", "teacher.model.name=mlp"])
    assert config.teacher is not None and config.teacher.model == {"name": "mlp"}


def test_builtin_config_loads_and_overrides_apply():
    config = load_config(find_config("digits_kdgan"), ["options.alpha=0.25", "train.epochs=7"])
    assert config.method == "kdgan" and config.options["alpha"] == 0.25 and config.train.epochs == 7
    assert config.teacher is not None and config.discriminator is not None


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="neither a file nor a built-in config"):
        find_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_a_runs_typed_config_loads_back_equal_from_config_yaml_and_student_pt(tmp_path):
    """config.yaml and student.pt store RunConfig.to_dict(); both read back through the typed
    loaders, so a field renamed on one side only fails here instead of being silently dropped."""
    config = load_config(find_config("digits_kdgan"), [*tiny_overrides(epochs=1), "method=supervised",
                                                       "student.pretrain_epochs=0", "data.normalize=per_image",
                                                       "options.player=student"])
    build_trainer(config, out_dir=tmp_path / "run").fit()
    assert load_saved_config(tmp_path / "run" / "config.yaml") == config
    student = open_student(tmp_path / "run")
    assert student.config == config and student.method == "supervised" and student.dataset == "digits"


def test_a_saved_config_with_a_key_this_version_does_not_know_is_refused(tmp_path):
    saved = RunConfig().to_dict()
    saved["data"]["normalise"] = saved["data"].pop("normalize")  # e.g. a field renamed since
    with pytest.raises(ConfigError, match=r"config saved in run/student.pt does not fit .*'data\.normalise'"):
        saved_config(saved, "run/student.pt")
    legacy = {"data": {"name": "mnist", "standardize": True}}  # what kdgan wrote before data.normalize
    assert saved_config(legacy, "old.pt").data.normalize == "per_image"
    assert legacy == {"data": {"name": "mnist", "standardize": True}}
    path = tmp_path / "config.yaml"
    path.write_text("method: kdgan\nseed: 0\n")  # cut short
    with pytest.raises(ConfigError, match=r"config.yaml lacks the keys device, threads, data"):
        load_saved_config(path)


def test_subset_seed_fixes_the_labelled_examples_across_run_seeds():
    """data.subset_seed draws the n labelled examples and validation split; the run seed does otherwise."""
    def labelled(seed: int, subset_seed: int | None) -> torch.Tensor:
        return load_splits(DataConfig(name="digits", n=20, val_size=50, subset_seed=subset_seed), seed).train.x

    assert torch.equal(labelled(0, 7), labelled(1, 7))
    assert not torch.equal(labelled(0, None), labelled(1, None))
    assert torch.equal(labelled(5, 0), labelled(0, None))


def test_pretrain_epochs_of_a_player_the_method_does_not_pretrain_are_refused():
    """The supervised method trains its player with the same loss from the first epoch: pretraining
    epochs for it would be silently ignored."""
    config = load_config(find_config("digits_kdgan"), ["method=supervised", "options.player=teacher"])
    with pytest.raises(ConfigError, match=r"method 'supervised' does not pretrain the teacher: teacher."
                                          r"pretrain_epochs=100 would be ignored; set teacher.pretrain_epochs=0"):
        build_trainer(config)
    assert build_trainer(replace(config, teacher=replace(config.teacher, pretrain_epochs=0))).stages[0].name == "train"


def test_label_loss_reaches_the_method():
    config = load_config(find_config("digits_kdgan"), ["label_loss=sigmoid", "train.progress=false"])
    assert build_trainer(config).method.label_loss == "sigmoid"


def test_every_float_of_the_data_section_must_be_finite():
    with pytest.raises(ConfigError, match="data.test_fraction must be a finite number, got nan"):
        DataConfig(name="folder", dir="x", test_fraction=float("nan"))


# ------------------------------------------------------------------ per_method
def _config_with(tmp_path, per_method: str):
    path = tmp_path / "c.yaml"
    path.write_text((find_config("digits_kdgan").read_text()) + "\nper_method:\n" + per_method)
    return path


def test_per_method_items_apply_to_their_method_only_and_under_set(tmp_path):
    path = _config_with(tmp_path, "  kdgan: [student.optimizer.game_lr=1e-4, options.beta=2]\n"
                                  "  distn: [options.temperature=3, student.optimizer.lr=0.01]\n")
    kdgan = load_config(path)
    assert kdgan.student.optimizer.game_lr == 1e-4 and kdgan.options["beta"] == 2
    assert kdgan.options["alpha"] == 0.5  # the file's other options stay
    assert load_config(path, ["options.beta=5"]).options["beta"] == 5  # --set wins
    distn = load_config(path, ["method=distn"])  # --set may change the method: its own items then
    assert distn.options == {"temperature": 3} and distn.student.optimizer.lr == 0.01
    assert distn.student.optimizer.game_lr is None
    assert load_config(path, ["method=distn", "student.optimizer.lr=0.5"]).student.optimizer.lr == 0.5
    plain = load_config(path, per_method=False)  # as a comparison loads its base
    assert plain.student.optimizer.game_lr is None and plain.options["beta"] == 1.0


def test_a_comparison_gives_each_method_its_per_method_items_and_its_overrides_win(tmp_path):
    from kdgan.experiments.comparison import method_config
    from kdgan.experiments.overrides import split_overrides

    path = _config_with(tmp_path, "  kdgan: [student.optimizer.game_lr=1e-4, options.beta=2]\n"
                                  "  distn: [student.optimizer.game_lr=1e-3]\n")
    base = load_config(path, per_method=False)
    _, overrides = split_overrides(["distn:student.optimizer.game_lr=5e-4"])
    kdgan = method_config(base, "kdgan", overrides)
    assert kdgan.student.optimizer.game_lr == 1e-4 and kdgan.options["beta"] == 2
    assert method_config(base, "distn", overrides).student.optimizer.game_lr == 5e-4
    mimic = method_config(base, "mimic", overrides)
    assert mimic.student.optimizer.game_lr is None and mimic.options == {}


@pytest.mark.parametrize(("entry", "message"), [
    ("  distn: options.temperature=3\n", "per_method.distn must be a list of key=value items"),
    ("  distn: [temperature]\n", "per_method.distn must be a list of key=value items"),
    ("  distn: [data.n=50]\n", "changes data.n, which every method of a comparison shares"),
    ("  kdgan: [\"student.model.hidden=[8]\"]\n", "changes student.model.hidden, which every method"),
    ("  distn: [method=kdgan]\n", "changes method, which every method"),
    ("  supervised: [student.optimizer.lr=0.1]\n", "per_method.supervised: the supervised teacher and student"),
    ("  distm: [options.temperature=3]\n", "per_method: unknown method 'distm'; known methods:"),
])
def test_bad_per_method_entries_are_refused_with_the_fix(tmp_path, entry, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(_config_with(tmp_path, entry))


def test_the_shipped_table1_configs_give_kdgan_and_nagan_their_validated_game_rate():
    for name in ("mnist_kdgan", "cifar10_kdgan"):
        assert load_config(find_config(name)).student.optimizer.game_lr == 1e-4
        assert load_config(find_config(name), ["method=nagan"]).student.optimizer.game_lr == 1e-4
        assert load_config(find_config(name), ["method=distn"]).student.optimizer.game_lr is None
    for name in ("mnist_kdgan", "cifar10_kdgan", "digits_kdgan", "emotions_kdgan", "yeast_kdgan", "corel5k_kdgan"):
        assert load_config(find_config(name)).train.select_start
