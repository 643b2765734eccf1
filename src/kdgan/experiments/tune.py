"""``kdgan tune``: a hyperparameter search of one method on Optuna, so every method of a comparison
can be given the same number of trials.

Each trial trains the method from the same shared pretrained teacher and student as the
comparison (trained once per study into ``OUT/pretrained`` and reused) and is scored on the
validation metric that selects the run's epoch, never on test. The search space is the one the
method declares next to its Options (:mod:`kdgan.methods.search`); the sampler is Optuna's TPE,
seeded; a median pruner stops trials whose per-epoch validation curve falls below the median of
earlier trials at the same epoch. Studies live in an Optuna database: by default a SQLite file in
``--out``, or any database URL Optuna accepts, which lets workers on several machines share one
study. Workers keep a heartbeat: the trial of a killed worker is marked failed by the next worker
that starts a trial (or by the end of ``kdgan tune``), and the study goes on.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.forkserver
import os
import socket
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from kdgan.config import RunConfig, apply_overrides, from_dict, load_config
from kdgan.data import Splits, load_splits
from kdgan.errors import ConfigError, DivergenceError, KDGANError
from kdgan.methods import get_method
from kdgan.methods.search import SearchSpace
from kdgan.training.engine import Trainer
from kdgan.training.runs import find_config, git_commit

STUDY_FILE = "study.db"  # the embedded storage, a SQLite database in --out
DEFAULT_HEARTBEAT = 30  # seconds between a running trial's heartbeats; stale after twice that
# Config keys that may differ between the workers of one study (machines have their own paths)
LOCAL_KEYS = ("data.dir", "device", "threads", "train.progress")
# What worker processes import once, before they fork: the slow imports of a worker's first trial
# (torch._dynamo by the first optimizer, sklearn.datasets by the digits reader, SQLAlchemy's ORM
# and alembic by the study's storage), measured at 1 to 6 s each on the 2-core development machine.
WORKER_PRELOAD = ["kdgan.experiments.tune", "kdgan.experiments.comparison", "torch._dynamo", "sklearn.datasets",
                  "sqlalchemy.orm", "alembic.context"]


@dataclass(frozen=True)
class TuneSpec:
    """What every worker of a study needs; picklable, since it is sent to worker processes.
    ``config`` is a YAML file or a built-in config name, ``overrides`` its ``--set`` pairs,
    ``storage`` an Optuna database URL, ``seed`` the sampler's."""

    config: str
    method: str
    storage: str
    study: str
    out: Path
    overrides: tuple[str, ...] = ()
    seed: int = 0
    prune: bool = True
    heartbeat: int = DEFAULT_HEARTBEAT


def storage_url(storage: str | None, out: Path | None = None) -> str:
    """``--storage`` as an Optuna URL: by default ``OUT/study.db``; a folder means the
    ``study.db`` in it; anything else is taken as a database URL."""
    if storage is None:
        if out is None:
            raise ConfigError("give --storage (a database URL or a folder with study.db) or --out")
        return f"sqlite:///{(out / STUDY_FILE).resolve()}"
    if "://" not in storage:
        path = Path(storage)
        if not (path / STUDY_FILE).is_file():
            raise ConfigError(f"{storage} is neither a database URL (e.g. postgresql://user@host/db) nor a "
                              f"folder holding a {STUDY_FILE} written by kdgan tune")
        return f"sqlite:///{(path / STUDY_FILE).resolve()}"
    return storage


def open_storage(url: str, heartbeat: int | None = None) -> optuna.storages.RDBStorage:
    """The study database at ``url`` (created if new), refused with a clear error when the URL is
    malformed, its driver is missing or the server cannot be reached."""
    engine: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        with warnings.catch_warnings():  # Optuna marks heartbeats experimental; they are what we rely on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=heartbeat,
                heartbeat_stale_trial_callback=warn_failed_trial if heartbeat else None,
            )
    except ModuleNotFoundError as err:
        raise ConfigError(f"--storage {url}: its database driver is not installed ({err.name}); install it "
                          "(for PostgreSQL: pip install psycopg2-binary)") from None
    except Exception as err:  # SQLAlchemy's URL and connection errors have no common base with ours
        reason = " ".join(str(err).split())[:300]
        raise ConfigError(f"--storage {url} could not be opened ({type(err).__name__}: {reason}); give a "
                          "database URL Optuna accepts, e.g. sqlite:///study.db or "
                          "postgresql://user:password@host/database") from None


