"""Learning-curve plots from run directories' metrics.jsonl."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from kdgan.config import load_config
from kdgan.errors import ConfigError, DataError
from kdgan.evaluation.plot import curves, default_labels, plot_runs, read_metrics, run_label
from kdgan.training.build import build_trainer
from kdgan.training.runs import find_config


def fake_run(path, method: str, epochs: int = 4, offset: float = 0.0):
    """A run directory as the engine writes it: pretraining records, then the game's."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(f"method: {method}\nseed: 0\n")
    records = [
        {"stage": "pretrain-teacher", "epoch": 0, "loss_teacher": 2.0, "val_accuracy": 0.5, "seconds": 0.1},
        {"stage": "pretrain-teacher", "epoch": 1, "loss_teacher": 1.0, "val_accuracy": 0.7, "seconds": 0.2},
        {"stage": "pretrain-discriminator", "epoch": 0, "loss_discriminator": 1.3, "seconds": 0.3},
    ]
    records += [
        {"stage": "train", "epoch": e, "loss_student": 1.0 / (e + 1), "val_accuracy": 0.6 + 0.05 * e + offset,
         "teacher_val_accuracy": 0.8, "tau": 1.0, "seconds": 0.5 + e}
        for e in range(epochs)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_png_is_written_with_the_requested_size(tmp_path):
    runs = [fake_run(tmp_path / "a", "kdgan"), fake_run(tmp_path / "b", "distn", offset=0.1)]
    out = plot_runs(runs, tmp_path / "plots" / "curves.png", size=(6.0, 4.0), dpi=50)
    assert out == tmp_path / "plots" / "curves.png" and out.stat().st_size > 1000
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (300, 200)
        assert np.asarray(image.convert("L")).std() > 1  # something was drawn


def test_seconds_axis_and_pretraining_stages(tmp_path):
    run = fake_run(tmp_path / "a", "kdgan")
    out = plot_runs([run], tmp_path / "t.png", metric="val_accuracy", x="seconds", include_pretrain=True)
    assert out.stat().st_size > 1000
    by_stage = {stage: xs for stage, xs, _ in curves(read_metrics(run), "val_accuracy", "epoch", True)}
    assert by_stage == {"pretrain-teacher": [0.0, 1.0], "train": [3.0, 4.0, 5.0, 6.0]}  # epochs count on
    train_only = curves(read_metrics(run), "val_accuracy", "seconds")
    assert [(stage, xs) for stage, xs, _ in train_only] == [("train", [0.5, 1.5, 2.5, 3.5])]


def test_missing_metric_lists_the_available_ones(tmp_path):
    run = fake_run(tmp_path / "a", "kdgan")
    with pytest.raises(DataError, match="metric 'test_accuracy' is not in .* available: loss_student, tau, "
                                        "teacher_val_accuracy, val_accuracy"):
        plot_runs([run], tmp_path / "x.png", metric="test_accuracy")
    with pytest.raises(DataError, match="loss_teacher"):  # pretraining-only keys are listed with include_pretrain
        plot_runs([run], tmp_path / "x.png", metric="nope", include_pretrain=True)


def test_run_without_metrics_and_bad_arguments(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no metrics.jsonl"):
        plot_runs([tmp_path / "empty"], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="does not exist"):
        plot_runs([tmp_path / "nope"], tmp_path / "x.png")
    run = fake_run(tmp_path / "a", "kdgan")
    with pytest.raises(ConfigError, match="x must be one of epoch, seconds"):
        plot_runs([run], tmp_path / "x.png", x="step")
    with pytest.raises(ConfigError, match="must be a .png file"):
        plot_runs([run], tmp_path / "x.pdf")
    (run / "metrics.jsonl").write_text('{"stage": "train", "epoch": 0}\n{"stage": "tra')
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        plot_runs([run], tmp_path / "x.png")


def test_labels_come_from_the_method_and_repeat_with_the_folder(tmp_path):
    a, b, c = fake_run(tmp_path / "a", "kdgan"), fake_run(tmp_path / "b", "kdgan"), fake_run(tmp_path / "c", "distn")
    assert run_label(a) == "kdgan"
    assert default_labels([a, b, c]) == ["kdgan (a)", "kdgan (b)", "distn"]
    (c / "config.yaml").unlink()
    assert run_label(c) == "c"


def test_a_real_run_directory(tmp_path):
    overrides = ["train.progress=false", "train.epochs=3", "method=supervised", "options={}",
                 "student.pretrain_epochs=0"]
    build_trainer(load_config(find_config("digits_kdgan"), overrides), out_dir=tmp_path / "run").fit()
    assert run_label(tmp_path / "run") == "supervised"  # from student.pt: build_trainer writes no config.yaml
    [(stage, xs, ys)] = curves(read_metrics(tmp_path / "run"), "val_accuracy")
    assert stage == "train" and xs == [-1.0, 0.0, 1.0, 2.0] and all(0 <= y <= 1 for y in ys)  # -1: the start
    assert plot_runs([tmp_path / "run"], tmp_path / "run.png", metric="loss_student", x="seconds").is_file()


def test_mean_curves_average_seeds_over_their_common_length_without_touching_the_backend(tmp_path):
    import matplotlib

    from kdgan.evaluation.plot import plot_mean_curves

    backend = matplotlib.get_backend()
    series = {"kdgan": [[0.5, 0.7, 0.9], [0.7, 0.9]], "nagan": [[0.4]], "distn": [[], []]}
    drawn = plot_mean_curves(series, tmp_path / "sub" / "curves.png", xlabel="epoch", ylabel="accuracy (%)",
                             title="t", scale=100)
    assert drawn == {"kdgan": pytest.approx([60.0, 80.0]), "nagan": pytest.approx([40.0])}  # distn: no curve
    image = Image.open(tmp_path / "sub" / "curves.png")
    assert image.format == "PNG" and image.size == (600, 400)
    assert matplotlib.get_backend() == backend
