"""Comparisons in several processes (--jobs), their defaults (no per-epoch scores of unselected
players), and runs at a study's best parameters (--tuned)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest

from kdgan.cli import main
from kdgan.errors import ConfigError
from kdgan.experiments.comparison import Setting, Spec, run_comparison
from kdgan.experiments.demo import demo_spec
from kdgan.experiments.overrides import tuned_overrides
from kdgan.experiments.parallel import run_all

TINY = ("train.epochs=1", "teacher.pretrain_epochs=1", "student.pretrain_epochs=1", "train.progress=false")


def numbers(results: dict) -> dict:
    """Every recorded number but the timings and the commit, by (setting, method, seed)."""
    return {(setting, method, run["seed"]): {k: v for k, v in run.items() if k not in ("seconds", "git_commit")}
            | {"curve": [{k: v for k, v in p.items() if k != "seconds"} for p in run["curve"]]}
            for setting, methods in results.items() for method, rows in methods.items() for run in rows}


def test_two_jobs_give_the_numbers_of_one_and_resume_a_lost_run(tmp_path):
    spec = Spec((Setting("demo", "digits_kdgan"),), 2, ("distn", "kdgan"), overrides=TINY)
    one = run_comparison(spec, tmp_path / "one", jobs=1)
    two = run_comparison(spec, tmp_path / "two", jobs=2)
    assert numbers(two["results"]) == numbers(one["results"])
    assert len(numbers(one["results"])) == 2 * 4  # teacher, supervised, distn, kdgan for each seed
    assert list(two["results"]["demo"]) == ["teacher", "supervised", "distn", "kdgan"]  # not the order runs end in
    assert [r["seed"] for r in two["results"]["demo"]["kdgan"]] == [0, 1]

    saved = tmp_path / "two" / "results.json"
    assert json.loads(saved.read_text())["results"] == two["results"]  # written after the runs
    report = json.loads(saved.read_text())
    lost = report["results"]["demo"]["kdgan"].pop(1)  # a run killed before it was recorded
    saved.write_text(json.dumps(report))
    resumed = run_comparison(spec, tmp_path / "two", jobs=2)
    assert numbers(resumed["results"]) == numbers(one["results"])
    again = resumed["results"]["demo"]
    assert numbers({"demo": {"kdgan": [again["kdgan"][1]]}}) == numbers({"demo": {"kdgan": [lost]}})
    for method in ("teacher", "supervised", "distn"):  # recorded runs were kept, not trained again
        assert again[method] == two["results"]["demo"][method]
    assert again["kdgan"][0] == two["results"]["demo"]["kdgan"][0]


def test_comparisons_skip_scores_of_unselected_players_unless_asked():
    setting = Setting("demo", "digits_kdgan")
    assert Spec((setting,), 1).base_config(setting).train.report_players is False
    asked = Spec((setting,), 1, overrides=("train.report_players=true",))
    assert asked.base_config(setting).train.report_players is True


@pytest.mark.parametrize("command", [["demo"], ["reproduce", "table2", "--dataset", "emotions", "--epochs", "1"]])
def test_jobs_reach_both_phases_of_demo_and_reproduce(command, monkeypatch, tmp_path, shared_data, capsys):
    from kdgan.experiments import comparison
    from tests.test_reproduce import _record_runs

    _record_runs(monkeypatch)
    asked: list[tuple[str, int]] = []

    def spy(fn, tasks, jobs=1, done=None):  # runs in this process, so the fakes above still apply
        asked.append((fn.__name__, jobs))
        return comparison.parallel_run_all(fn, tasks, 1, done)

    monkeypatch.setattr(comparison, "parallel_run_all", comparison.run_all, raising=False)
    monkeypatch.setattr(comparison, "run_all", spy)
    args = [*command, "--seeds", "1", "--methods", "distn", "--jobs", "3"]
    assert main(args + (["--data-dir", str(shared_data), "--out", str(tmp_path)] if command != ["demo"] else [])) == 0
    capsys.readouterr()
    assert asked == [("pretrain", 3), ("train_method", 3)]


def test_each_parallel_run_is_recorded_as_it_ends_not_when_all_have():
    began, recorded = time.monotonic(), {}
    run_all(time.sleep, [0.0, 3.0], jobs=2, done=lambda task, _: recorded.setdefault(task, time.monotonic() - began))
    assert recorded[3.0] - recorded[0.0] > 1.5  # a killed comparison keeps the short run


def test_jobs_below_one_are_refused(capsys):
    assert main(["demo", "--seeds", "1", "--methods", "distn", "--jobs", "0"]) == 2
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err


def make_study(folder: Path, method: str, params: dict, distributions: dict, value: float) -> None:
    """A study as ``kdgan tune`` names it (after its method), holding one finished trial."""
    study = optuna.create_study(storage=f"sqlite:///{folder / 'study.db'}", study_name=method, direction="maximize")
    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=value))


def test_tuned_runs_each_method_at_its_studys_best_trial(tmp_path, monkeypatch):
    from tests.test_reproduce import _record_runs

    alpha = optuna.distributions.FloatDistribution(0.0, 1.0)
    lr = optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)
    make_study(tmp_path, "kdgan", {"options.alpha": 0.3, "student.optimizer.game_lr": 2e-5},
               {"options.alpha": alpha, "student.optimizer.game_lr": lr}, 0.9)
    make_study(tmp_path, "distn", {"options.temperature": 4.0},
               {"options.temperature": optuna.distributions.FloatDistribution(1.0, 10.0)}, 0.8)
    assert tuned_overrides(str(tmp_path), ["kdgan", "distn"]) == [
        "kdgan:options.alpha=0.3", "kdgan:student.optimizer.game_lr=2.0e-05", "distn:options.temperature=4.0"]
    with pytest.raises(ConfigError, match="no study named 'mimic'.*kdgan tune --method mimic"):
        tuned_overrides(str(tmp_path), ["kdgan", "mimic"])

    seen = _record_runs(monkeypatch)
    spec = demo_spec(1, ["kdgan", "distn"], overrides=("distn:options.temperature=2.5",))
    report = run_comparison(spec, tuned=str(tmp_path))
    kdgan, distn = seen["kdgan"][0], seen["distn"][0]
    assert kdgan.options["alpha"] == 0.3 and kdgan.student.optimizer.game_lr == 2e-5
    assert distn.options == {"temperature": 2.5}  # the command line's --set wins over the study
    assert report["tuned"]["overrides"][0] == "kdgan:options.alpha=0.3"


def test_reproduce_takes_tuned_from_the_command_line(tmp_path, monkeypatch, shared_data, capsys):
    from tests.test_reproduce import _record_runs

    make_study(tmp_path, "kdgan", {"options.alpha": 0.7},
               {"options.alpha": optuna.distributions.FloatDistribution(0.0, 1.0)}, 0.9)
    seen = _record_runs(monkeypatch)
    args = ["reproduce", "table1", "--dataset", "mnist", "--sizes", "100", "--seeds", "1", "--methods", "kdgan",
            "--data-dir", str(shared_data), "--out", str(tmp_path / "t1"), "--tuned", str(tmp_path)]
    assert main(args) == 0
    capsys.readouterr()
    assert seen["kdgan"][0].options["alpha"] == 0.7
    saved = json.loads((tmp_path / "t1" / "results.json").read_text())
    assert saved["tuned"] == {"storage": str(tmp_path), "overrides": ["kdgan:options.alpha=0.7"]}


def test_machines_with_disjoint_methods_merge_into_the_single_machine_table(tmp_path, shared_data, capsys):
    import shutil

    def reproduce(out: Path, methods: str, *extra: str) -> int:
        return main(["reproduce", "table2", "--dataset", "emotions", "--seeds", "1", "--epochs", "1",
                     "--methods", methods, "--data-dir", str(shared_data), "--set", "teacher.pretrain_epochs=1",
                     "--set", "student.pretrain_epochs=1", "--out", str(out), *extra])

    assert reproduce(tmp_path / "shared", "supervised") == 0  # the teacher and student, trained once
    for machine in ("a", "b"):
        shutil.copytree(tmp_path / "shared", tmp_path / machine)
    assert reproduce(tmp_path / "a", "distn") == 0 and reproduce(tmp_path / "b", "kdgan") == 0
    assert reproduce(tmp_path / "all", "distn,kdgan", "--merge", str(tmp_path / "a"), str(tmp_path / "b")) == 0
    assert reproduce(tmp_path / "one", "distn,kdgan") == 0  # the same table on one machine
    capsys.readouterr()
    merged = json.loads((tmp_path / "all" / "results.json").read_text())["results"]
    alone = json.loads((tmp_path / "one" / "results.json").read_text())["results"]
    assert numbers(merged) == numbers(alone)
    assert set(merged["emotions"]) == {"knn", "teacher", "supervised", "distn", "kdgan"}
    assert "| kdgan |" in (tmp_path / "all" / "table2.md").read_text()

    report = json.loads((tmp_path / "b" / "results.json").read_text())
    report["results"]["emotions"]["teacher"][0]["val"]["map"] += 0.01  # b trained its own teacher
    (tmp_path / "b" / "results.json").write_text(json.dumps(report))
    assert reproduce(tmp_path / "bad", "distn,kdgan", "--merge", str(tmp_path / "a"), str(tmp_path / "b")) == 2
    assert "teacher seed 0 (emotions) differs between" in capsys.readouterr().err