def warn_failed_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Called by Optuna for a trial whose worker stopped sending heartbeats (it is marked FAIL)."""
    worker = trial.user_attrs.get("worker", "unknown")
    warnings.warn(f"study {study.study_name}: trial {trial.number} (worker {worker}) stopped sending "
                  "heartbeats and was marked failed; the study continues", stacklevel=1)


def search_space(method: str) -> SearchSpace:
    """The search space ``method`` declares next to its Options."""
    cls = get_method(method)
    space = getattr(cls, "search_space", None)
    if not space:
        raise ConfigError(f"method {method!r} declares no search space; add a search_space next to its Options in "
                          f"{cls.__module__} (see kdgan.methods.search) to tune it")
    return space


def sample(trial: optuna.Trial, space: SearchSpace) -> dict[str, float | int]:
    """One point of ``space``, drawn by the trial's sampler."""
    params: dict[str, float | int] = {}
    for key, span in space.items():
        if span.integer:
            params[key] = trial.suggest_int(key, int(span.low), int(span.high), log=span.log)
        else:
            params[key] = trial.suggest_float(key, span.low, span.high, log=span.log)
    return params


def as_override(key: str, value: float | int) -> str:
    """A parameter as a ``--set`` pair whose value YAML reads back as the same number (YAML 1.1
    reads ``1e-05`` as a string, ``1.0e-05`` as a float)."""
    text = repr(value)
    if isinstance(value, float) and "e" in text and "." not in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}.0e{exponent}"
    return f"{key}={text}"


def base_config(spec: TuneSpec) -> RunConfig:
    """The config every trial starts from: the file with its overrides, switched to ``spec.method``
    (whose options start at their defaults unless the file is for that method)."""
    overrides = [*spec.overrides, f"method={spec.method}", "train.progress=false"]
    return load_config(find_config(spec.config), overrides)


def trial_config(base: RunConfig, params: dict[str, float | int]) -> RunConfig:
    """``base`` with a trial's parameters applied (checked like any config)."""
    pairs = [as_override(key, value) for key, value in params.items()]
    return from_dict(RunConfig, apply_overrides(base.to_dict(), pairs))


def shared_start(base: RunConfig, config: RunConfig, splits: Splits, weights: Path) -> Trainer:
    """The one coupling to the comparison driver: a trainer for ``config`` whose student and
    teacher start from the supervised players the comparison pretrains under ``base`` (trained
    into the folder ``weights`` by the first call, reloaded by later ones)."""
    from kdgan.experiments.comparison import shared_pretraining, start_from

    start = shared_pretraining(base, splits, weights, prefix="tune")
    return start_from(config, splits, start.teacher, start.student)


class EpochReporter(list):
    """A trainer's history that also reports each game epoch's validation value to the trial, and
    stops a trial the pruner prunes (by raising :class:`optuna.TrialPruned` out of ``fit``)."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        super().__init__()
        self.trial, self.metric = trial, metric

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        if record.get("stage") != "train" or record["epoch"] < 0:  # the start (train.select_start) trained nothing
            return
        self.trial.report(record[f"val_{self.metric}"], record["epoch"])
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"validation {self.metric} {record[f'val_{self.metric}']:.4f} at epoch "
                                     f"{record['epoch']} is below the median of earlier trials")


def objective(spec: TuneSpec, base: RunConfig, splits: Splits) -> Callable[[optuna.Trial], float]:
    """A trial: sample the method's space, train from the shared players, return the selected
    epoch's validation metric. The commit, config, result and worker are kept as user attrs."""
    space, commit, worker = search_space(spec.method), git_commit(), f"{socket.gethostname()}:{os.getpid()}"

    def run(trial: optuna.Trial) -> float:
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("commit", commit)
        config = trial_config(base, sample(trial, space))
        trial.set_user_attr("config", config.to_dict())
        trainer = shared_start(base, config, splits, spec.out / "pretrained")
        trainer.history = EpochReporter(trial, trainer.select_metric)
        result = trainer.fit()
        value = result.val[trainer.select_metric]
        trial.set_user_attr("result", {"metric": trainer.select_metric, "val": result.val,
                                       "selected_epoch": result.selected_epoch, "seconds": result.seconds})
        return value

    return run


