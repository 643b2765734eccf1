"""benchmarks/gpu.py works before GPU time is spent on it: its ``--quick`` CPU run writes sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kdgan.config import load_config
from kdgan.training.runs import find_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
PLAYERS = {(d, r) for d in ("mnist", "cifar10") for r in ("student", "teacher", "discriminator")}


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gpu") / "gpu.json"
    subprocess.run([sys.executable, str(BENCHMARKS / "gpu.py"), "--quick", "--device", "cpu", "--out", str(out)],
                   check=True, capture_output=True, text=True, timeout=300)
    return json.loads(out.read_text())


def test_quick_run_measures_every_player_round_and_cell_in_both_precisions(quick_results):
    assert quick_results["benchmark"] == "gpu"
    machine, results = quick_results["machine"], quick_results["results"]
    assert machine["device"] == "cpu" and machine["quick"] is True and machine["wall_seconds"] > 0
    batch, examples = results["settings"]["batch_size"], results["settings"]["examples"]
    for variant in ("fp32", "bf16"):
        steps = [s for s in results["player_steps"] if s["variant"] == variant]
        assert {(s["dataset"], s["role"]) for s in steps} == PLAYERS
        for step in steps:
            assert step["precision"] == variant and step["compile"] is False and step["batch_size"] == batch
            assert step["samples_per_second"] == pytest.approx(examples / step["epoch_seconds"])
            assert 0 < step["epoch_seconds"] < 60 and step["first_epoch_seconds"] > 0
        for dataset in ("mnist", "cifar10"):
            (round_,) = [r for r in results["rounds"] if r["variant"] == variant and r["dataset"] == dataset]
            plain = sum(s["epoch_seconds"] for s in steps if s["dataset"] == dataset)
            assert round_["plain_steps_seconds"] == pytest.approx(plain)  # the sum of that dataset's three players
            assert round_["ratio"] == pytest.approx(round_["round_seconds"] / plain) and round_["ratio"] > 0
    cells = {c["variant"]: c for c in results["table1_cell"]}
    assert set(cells) == {"fp32", "bf16"}
    assert all(c["seconds"] > 0 and (c["n"], c["batch_size"], c["test_size"]) == (100, 10, 20) for c in cells.values())
    skipped = {s["variant"]: s["reason"] for s in results["skipped"]}
    assert set(skipped) == {"fp32+compile", "bf16+compile"} and "GPU only" in skipped["bf16+compile"]


def test_each_measurement_trains_the_players_network_with_the_variants_settings(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import gpu

    mnist = load_config(find_config("mnist_kdgan"))
    config = gpu.player_config("mnist", "supervised", "discriminator",
                               ["train.precision=bf16", "train.compile=true", "device=cpu"])
    assert config.method == "supervised" and config.options == {"player": "teacher"}
    assert config.teacher.model == mnist.discriminator.model  # D's network exactly: none of the teacher's dropout
    assert (config.train.precision, config.train.compile) == ("bf16", True)
    assert config.teacher.pretrain_epochs == 0 and config.train.report_players is False
    student = gpu.player_config("mnist", "supervised", "student", [])
    assert student.options == {"player": "student"} and student.student.model == mnist.student.model
    assert gpu.player_config("cifar10", "kdgan", None, []).method == "kdgan"
