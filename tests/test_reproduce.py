"""The comparison driver and the reproduce commands on a tiny budget: outputs, resuming, methods
from the registry, per-method overrides, atomic results, and the speed measurement."""

import json

import pytest

from kdgan.cli import main
from kdgan.errors import ConfigError
from kdgan.experiments.comparison import commits_note
from kdgan.experiments.reproduce import epochs_to_reach, reproduce_table1, speed_markdown
from kdgan.experiments.reproduce_tags import reproduce_table2
from kdgan.training.runs import git_commit

SMALL_MNIST = [
    "student.model.hidden=[32]", "teacher.model.channels=[4,8]", "teacher.model.fc=32",
    "discriminator.model.channels=[4,8]", "discriminator.model.fc=32", "data.val_size=200",
    "student.pretrain_epochs=1", "teacher.pretrain_epochs=2", "discriminator.pretrain_epochs=1",
    "data.eval_batch_size=5000",
]


def test_epochs_to_reach_a_target():
    curve = [{"epoch": 0, "seconds": 1.0, "val_accuracy": 0.5}, {"epoch": 1, "seconds": 2.5, "val_accuracy": 0.8}]
    assert epochs_to_reach(curve, 0.7) == (2, 2.5)
    assert epochs_to_reach(curve, 0.5) == (1, 1.0)
    assert epochs_to_reach(curve, 0.9) is None
    start = {"epoch": -1, "seconds": 0.1, "val_accuracy": 0.95}  # the start (train.select_start) trained nothing
    assert epochs_to_reach([start, *curve], 0.7) == (2, 2.5) and epochs_to_reach([start, *curve], 0.9) is None


def test_table1_tiny_budget_writes_everything_and_resumes(shared_data, tmp_path):
    out = tmp_path / "t1"
    methods = ("supervised", "distn", "nagan", "kdgan")
    report = reproduce_table1("mnist", [100], 1, out, methods, epochs=2, data_dir=str(shared_data),
                              overrides=SMALL_MNIST)
    for name in ("results.json", "table1.md", "curves.png"):
        assert (out / name).is_file(), name
    runs = report["results"]["100"]
    assert set(runs) == {"teacher", *methods}
    kdgan = runs["kdgan"][0]
    assert [p["epoch"] for p in kdgan["curve"]] == [-1, 0, 1]  # the start too: mnist_kdgan has train.select_start
    assert "test_accuracy" in kdgan["curve"][0]
    assert kdgan["best_test"]["accuracy"] >= kdgan["test"]["accuracy"]
    table = (out / "table1.md").read_text()
    assert "| kdgan |" in table and "77.95±.05" in table  # the paper's number beside ours
    assert "NaGAN best val" in table
    commit = git_commit()
    assert all(row["git_commit"] == commit for rows in runs.values() for row in rows)
    assert f"Runs by commit: {(commit or '')[:7] or 'not recorded'} (5)." in table
    # a rerun finds every cell done and trains nothing: identical numbers
    again = reproduce_table1("mnist", [100], 1, out, methods, epochs=2, data_dir=str(shared_data),
                             overrides=SMALL_MNIST)
    assert again["results"] == report["results"]
    assert again["seconds_this_invocation"] < report["seconds_this_invocation"]
    # a report-only rewrite keeps the environment of the invocation that trained
    saved = json.loads((out / "results.json").read_text())
    saved["environment"] = {"git_commit": "trained-here"}
    (out / "results.json").write_text(json.dumps(saved))
    rewritten = reproduce_table1("mnist", [100], 1, out, methods, report_only=True)
    assert rewritten["environment"] == {"git_commit": "trained-here"}
    assert rewritten["results"] == report["results"]


def test_commits_note_counts_runs_per_commit_including_unstamped_ones():
    results = {"100": {"kdgan": [{"git_commit": "1d4bf8b9e0"}, {"git_commit": "4c18025aa1"}],
                       "distn": [{"git_commit": "1d4bf8b9e0"}, {}]}}
    assert commits_note(results) == "Runs by commit: 1d4bf8b (2), 4c18025 (1), not recorded (1)."
    assert commits_note({}) == ""


def test_recording_a_run_keeps_the_saved_environment_and_stamps_the_commit(tmp_path):
    from kdgan.experiments.comparison import Comparison

    (tmp_path / "results.json").write_text(json.dumps(
        {"results": {}, "params": {}, "environment": {"git_commit": "trained-here"}}))
    comparison = Comparison(tmp_path)
    comparison.record("100", "kdgan", {"seed": 0})
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["environment"] == {"git_commit": "trained-here"}
    assert saved["results"]["100"]["kdgan"] == [{"seed": 0, "git_commit": git_commit()}]