def open_study(spec: TuneSpec, base: RunConfig, worker: int = 0) -> optuna.Study:
    """Create the study, or load it to add trials; one made for another method or config is refused.

    The TPE sampler is seeded with ``spec.seed``, the worker's index and the number of trials
    already in the study: reproducible, yet a rerun or a second worker does not replay the random
    start of the first."""
    storage = open_storage(spec.storage, spec.heartbeat)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=5) if spec.prune else optuna.pruners.NopPruner()
    study = optuna.create_study(storage=storage, study_name=spec.study, direction="maximize", pruner=pruner,
                                load_if_exists=True)
    recorded = study.user_attrs.get("method")
    if recorded is not None and recorded != spec.method:
        raise ConfigError(f"study {spec.study!r} in {spec.storage} was made for {recorded}, not {spec.method}; pass "
                          f"another --study, or --method {recorded}")
    differences = differing_keys(study.user_attrs.get("config", {}), comparable(base))
    if differences:
        raise ConfigError(f"study {spec.study!r} in {spec.storage} was made with another config (it differs in "
                          f"{', '.join(differences)}); pass another --study, or the study's own config")
    study.set_user_attr("method", spec.method)
    study.set_user_attr("config", comparable(base))
    seed = np.random.SeedSequence([spec.seed, worker, len(study.trials)]).generate_state(1)[0]
    study.sampler = optuna.samplers.TPESampler(seed=int(seed))
    return study


def comparable(config: RunConfig) -> dict[str, Any]:
    """A config as recorded on a study (JSON values: lists, not tuples), without the keys that may
    differ between workers."""
    raw = json.loads(json.dumps(config.to_dict()))
    for key in LOCAL_KEYS:
        *parents, leaf = key.split(".")
        node = raw
        for part in parents:
            node = node[part]
        node.pop(leaf, None)
    return raw


def differing_keys(recorded: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ; a key one side lacks (added by another kdgan version,
    at its default) is not a difference."""
    keys = []
    for key in recorded.keys() & current.keys():
        old, new = recorded[key], current[key]
        if isinstance(old, dict) and isinstance(new, dict):
            keys += differing_keys(old, new, f"{prefix}{key}.")
        elif old != new:
            keys.append(prefix + key)
    return sorted(keys)


def run_worker(spec: TuneSpec, trials: int, worker: int = 0) -> None:
    """One worker: ``trials`` trials of the shared study (torch threads: the config's ``threads``)."""
    base = base_config(spec)
    splits = load_splits(base.data, base.seed)
    study = open_study(spec, base, worker)
    study.optimize(objective(spec, base, splits), n_trials=trials, catch=(DivergenceError,))


def tune(spec: TuneSpec, trials: int, jobs: int = 1) -> optuna.Study:
    """Add ``trials`` trials to the study, in ``jobs`` worker processes; returns the study."""
    if trials < 1 or jobs < 1:
        raise ConfigError(f"--trials and --jobs must be at least 1, got {trials} and {jobs}")
    search_space(spec.method)  # unknown method, or no space: refused before anything is trained
    base = base_config(spec)
    open_study(spec, base)  # a bad storage URL or a study of another method: refused before pretraining
    jobs = min(jobs, trials)
    context = worker_context() if jobs > 1 else None  # its imports overlap the pretraining
    shared_start(base, base, load_splits(base.data, base.seed), spec.out / "pretrained")  # pretrain once
    if context is None:
        run_worker(spec, trials)
    else:
        run_workers(context, spec, [trials // jobs + (worker < trials % jobs) for worker in range(jobs)])
    study = optuna.load_study(study_name=spec.study, storage=open_storage(spec.storage, spec.heartbeat))
    fail_stale_trials(study)
    return study


def worker_context() -> multiprocessing.context.BaseContext:
    """Worker processes fork from a server that imported kdgan and torch once and never trained:
    they start fast and hold no database connection or CUDA context of this process (so they work
    on GPUs and with any database). The server is started now, to import while we pretrain."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    multiprocessing.forkserver.ensure_running()
    return context


def run_workers(context: multiprocessing.context.BaseContext, spec: TuneSpec, shares: list[int]) -> None:
    """One worker process per share of the trials; waits for all, and names those that failed."""
    processes = [context.Process(target=run_worker, args=(spec, share, worker)) for worker, share in enumerate(shares)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [f"worker {i} (exit code {p.exitcode})" for i, p in enumerate(processes) if p.exitcode]
    if failed:
        raise KDGANError(f"{', '.join(failed)} stopped (its error is printed above); the trials finished are in the "
                         "study: rerun to add more")


def fail_stale_trials(study: optuna.Study) -> None:
    """Mark failed the running trials whose worker stopped sending heartbeats."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def best_overrides(storage: str, study: str) -> list[str]:
    """A study's best parameters as ``--set`` pairs (``options.alpha=0.31``), e.g. for a
    comparison at the tuned settings."""
    try:
        best = optuna.load_study(study_name=study, storage=open_storage(storage_url(storage))).best_trial
    except KeyError:
        raise ConfigError(f"no study named {study!r} in {storage}") from None
    except ValueError:
        raise ConfigError(f"study {study!r} in {storage} has no finished trial yet") from None
    return [as_override(key, value) for key, value in best.params.items()]

