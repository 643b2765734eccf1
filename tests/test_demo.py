"""The demo and the one table writer: multi-class (accuracy) and multi-label (ranking metrics) alike."""

import json

from kdgan.cli import main
from kdgan.experiments.tables import RANKING_METRICS, summary_table


def _run(seed: int, test: dict, val: dict, seconds: float = 1.0) -> dict:
    return {"seed": seed, "test": test, "val": val, "best_test": {}, "selected_epoch": 0, "seconds": seconds,
            "curve": []}


def test_summary_table_of_multi_class_runs_shows_accuracy_in_percent():
    runs = {"teacher": [_run(0, {"accuracy": 0.9}, {"accuracy": 0.95}, 2.0), _run(1, {"accuracy": 0.8},
                                                                                   {"accuracy": 0.85}, 4.0)],
            "kdgan": [_run(0, {"accuracy": 0.5}, {"accuracy": 0.6})]}
    lines = summary_table(runs, {"teacher": 87178, "student": 2410}).splitlines()
    assert lines[0] == "| method | network | parameters | test accuracy % (mean ± std) | val accuracy % | seconds/run |"
    assert lines[1] == "|---|---|---:|---|---|---:|"
    assert lines[2] == "| teacher | teacher | 87,178 | 85.00 ± 7.07 | 90.00 ± 7.07 | 3.0 |"
    assert lines[3] == "| kdgan | student | 2,410 | 50.00 | 60.00 | 1.0 |"


def test_summary_table_of_multi_label_runs_shows_every_ranking_metric():
    scores = {metric: 0.25 for metric in RANKING_METRICS}
    runs = {"kdgan": [_run(0, {**scores, "map": 0.5}, {**scores, "map": 0.75}),
                      _run(1, {**scores, "map": 0.7}, {**scores, "map": 0.25})]}
    header, _, row = summary_table(runs, {"student": 10}).splitlines()
    assert header == "| method | network | parameters | " + " | ".join(RANKING_METRICS) + " | val MAP | seconds/run |"
    cells = row.split(" | ")
    assert cells[3] == "0.2500 ± 0.0000"  # p@3
    assert cells[3 + RANKING_METRICS.index("map")] == "0.6000 ± 0.1414"
    assert cells[-2] == "0.5000 ± 0.3536"  # the validation MAP that selected the epoch


def test_demo_on_a_multi_label_config_prints_ranking_metrics(shared_data, tmp_path, capsys):
    args = ["demo", "--config", "emotions_kdgan", "--seeds", "1", "--methods", "distn,kdgan", "--out", str(tmp_path),
            "--set", f"data.dir={shared_data}", "--set", "train.epochs=1", "--set", "teacher.pretrain_epochs=1",
            "--set", "student.pretrain_epochs=1", "--set", "discriminator.pretrain_epochs=1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| p@3 |" in printed and "| mrr |" in printed and "val MAP" in printed and "accuracy" not in printed
    assert "emotions-2view, all training examples labelled, 1 seeds, 1 epochs per method" in printed
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["runs"]) == ["teacher", "supervised", "distn", "kdgan"]
    for rows in results["runs"].values():
        assert 0.0 <= rows[0]["test"]["map"] <= 1.0 and set(rows[0]["test"]) >= set(RANKING_METRICS)
    assert (tmp_path / "table.md").read_text().startswith(printed.splitlines()[0])
