"""``kdgan tune``: search spaces, the study on its storages, pruning, workers, heartbeats, report."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import optuna
import pytest

from kdgan.cli import main
from kdgan.config import load_config
from kdgan.errors import ConfigError
from kdgan.experiments.tune import (
    EpochReporter,
    TuneSpec,
    as_override,
    base_config,
    best_overrides,
    open_storage,
    open_study,
    sample,
    search_space,
    storage_url,
    trial_config,
    tune,
)
from kdgan.methods import METHODS, Method
from kdgan.methods.search import Range
from kdgan.training.runs import find_config
from tests.conftest import tiny_overrides

SPACED = sorted(name for name, cls in METHODS.items() if getattr(cls, "search_space", None))
TINY = tuple(tiny_overrides(epochs=2))


def spec_for(tmp_path: Path, method: str = "mimic", storage: str | None = None, **changes) -> TuneSpec:
    out = tmp_path / "tune"
    spec = TuneSpec(config="digits_kdgan", method=method, storage=storage or storage_url(None, out),
                    study=f"{method}-{uuid.uuid4().hex[:8]}", out=out, overrides=TINY)
    return replace(spec, **changes)


# ------------------------------------------------------------------ search spaces (no training)
@pytest.mark.parametrize("method", SPACED)
def test_each_methods_space_is_sampled_within_its_ranges_and_applied(method):
    space = search_space(method)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    base = base_config(TuneSpec("digits_kdgan", method, "sqlite://", "s", Path(".")))
    for _ in range(20):
        trial = study.ask()
        params = sample(trial, space)
        config = trial_config(base, params).to_dict()
        for key, span in space.items():
            distribution = trial.distributions[key]
            assert (distribution.low, distribution.high, distribution.log) == (span.low, span.high, span.log), key
            assert span.low <= params[key] <= span.high, key
            assert isinstance(params[key], int) == span.integer, key
            node = config
            for part in key.split("."):
                node = node[part]
            assert node == pytest.approx(params[key]), key  # the trial's config holds the sampled value
        study.tell(trial, 0.0)


def test_kdgan_searches_the_papers_ranges_and_the_game_settings():
    space = search_space("kdgan")
    assert space["options.alpha"] == Range(0.0, 1.0)
    assert space["options.beta"] == Range(1e-3, 1e3, log=True)
    assert space["options.gamma"] == Range(1e-4, 1e2, log=True)
    assert space["discriminator.passes"] == Range(1, 20, integer=True)
    assert {"options.tau_start", "options.tau_end", "student.optimizer.game_lr", "teacher.optimizer.game_lr",
            "discriminator.optimizer.game_lr"} <= set(space)
    assert set(search_space("distn")) >= {"options.weight", "options.temperature"}
    assert set(search_space("noisy")) >= {"options.ratio", "options.std", "student.optimizer.game_lr"}


def test_a_method_without_a_space_and_an_unknown_method_are_refused(monkeypatch):
    class Spaceless(Method):
        name = "spaceless"
        summary = "test only"

    monkeypatch.setitem(METHODS, "spaceless", Spaceless)
    with pytest.raises(ConfigError, match=f"method 'spaceless' declares no search space; .* in {__name__}"):
        search_space("spaceless")
    with pytest.raises(ConfigError, match="unknown method 'nosuch'"):
        search_space("nosuch")


def test_overrides_keep_small_numbers_as_numbers():
    assert as_override("student.optimizer.game_lr", 1e-05) == "student.optimizer.game_lr=1.0e-05"
    config = load_config(find_config("digits_kdgan"), [as_override("options.beta", 2.5e-4),
                                                      as_override("discriminator.passes", 3)])
    assert config.options["beta"] == 2.5e-4 and isinstance(config.options["beta"], float)
    assert config.discriminator.passes == 3


# ------------------------------------------------------------------ pruning (a fake curve)
def test_the_median_pruner_stops_a_trial_whose_curve_falls_below_earlier_ones(tmp_path):
    def curve(values):
        def run(trial):
            history = EpochReporter(trial, "accuracy")
            history.append({"stage": "pretrain-student", "epoch": 0, "val_accuracy": 0.0})  # not reported
            history.append({"stage": "train", "epoch": -1, "val_accuracy": 0.0})  # the start: not reported
            for epoch, value in enumerate(values):
                history.append({"stage": "train", "epoch": epoch, "val_accuracy": value})
            return values[-1]
        return run

    for prune, expected in ((True, optuna.trial.TrialState.PRUNED), (False, optuna.trial.TrialState.COMPLETE)):
        spec = spec_for(tmp_path, prune=prune)
        study = open_study(spec, base_config(spec))
        study.optimize(curve([0.8, 0.9, 0.9]), n_trials=5)
        study.optimize(curve([0.1, 0.2, 0.3]), n_trials=1)
        last = study.trials[-1]
        assert last.state == expected
        assert list(last.intermediate_values) == ([0] if prune else [0, 1, 2])  # stopped at the first epoch


# ------------------------------------------------------------------ real studies (tiny budgets)
def test_a_pruned_trial_stops_its_training_run_at_that_epoch(tmp_path):
    from kdgan.data import load_splits
    from kdgan.experiments.tune import objective

    spec = spec_for(tmp_path, overrides=tuple(tiny_overrides(epochs=4)))
    base = base_config(spec)
    study = open_study(spec, base)
    study.pruner = optuna.pruners.ThresholdPruner(lower=1.1)  # no accuracy reaches it: prune at the first report
    study.optimize(objective(spec, base, load_splits(base.data, base.seed)), n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]  # epochs 1 to 3 never ran
    assert "result" not in trial.user_attrs


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """A distn study of three trials in the embedded storage, made through the CLI."""
    out = tmp_path_factory.mktemp("study")
    args = ["tune", "digits_kdgan", "--method", "distn", "--trials", "2", "--out", str(out), "--no-prune"]
    for pair in TINY:
        args += ["--set", pair]
    assert main(args) == 0
    first = (out / "pretrained").stat().st_mtime_ns, sorted(p.name for p in (out / "pretrained").iterdir())
    assert main([*args[:4], "--trials", "1", *args[6:]]) == 0  # the rerun adds a trial
    return out, first


def test_a_study_in_the_embedded_storage_runs_trials_and_a_rerun_adds_to_it(finished_study):
    out, (mtime, pretrained) = finished_study
    assert (out / "study.db").is_file()
    assert any(name.endswith("-teacher.pt") for name in pretrained)  # shared players, trained once ...
    assert sorted(p.name for p in (out / "pretrained").iterdir()) == pretrained  # ... and reused by the rerun
    study = optuna.load_study(study_name="distn", storage=storage_url(str(out)))
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    for trial in study.trials:
        result, config = trial.user_attrs["result"], trial.user_attrs["config"]
        assert trial.value == result["val"]["accuracy"]  # the objective is the selected epoch's validation score
        assert "test" not in result
        assert config["method"] == "distn"
        assert config["options"]["weight"] == pytest.approx(trial.params["options.weight"])
        assert config["student"]["optimizer"]["game_lr"] == pytest.approx(trial.params["student.optimizer.game_lr"])
        assert "commit" in trial.user_attrs
        assert sorted(trial.intermediate_values) == [0, 1]  # one validation value per game epoch (2 epochs)
        if result["selected_epoch"] >= 0:
            assert trial.intermediate_values[result["selected_epoch"]] == trial.value
        else:  # the start won (digits_kdgan has train.select_start): at least as good as every game epoch
            assert trial.value >= max(trial.intermediate_values.values())
    assert len({t.params["options.weight"] for t in study.trials}) == 3  # the sampler moved


def test_best_overrides_give_the_best_trials_parameters_as_set_pairs(finished_study):
    out, _ = finished_study
    study = optuna.load_study(study_name="distn", storage=storage_url(str(out)))
    pairs = best_overrides(str(out), "distn")
    config = load_config(find_config("digits_kdgan"), ["method=distn", *pairs])
    assert config.options["weight"] == study.best_params["options.weight"]
    assert config.student.optimizer.game_lr == study.best_params["student.optimizer.game_lr"]
    with pytest.raises(ConfigError, match="no study named 'nosuch'"):
        best_overrides(str(out), "nosuch")


def test_report_writes_the_table_best_parameters_and_plots(finished_study, tmp_path):
    out, _ = finished_study
    report = tmp_path / "report"
    assert main(["tune", "--report", str(out), "--out", str(report)]) == 0
    text = (report / "report.md").read_text()
    assert "## distn (method distn)" in text
    assert "| trial | state | value |" in text and text.count("| COMPLETE |") == 3
    assert "--set options.weight=" in text
    for kind in ("history", "importance", "slice"):
        png = report / f"distn-{kind}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, kind
        assert f"]({png.name})" in text


def test_a_study_made_for_another_method_or_config_is_refused(finished_study):
    out, _ = finished_study
    spec = TuneSpec("digits_kdgan", "mimic", storage_url(str(out)), "distn", out, TINY)
    with pytest.raises(ConfigError, match="study 'distn' .* was made for distn, not mimic"):
        open_study(spec, base_config(spec))
    spec = replace(spec, method="distn", overrides=(*TINY, "train.epochs=5"))
    with pytest.raises(ConfigError, match=r"made with another config \(it differs in train.epochs\)"):
        open_study(spec, base_config(spec))


def workers_share_one_study(spec: TuneSpec) -> None:
    study = tune(spec, trials=4, jobs=2)
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == [0, 1, 2, 3]  # N trials in all, no number twice
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({t.user_attrs["worker"] for t in study.trials}) == 2  # both workers contributed


def test_two_worker_processes_share_one_study(tmp_path):
    workers_share_one_study(spec_for(tmp_path))


@pytest.mark.skipif(not os.environ.get("KDGAN_TEST_POSTGRES_URL"),
                    reason="KDGAN_TEST_POSTGRES_URL is not set (.ci/run starts a PostgreSQL server and sets it)")
def test_two_worker_processes_share_one_study_on_postgresql(tmp_path):
    workers_share_one_study(spec_for(tmp_path, storage=os.environ["KDGAN_TEST_POSTGRES_URL"]))


SLEEPING_WORKER = """
import sys, time
from pathlib import Path
from kdgan.experiments.tune import TuneSpec, base_config, open_study
spec = TuneSpec("digits_kdgan", "mimic", sys.argv[1], sys.argv[2], Path(sys.argv[3]), tuple(sys.argv[5:]), heartbeat=1)
def objective(trial):
    time.sleep(0.5)  # past the heartbeat thread's first beat, which starts with the trial
    Path(sys.argv[4]).touch()
    time.sleep(600)