def test_speed_table_names_never_when_the_target_is_not_reached():
    run = lambda seed, vals: {"seed": seed, "curve": [  # noqa: E731
        {"epoch": i, "seconds": float(i + 1), "val_accuracy": v} for i, v in enumerate(vals)]}
    report = {"sizes": [100], "results": {"100": {"nagan": [run(0, [0.5, 0.7])], "kdgan": [run(0, [0.75])],
                                                  "distn": [run(0, [0.6, 0.65])]}}}
    text = speed_markdown(report)
    assert "| 100 | 0 | 70.00 | 1 (1) | 2 (2) | never |" in text
    start = {"epoch": -1, "seconds": 0.0, "val_accuracy": 0.9}  # a start above every game epoch is not the target
    for rows in report["results"]["100"].values():
        rows[0]["curve"].insert(0, start)
    assert "| 100 | 0 | 70.00 | 1 (1) | 2 (2) | never |" in speed_markdown(report)


def test_table2_tiny_budget_on_emotions(shared_data, tmp_path, capsys):
    args = ["reproduce", "table2", "--dataset", "emotions", "--seeds", "1", "--epochs", "2",
            "--methods", "supervised,kdgan", "--data-dir", str(shared_data), "--out", str(tmp_path / "t2"),
            "--set", "teacher.pretrain_epochs=2", "--set", "student.pretrain_epochs=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| knn |" in printed and "| kdgan |" in printed and "ndcg@5" in printed
    results = json.loads((tmp_path / "t2" / "results.json").read_text())["results"]["emotions"]
    for method in ("knn", "teacher", "supervised", "kdgan"):
        metrics = results[method][0]["test"]
        assert 0.0 <= metrics["map"] <= 1.0 and 0.0 <= metrics["p@3"] <= 1.0
    assert (tmp_path / "t2" / "p_at_3.png").is_file()


def test_table2_refuses_unknown_dataset(tmp_path):
    from kdgan.errors import ConfigError

    with pytest.raises(ConfigError, match="table2 datasets are corel5k, yeast, emotions"):
        reproduce_table2("mnist", 1, tmp_path)


def test_curves_fall_back_to_validation_accuracy_without_per_epoch_test_scores(tmp_path):
    from kdgan.experiments.reproduce import plot_curves

    run = {"seed": 0, "curve": [{"epoch": i, "seconds": 1.0 + i, "val_accuracy": 0.5 + 0.1 * i} for i in range(3)]}
    report = {"dataset": "cifar10", "sizes": [500], "seeds": 1, "results": {"500": {"kdgan": [run], "distn": [run]}}}
    assert plot_curves(report, tmp_path / "curves.png") == "val"
    assert (tmp_path / "curves.png").stat().st_size > 1000
    run["curve"][0]["test_accuracy"] = 0.4
    assert plot_curves(report, tmp_path / "curves.png") == "test"


def test_mean_std_shows_no_spread_for_a_single_run():
    from kdgan.experiments.comparison import mean_std

    assert mean_std([0.5]) == "50.00"
    assert mean_std([0.5, 0.7]) == "60.00 ± 14.14"


def _fake_method(name: str, multilabel: bool = True) -> type:
    from kdgan.methods.distn import Distn

    return type(name, (Distn,), {"name": name, "multilabel": multilabel})


def test_default_methods_are_the_registry_so_a_new_method_joins_every_table(monkeypatch):
    from kdgan.experiments.demo import DEMO_EXCLUDES, demo_spec
    from kdgan.experiments.reproduce import table1_spec
    from kdgan.experiments.reproduce_tags import table2_spec
    from kdgan.methods import METHODS

    monkeypatch.setitem(METHODS, "newkd", _fake_method("newkd"))
    monkeypatch.setitem(METHODS, "oneclass", _fake_method("oneclass", multilabel=False))
    everything = tuple(METHODS)
    assert everything[-2:] == ("newkd", "oneclass")
    assert table1_spec("mnist", [100], 1).methods_for(multilabel=False) == everything
    multilabel = table2_spec("emotions", 1).methods_for(multilabel=True)
    assert multilabel == tuple(m for m in everything if METHODS[m].multilabel)
    assert "newkd" in multilabel and "oneclass" not in multilabel  # it needs one class per example
    demo = demo_spec(1).methods_for(multilabel=False)
    assert demo == tuple(m for m in everything if m not in DEMO_EXCLUDES) and "supervised" not in demo
    assert table1_spec("mnist", [100], 1, ["kdgan", "newkd"]).methods_for(False) == ("kdgan", "newkd")
    with pytest.raises(ConfigError, match="method 'oneclass' needs one class per example"):
        table2_spec("emotions", 1, ["kdgan", "oneclass"]).methods_for(multilabel=True)


def test_split_overrides_separates_per_method_items_and_refuses_bad_ones():
    from kdgan.experiments.overrides import split_overrides

    common, by_method = split_overrides(["train.epochs=3", "kdgan:options.alpha=0.3", "data.dir=C:/x",
                                         "kdgan:student.optimizer.game_lr=1e-4", "distn:options.temperature=2"])
    assert common == ["train.epochs=3", "data.dir=C:/x"]
    assert by_method.by_method == {"kdgan": ("options.alpha=0.3", "student.optimizer.game_lr=1e-4"),
                                   "distn": ("options.temperature=2",)}
    with pytest.raises(ConfigError, match="unknown method 'kdgna' before ':'"):
        split_overrides(["kdgna:options.alpha=1"])
    with pytest.raises(ConfigError, match="data.n is shared by every method"):
        split_overrides(["kdgan:data.n=50"])
    with pytest.raises(ConfigError, match="student.pretrain_epochs is shared by every method"):
        split_overrides(["kdgan:student.pretrain_epochs=5"])
    with pytest.raises(ConfigError, match="the supervised teacher and student are shared"):
        split_overrides(["supervised:train.epochs=5"])
    with pytest.raises(ConfigError, match="which this comparison does not run"):
        by_method.check(["kdgan"])


def _record_runs(monkeypatch) -> dict:
    """Replace the training in a comparison by recording each run's config (no network trains)."""
    from kdgan.experiments import comparison

    seen: dict = {}

    def run_method(config, splits, teacher, student):
        seen.setdefault(config.method, []).append(config)
        return {"seed": config.seed, "test": {"accuracy": 0.5}, "val": {"accuracy": 0.5}, "best_test": {},
                "selected_epoch": 0, "seconds": 0.0, "curve": []}

    monkeypatch.setattr(comparison, "shared_pretraining",
                        lambda base, splits, *args, **kwargs: comparison.SharedStart({}, {}, {}, {}))
    monkeypatch.setattr(comparison, "shared_weights", lambda *args: ({}, {}))
    monkeypatch.setattr(comparison, "run_method", run_method)
    return seen


def test_per_method_set_reaches_that_methods_runs_only(monkeypatch, capsys):
    seen = _record_runs(monkeypatch)
    args = ["demo", "--seeds", "2", "--methods", "distn,kdgan", "--set", "train.epochs=3",
            "--set", "kdgan:student.optimizer.game_lr=1e-4", "--set", "kdgan:options.alpha=0.25",
            "--set", "distn:options.temperature=2.5"]
    assert main(args) == 0
    capsys.readouterr()
    assert [c.seed for c in seen["kdgan"]] == [0, 1] and [c.seed for c in seen["distn"]] == [0, 1]
    for config in seen["kdgan"]:
        assert config.student.optimizer.game_lr == 1e-4 and config.options["alpha"] == 0.25
        assert config.train.epochs == 3  # the common override too
    for config in seen["distn"]:
        assert config.student.optimizer.game_lr != 1e-4 and "alpha" not in config.options
        assert config.options == {"temperature": 2.5} and config.train.epochs == 3


def test_bad_per_method_options_are_refused_before_anything_trains(monkeypatch, capsys):
    seen = _record_runs(monkeypatch)
    assert main(["demo", "--seeds", "1", "--methods", "distn,kdgan", "--set", "distn:options.alpah=1"]) == 2
    assert "options.alpah" in capsys.readouterr().err and seen == {}
    assert main(["demo", "--seeds", "1", "--methods", "distn,kdgna"]) == 2
    assert "unknown method 'kdgna' in --methods" in capsys.readouterr().err and seen == {}


def test_results_json_is_written_atomically(tmp_path, monkeypatch):
    from kdgan.errors import OutputError
    from kdgan.experiments.comparison import Comparison

    comparison = Comparison(tmp_path)
    comparison.record("100", "kdgan", {"seed": 0})
    before = (tmp_path / "results.json").read_text()

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("kdgan.storage.os.replace", fail)
    with pytest.raises(OutputError, match="No space left"):
        comparison.record("100", "kdgan", {"seed": 1})
    assert (tmp_path / "results.json").read_text() == before  # the previous file survives whole
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_command_line_flags_become_overrides_after_the_users_set_items():
    from kdgan.experiments.comparison import run_options

    assert run_options(["train.epochs=9", "kdgan:options.alpha=0.3"], epochs=2, device="cuda", data_dir="/d",
                       progress=True) == ("train.epochs=9", "kdgan:options.alpha=0.3", "train.epochs=2", "device=cuda",
                                          "data.dir=/d", "train.progress=true")
    assert run_options([]) == ("train.progress=false",)


def test_paired_difference_is_the_mean_and_t_interval_of_the_seed_differences():
    from kdgan.experiments.tables import paired_difference

    # differences 1, 2, 3: mean 2, sd 1, t(0.975, 2 dof) = 4.302653, half width 4.302653 / sqrt(3) = 2.484138
    mean, low, high = paired_difference([3.0, 5.0, 7.0], [2.0, 3.0, 4.0])
    assert (mean, low, high) == pytest.approx((2.0, -0.484138, 4.484138), abs=1e-6)
    mean, low, high = paired_difference([3.0], [2.5])
    assert mean == 0.5 and low != low and high != high  # one pair: no interval (nan)
    with pytest.raises(ValueError, match="equal, non-empty"):
        paired_difference([1.0, 2.0], [1.0])


def test_with_start_takes_the_start_unless_the_run_beats_it_on_validation():
    from kdgan.experiments.tables import with_start

    run = {"seed": 1, "val": {"accuracy": 0.80}, "test": {"accuracy": 0.70}}
    start = lambda val: {"seed": 1, "val": {"accuracy": val}, "test": {"accuracy": 0.90}}  # noqa: E731
    assert with_start(run, start(0.85), "accuracy") == 0.90
    assert with_start(run, start(0.80), "accuracy") == 0.90  # a tie: the start was selected first
    assert with_start(run, start(0.79), "accuracy") == 0.70
    with pytest.raises(ValueError, match="seed 1 paired with the start of seed 2"):
        with_start(run, {**start(0.5), "seed": 2}, "accuracy")


def test_table1_reports_the_start_included_selection_and_paired_differences():
    from kdgan.experiments.reproduce import table1_markdown

    def run(seed, val, test):
        return {"seed": seed, "val": {"accuracy": val}, "test": {"accuracy": test}, "best_test": {}, "seconds": 1.0}

    results = {"100": {
        "teacher": [run(0, 0.95, 0.95), run(1, 0.95, 0.95)],
        "supervised": [run(0, 0.80, 0.81), run(1, 0.80, 0.79)],
        "distn": [run(0, 0.85, 0.86), run(1, 0.84, 0.85)],
        "kdgan": [run(0, 0.79, 0.78), run(1, 0.82, 0.83)],  # seed 0 below its start on validation
    }}
    text = table1_markdown({"dataset": "mnist", "sizes": [100], "seeds": 2, "results": results})
    # kdgan with the start: seed 0 keeps the supervised student (81), seed 1 its own epoch (83): 82.00 ± 1.41
    assert "| kdgan | 80.50 ± 3.54 | 82.00 ± 1.41 |" in text
    assert "| supervised | 80.00 ± 1.41 | — |" in text
    # kdgan - distn per seed: 78 - 86 = -8, 83 - 85 = -2; mean -5, CI -5 -/+ 12.706 * 4.243 / sqrt(2) = 38.12
    assert "| distn | 2 | -8.00, -2.00 | -5.00 | [-43.12, +33.12] |" in text


def test_reproduce_runs_on_another_config_of_the_same_dataset():
    from kdgan.experiments.reproduce import table1_spec
    from kdgan.experiments.reproduce_tags import table2_spec

    assert {s.config for s in table1_spec("mnist", [100, 1000], 1).settings} == {"mnist_kdgan"}
    spec = table1_spec("mnist", [100, 1000], 1, config="mnist_kdgan_authors")
    assert {s.config for s in spec.settings} == {"mnist_kdgan_authors"}
    assert spec.base_config(spec.settings[0]).data.augment == "affine"  # the recipe's data, at the table's n
    assert spec.base_config(spec.settings[1]).data.n == 1000
    assert table2_spec("emotions", 1, config="emotions_kdgan").settings[0].config == "emotions_kdgan"
    with pytest.raises(ConfigError, match="not on --dataset emotions"):
        table2_spec("emotions", 1, config="yeast_kdgan")
