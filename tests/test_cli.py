"""The command line: methods, train, evaluate, demo, and python -m kdgan."""

import json
import subprocess
import sys

import pytest

from kdgan.cli import main

from .conftest import tiny_overrides


def test_methods_lists_every_registered_method_with_its_summary(capsys):
    from kdgan.methods import METHODS

    assert main(["methods"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"{name}: {cls.summary}" for name, cls in METHODS.items()]
    assert {"kdgan", "supervised"} <= set(METHODS) and all(len(cls.summary) > 10 for cls in METHODS.values())


def test_train_then_evaluate_reproduces_the_final_test_score(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "digits_kdgan", "--out", str(out)]
    for item in tiny_overrides(epochs=2):
        args += ["--set", item]
    assert main(args) == 0
    final = json.loads((out / "final.json").read_text())
    for name in ("metrics.jsonl", "config.yaml", "run.json", "student.pt", "last.pt"):
        assert (out / name).is_file(), name
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["test"]["accuracy"] == pytest.approx(final["test"]["accuracy"])
    # a second train into the same folder is refused, with the fix named
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_bad_config_key_exits_2_with_a_message_and_makes_no_run_dir(tmp_path, capsys):
    assert main(["train", "digits_kdgan", "--set", "options.alpah=1", "--out", str(tmp_path / "x")]) == 2
    assert "unknown config key 'options.alpah'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_demo_with_a_tiny_budget_prints_a_table_and_writes_results(tmp_path, capsys):
    args = ["demo", "--seeds", "2", "--methods", "distn,kdgan", "--out", str(tmp_path)]
    for item in tiny_overrides(epochs=2):
        args += ["--set", item]
    assert main(args) == 0
    table = capsys.readouterr().out
    for row in ("| teacher |", "| supervised |", "| distn |", "| kdgan |"):
        assert row in table
    results = json.loads((tmp_path / "results.json").read_text())
    assert set(results["runs"]) == {"teacher", "supervised", "distn", "kdgan"}
    assert all(len(rows) == 2 for rows in results["runs"].values())
    assert results["params"]["teacher"] > results["params"]["student"]


def test_python_dash_m_is_the_same_cli():
    done = subprocess.run([sys.executable, "-m", "kdgan", "methods"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "kdgan: three-player game" in done.stdout
