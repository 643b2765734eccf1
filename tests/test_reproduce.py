"""The reproduce commands on a tiny budget: outputs, resuming, and the speed measurement."""

import json

import pytest

from kdgan.cli import main
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
    assert len(kdgan["curve"]) == 2 and "test_accuracy" in kdgan["curve"][0]
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
    comparison = Comparison(["kdgan"], tmp_path)
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
