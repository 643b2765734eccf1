"""scripts/sweep.py: grid expansion, tied keys, and resuming a sweep without retraining."""

import importlib.util
import json
from pathlib import Path

from kdgan.training.runs import git_commit

from .conftest import tiny_overrides

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "sweep.py"
spec = importlib.util.spec_from_file_location("sweep", SCRIPT)
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def test_grid_points_cross_axes_and_tie_keys_joined_by_plus():
    points = sweep.grid_points(["a.x+b.x=1e-3,0.5", "options.alpha=0.1,0.9"])
    assert points == [
        ["a.x=1e-3", "b.x=1e-3", "options.alpha=0.1"], ["a.x=1e-3", "b.x=1e-3", "options.alpha=0.9"],
        ["a.x=0.5", "b.x=0.5", "options.alpha=0.1"], ["a.x=0.5", "b.x=0.5", "options.alpha=0.9"],
    ]


def test_tiny_sweep_records_every_point_and_resumes(tmp_path, capsys):
    args = ["--config", "digits_kdgan", "--out", str(tmp_path), "--grid", "options.alpha=0.1,0.9",
            "--grid", "student.optimizer.game_lr+teacher.optimizer.game_lr=0.0001", "--seeds", "1"]
    for override in tiny_overrides(epochs=1):
        args += ["--set", override]
    sweep.main(args)
    rows = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["settings"][0] for r in rows] == ["options.alpha=0.1", "options.alpha=0.9"]
    assert all(0 <= r["val"] <= 1 and r["seed"] == 0 and r["git_commit"] == git_commit() for r in rows)
    printed = capsys.readouterr().out
    assert printed.count("| options.alpha=") == 2
    sweep.main(args)  # every point is recorded: nothing is trained again
    assert json.loads((tmp_path / "sweep.json").read_text()) == rows
    assert "val " not in capsys.readouterr().out.split("| settings")[0]