open_study(spec, base_config(spec)).optimize(objective, n_trials=1)
"""


def test_a_killed_workers_trial_is_marked_failed_and_the_study_goes_on(tmp_path):
    spec, started = spec_for(tmp_path, heartbeat=1), tmp_path / "started"
    worker = subprocess.Popen([sys.executable, "-c", SLEEPING_WORKER, spec.storage, spec.study, str(spec.out),
                               str(started), *TINY])
    deadline = time.monotonic() + 60
    while not started.exists() and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.1)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    running = optuna.load_study(study_name=spec.study, storage=open_storage(spec.storage)).trials
    assert [t.state for t in running] == [optuna.trial.TrialState.RUNNING]
    time.sleep(2.5)  # past the grace period (twice the heartbeat interval)
    with pytest.warns(UserWarning, match="trial 0 .* stopped sending heartbeats"):
        study = tune(spec, trials=1)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]


@pytest.mark.parametrize("args, message", [
    (["--method", "nosuch", "--trials", "1"], "unknown method 'nosuch'"),
    (["--method", "mimic", "--trials", "0"], "--trials and --jobs must be at least 1"),
    (["--method", "mimic", "--trials", "1", "--storage", "nodb://x"], "--storage nodb://x could not be opened"),
    (["--method", "mimic", "--trials", "1", "--storage", "postgresql+nodriver://u@h/db"], "could not be opened"),
    (["--method", "mimic"], "kdgan tune needs CONFIG, --method and --trials"),
])
def test_bad_tune_inputs_are_refused_with_a_clear_error(args, message, tmp_path, capsys):
    assert main(["tune", "digits_kdgan", *args, "--out", str(tmp_path / "t")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "t" / "pretrained").exists()  # refused before any training


def test_report_on_a_folder_without_a_study_is_refused(tmp_path, capsys):
    assert main(["tune", "--report", str(tmp_path)]) == 2
    assert "neither a database URL" in capsys.readouterr().err


def test_every_cli_option_reaches_the_study_settings(monkeypatch, tmp_path):
    import kdgan.experiments.tune as tune_module

    seen = {}

    def fake_tune(spec, trials, jobs):
        seen.update(spec=spec, trials=trials, jobs=jobs)
        return optuna.create_study(study_name=spec.study)

    monkeypatch.setattr(tune_module, "tune", fake_tune)
    assert main(["tune", "digits_kdgan", "--method", "kdgan", "--trials", "7", "--jobs", "3", "--out", str(tmp_path),
                 "--storage", "sqlite:///x.db", "--study", "s1", "--seed", "5", "--no-prune", "--heartbeat", "9",
                 "--set", "train.epochs=4", "--data-dir", "/data"]) == 0
    assert (seen["trials"], seen["jobs"]) == (7, 3)
    assert seen["spec"] == TuneSpec("digits_kdgan", "kdgan", "sqlite:///x.db", "s1", tmp_path,
                                    ("train.epochs=4", "data.dir=/data"), seed=5, prune=False, heartbeat=9)
    assert main(["tune", "digits_kdgan", "--method", "mimic", "--trials", "1", "--out", str(tmp_path)]) == 0
    assert seen["spec"].storage == storage_url(None, tmp_path) and seen["spec"].study == "mimic"
    assert seen["spec"].prune is True and seen["spec"].seed == 0 and seen["jobs"] == 1


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # ask() outside optimize(): fine here
def test_the_sampler_seed_decides_the_first_trials(tmp_path):
    def first_params(seed):
        spec = spec_for(tmp_path, seed=seed)
        study = open_study(spec, base_config(spec))
        return sample(study.ask(), search_space("mimic"))

    assert first_params(1) == first_params(1)
    assert first_params(1) != first_params(2)
