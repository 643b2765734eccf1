"""The one experiment driver behind ``kdgan demo`` and ``kdgan reproduce``: a comparison of methods
described by data (:class:`Spec`: settings × seeds × methods, a config and overrides), run by
:func:`run_comparison`.

For each (setting, seed), the teacher and the student are first trained alone (supervised, the
epoch picked on validation; :func:`shared_pretraining`); every other method then starts from those
two networks and trains for the same number of epochs (:func:`run_method`), so each method's gain
over the supervised student is its own. Results are written atomically after every run, and a
rerun skips runs already recorded, so a killed comparison continues where it stopped. With
``jobs`` > 1 the pretraining of each (setting, seed), then the method runs, are spread over that
many processes (:mod:`kdgan.experiments.parallel`); every run seeds itself, so the numbers are
those of ``jobs=1``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kdgan.config import RunConfig, apply_overrides, from_dict, load_config
from kdgan.data import Splits, load_splits
from kdgan.errors import ConfigError
from kdgan.evaluation.knn import knn_scores
from kdgan.evaluation.ranking import ranking_metrics
from kdgan.experiments.overrides import MethodOverrides, split_overrides, tuned_overrides
from kdgan.experiments.parallel import run_all
from kdgan.methods import METHODS
from kdgan.models import count_parameters
from kdgan.storage import atomic_save, atomic_write_text, load_checkpoint
from kdgan.training.build import build_trainer, method_options
from kdgan.training.engine import Trainer
from kdgan.training.runs import RunResult, environment, find_config, git_commit

BASELINE_RUNS = ("teacher", "supervised")
# Per-epoch scores of players no stage selects (train.report_players) cost a third of a KDGAN
# epoch and change no result; a comparison turns them off unless its overrides turn them on.
COMPARISON_DEFAULTS = ("train.report_players=false",)
WEIGHTS_HINT = "delete it to train that baseline again"
KNN_NEIGHBOURS = (5, 10, 20, 50)

Results = dict[str, dict[str, list[dict[str, Any]]]]  # setting -> method -> per-seed summaries


def registered_methods(exclude: Sequence[str] = (), multilabel: bool = False) -> tuple[str, ...]:
    """Every registered method, in registry order, less ``exclude`` (and, for multi-label data,
    less the methods that need one class per example): a comparison's default, so a newly
    registered method joins every table without edits."""
    return tuple(name for name, cls in METHODS.items() if name not in exclude and (cls.multilabel or not multilabel))


@dataclass(frozen=True)
class Setting:
    """One group of runs: its name (the key in results.json, e.g. a labelled-set size), its config
    (a built-in name or a YAML path) and the overrides that make it (before the spec's own)."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Spec:
    """A comparison as data. ``methods``: the methods to run, or None for every registered one but
    ``exclude``; ``overrides`` are ``--set`` items for every run (``key=value``) or for one method
    (``METHOD:key=value``); ``knn`` adds Table 2's KNN tag-propagation row."""

    settings: tuple[Setting, ...]
    seeds: int
    methods: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    knn: bool = False

    def base_config(self, setting: Setting) -> RunConfig:
        """The setting's config with the overrides meant for every method."""
        common, _ = split_overrides(self.overrides)
        return load_config(find_config(setting.config), [*COMPARISON_DEFAULTS, *setting.overrides, *common],
                           per_method=False)

    def method_overrides(self) -> MethodOverrides:
        return split_overrides(self.overrides)[1]

    def methods_for(self, multilabel: bool) -> tuple[str, ...]:
        """The methods run on one setting's data: the named ones (refusing, on multi-label data, one
        that needs a class per example), else the registered ones that fit the data."""
        if self.methods is None:
            return registered_methods(self.exclude, multilabel)
        unfit = [m for m in self.methods if multilabel and m in METHODS and not METHODS[m].multilabel]
        if unfit:
            raise ConfigError(f"method {unfit[0]!r} needs one class per example and this data is multi-label; "
                              "drop it from --methods")
        return self.methods


def variant(base: RunConfig, method: str, seed: int, **changes: Any) -> RunConfig:
    """``base`` with another method, seed, options, and section fields replaced."""
    config = replace(base, method=method, seed=seed, options=changes.pop("options", {}))
    for section, values in changes.items():
        setattr(config, section, replace(getattr(config, section), **values))
    return config


def mean_std(values: Sequence[float]) -> str:
    """``mean ± std`` in percent (sample std); one value alone has no spread to show."""
    mean = statistics.fmean(values) * 100
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} ± {statistics.stdev(values) * 100:.2f}"


def commits_note(results: Results) -> str:
    """Which commits produced the recorded runs, e.g. 'Runs by commit: 1d4bf8b (16), 4c18025 (8).'"""
    counts: dict[str, int] = {}
    for runs in results.values():
        for rows in runs.values():
            for row in rows:
                commit = (row.get("git_commit") or "")[:7] or "not recorded"
                counts[commit] = counts.get(commit, 0) + 1
    return "Runs by commit: " + ", ".join(f"{c} ({n})" for c, n in counts.items()) + "." if counts else ""


def summarize(result: RunResult, seed: int) -> dict[str, Any]:
    """What a comparison keeps of a run: scores, timing, and the per-epoch validation and test
    curves."""
    curve = [
        {k: v for k, v in r.items() if k in ("epoch", "seconds") or k.startswith(("val_", "test_"))}
        for r in result.history if r["stage"] == "train"
    ]
    return {
        "seed": seed, "test": result.test, "val": result.val, "best_test": result.best_test,
        "selected_epoch": result.selected_epoch, "seconds": result.seconds, "curve": curve,
    }


@dataclass
class SharedStart:
    """The supervised teacher's and student's weights every method of one (setting, seed) starts
    from; ``summaries`` holds the runs trained now (a reloaded player has none), ``params`` the
    players' sizes."""

    teacher: dict[str, Any]
    student: dict[str, Any]
    summaries: dict[str, dict[str, Any]]
    params: dict[str, int]


def shared_pretraining(
    base: RunConfig, splits: Splits, weights: Path | None = None, prefix: str = "shared",
    reuse: Callable[[str], bool] = lambda name: True,
) -> SharedStart:
    """Train, or reload from ``weights/PREFIX-seedS-ROLE.pt`` when ``reuse(run name)`` allows, the
    supervised teacher (``teacher.pretrain_epochs`` epochs) and student (its pretraining plus
    ``train.epochs``) of ``base`` at ``base.seed``; with ``weights``, newly trained ones are saved."""
    seed, off = base.seed, {"pretrain_epochs": 0}
    teacher_cfg = variant(base, "supervised", seed, options={"player": "teacher"}, teacher=off,
                          train={"epochs": base.teacher.pretrain_epochs, "eval_test_each_epoch": False})
    student_cfg = variant(base, "supervised", seed, train={"epochs": base.student.pretrain_epochs + base.train.epochs},
                          student=off)
    start = SharedStart({}, {}, {}, {})
    for name, role, config in (("teacher", "teacher", teacher_cfg), ("supervised", "student", student_cfg)):
        path = None if weights is None else weights / f"{prefix}-seed{seed}-{role}.pt"
        trainer = build_trainer(config, splits=splits)
        module = trainer.method.players[role].module
        start.params[role] = count_parameters(module)
        if path is not None and path.is_file() and reuse(name):
            module.load_state_dict(load_checkpoint(path, map_location=splits.train.x.device, fix=WEIGHTS_HINT))
        else:
            start.summaries[name] = summarize(trainer.fit(), seed)
            if path is not None:
                atomic_save(module.state_dict(), path)
        setattr(start, role, module.state_dict())
    return start


def start_from(config: RunConfig, splits: Splits, teacher: dict, student: dict) -> Trainer:
    """A trainer for ``config`` whose student and teacher start from the given weights."""
    off = {"pretrain_epochs": 0}
    trainer = build_trainer(variant(config, config.method, config.seed, options=config.options,
                                    student=off, teacher=off), splits=splits)
    players = trainer.method.players
    players["student"].module.load_state_dict(student)
    if "teacher" in players:
        players["teacher"].module.load_state_dict(teacher)
    return trainer


def method_config(base: RunConfig, method: str, overrides: MethodOverrides) -> RunConfig:
    """The config of ``method``'s run: ``base`` with the base's options only for the base's own
    method (others use their defaults), then the base's ``per_method`` items for ``method``, then
    the overrides given for ``method`` alone."""
    config = replace(base, method=method, options=base.options if method == base.method else {})
    own = base.per_method.get(method)
    if own:
        config = from_dict(RunConfig, apply_overrides(config.to_dict(), list(own)))
    return overrides.apply(config, method)


def run_method(config: RunConfig, splits: Splits, teacher: dict, student: dict) -> dict[str, Any]:
    """One comparison run, from plain data: ``config``'s method trained from the shared players;
    returns its summary."""
    return summarize(start_from(config, splits, teacher, student).fit(), config.seed)


def knn_baseline(splits: Splits, seed: int) -> dict[str, Any]:
    """KNN tag propagation in the student's feature space; k picked by validation MAP."""
    def scores(k: int, data) -> dict[str, float]:
        predicted = knn_scores(data.x, splits.train.x, splits.train.y, k=min(k, len(splits.train)),
                               metric="cosine", weights="distance")
        return {name: float(v) for name, v in ranking_metrics(predicted, data.y, ks=(3, 5)).items()}

    val = {k: scores(k, splits.val) for k in KNN_NEIGHBOURS}
    best = max(KNN_NEIGHBOURS, key=lambda k: val[k]["map"])
    return {"seed": seed, "k": best, "val": val[best], "test": scores(best, splits.test), "best_test": {},
            "selected_epoch": -1, "seconds": 0.0, "curve": []}


class Comparison:
    """The runs of a comparison: ``results`` maps a setting name to ``{method: [per-seed
    summaries]}``. With ``out``, results.json and the two pretrained networks of each (setting,
    seed) are saved as they are made, and reused on a rerun."""

    def __init__(self, out: Path | None = None, overrides: MethodOverrides | None = None,
                 order: Sequence[str] = ()) -> None:
        self.out = out
        self.overrides = overrides or MethodOverrides({})
        self.order = tuple(dict.fromkeys(order))  # the methods' order in results.json, whatever order runs end in
        self.results: Results = {}
        self.params: dict[str, int] = {}
        self.environment: dict[str, Any] | None = None  # of the invocation that last trained here
        self.commit = git_commit()  # stamped on every run this process records
        if out is not None and (out / "results.json").is_file():
            saved = json.loads((out / "results.json").read_text())
            self.results, self.params = saved["results"], saved["params"]
            self.environment = saved.get("environment")

    def report_environment(self, device: str, report_only: bool) -> dict[str, Any]:
        """The environment a report names: this process's (taken before it trains), or, for a
        report-only rewrite, that of the invocation that trained the runs, when recorded."""
        if report_only and self.environment is not None:
            return self.environment
        return environment(device)

    def done(self, setting: str, method: str, seed: int) -> bool:
        return any(r["seed"] == seed for r in self.results.get(setting, {}).get(method, []))

    def record(self, setting: str, method: str, summary: dict[str, Any]) -> None:
        """Keep a run's summary, stamped with the commit that produced it (a table resumed over
        several sessions may mix code), and save results.json at once."""
        summary = {**summary, "git_commit": self.commit}
        runs = self.results.setdefault(setting, {})
        runs.setdefault(method, []).append(summary)
        runs[method].sort(key=lambda run: run["seed"])
        rank = {name: i for i, name in enumerate(self.order)}
        self.results[setting] = dict(sorted(runs.items(), key=lambda item: rank.get(item[0], len(rank))))
        if self.out is not None:
            write_json(self.out / "results.json",
                       {"results": self.results, "params": self.params, "environment": self.environment})

    def run(self, spec: Spec, bases: dict[str, RunConfig], jobs: int = 1) -> None:
        """Every run of ``spec`` not yet recorded, in ``jobs`` processes: first the shared teacher
        and student of each (setting, seed) (trained, or reloaded when both the weights and the
        run's record are there), then every method from them. Each run is recorded as it ends."""
        with weights_folder(self.out) as weights:
            tasks = [PretrainTask(name, replace(base, seed=seed).to_dict(), str(weights),
                                  tuple(n for n in BASELINE_RUNS if self.done(name, n, seed)),
                                  spec.knn and not self.done(name, "knn", seed))
                     for name, base in bases.items() for seed in range(spec.seeds)]
            starts = run_all(pretrain, tasks, jobs, self.pretrained)
            runs = [run for task, start in zip(tasks, starts, strict=True)
                    for run in self.method_tasks(task, spec.methods_for(start["multilabel"]))]
            run_all(train_method, runs, jobs, lambda task, summary: self.record(task.setting, task.method, summary))

    def method_tasks(self, pretraining: PretrainTask, methods: Sequence[str]) -> list[MethodTask]:
        """The runs of ``methods`` not yet recorded that start from ``pretraining``'s players."""
        base = from_dict(RunConfig, pretraining.config)
        return [MethodTask(pretraining.setting, method, method_config(base, method, self.overrides).to_dict(),
                           pretraining.weights)
                for method in methods
                if method not in BASELINE_RUNS and not self.done(pretraining.setting, method, base.seed)]

    def pretrained(self, task: PretrainTask, start: dict[str, Any]) -> None:
        """Record what one (setting, seed)'s pretraining task trained (a run recorded before whose
        weights were since lost keeps its record)."""
        self.params.update(start["params"])
        seed = task.config["seed"]
        for name, summary in (("knn", start["knn"]), *start["summaries"].items()):
            if summary is not None and not self.done(task.setting, name, seed):
                self.record(task.setting, name, summary)


@dataclass(frozen=True)
class PretrainTask:
    """One (setting, seed)'s shared pretraining as plain data for a worker process: the setting's
    config at that seed (``RunConfig.to_dict``), the weights folder, the baseline runs whose saved
    weights may be reused, and whether to run the KNN baseline too."""

    setting: str
    config: dict[str, Any]
    weights: str
    reuse: tuple[str, ...]
    knn: bool


@dataclass(frozen=True)
class MethodTask:
    """One method's run as plain data: its full config and the folder of the shared weights."""

    setting: str
    method: str
    config: dict[str, Any]
    weights: str


_splits_cache: dict[str, Splits] = {}


def splits_of(config: RunConfig) -> Splits:
    """``load_splits(config.data, config.seed)``, kept for the next run of the same data and seed
    (a worker often runs several methods of one seed in a row)."""
    key = json.dumps([config.to_dict()["data"], config.seed], sort_keys=True)
    if key not in _splits_cache:
        _splits_cache.clear()
        _splits_cache[key] = load_splits(config.data, config.seed)
    return _splits_cache[key]


def pretrain(task: PretrainTask) -> dict[str, Any]:
    """A worker's pretraining task: ``{"summaries", "params", "multilabel", "knn"}`` (the KNN
    baseline's summary, or None); the weights are saved in the task's folder."""
    config = from_dict(RunConfig, task.config)
    splits = splits_of(config)
    start = shared_pretraining(config, splits, Path(task.weights), task.setting, reuse=lambda name: name in task.reuse)
    return {"summaries": start.summaries, "params": start.params, "multilabel": splits.train.multilabel,
            "knn": knn_baseline(splits, config.seed) if task.knn else None}


def shared_weights(folder: Path, setting: str, seed: int, device: Any) -> tuple[dict, dict]:
    """The teacher's and student's weights :func:`shared_pretraining` saved for (setting, seed)."""
    return tuple(load_checkpoint(folder / f"{setting}-seed{seed}-{role}.pt", map_location=device, fix=WEIGHTS_HINT)
                 for role in ("teacher", "student"))  # type: ignore[return-value]


def train_method(task: MethodTask) -> dict[str, Any]:
    """A worker's method run: the task's config trained from the shared players; its summary."""
    config = from_dict(RunConfig, task.config)
    splits = splits_of(config)
    teacher, student = shared_weights(Path(task.weights), task.setting, config.seed, splits.train.x.device)
    return run_method(config, splits, teacher, student)


@contextmanager
def weights_folder(out: Path | None) -> Iterator[Path]:
    """Where the shared players are saved for the method runs: ``OUT/weights`` (kept, for
    resuming), or a temporary folder when the comparison keeps no files."""
    if out is not None:
        yield out / "weights"
        return
    with tempfile.TemporaryDirectory(prefix="kdgan-weights-") as folder:
        yield Path(folder)


def run_options(overrides: Sequence[str], epochs: int | None = None, device: str | None = None,
                data_dir: str | None = None, progress: bool = False) -> tuple[str, ...]:
    """The command line's ``--set`` items followed by its ``--epochs``, ``--device``, ``--data-dir``
    and ``--progress`` as overrides of every run."""
    extra = [f"train.epochs={epochs}"] if epochs is not None else []
    extra += [f"device={device}"] if device is not None else []
    extra += [f"data.dir={data_dir}"] if data_dir is not None else []
    return (*overrides, *extra, f"train.progress={str(progress).lower()}")


def write_json(path: Path, report: dict[str, Any]) -> None:
    """results.json, written atomically (a crash leaves the previous file whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(report, indent=1) + "\n")


def run_comparison(spec: Spec, out: Path | None = None, report_only: bool = False, device: str = "cpu",
                   jobs: int = 1, tuned: str | None = None) -> dict[str, Any]:
    """Run ``spec`` (resuming from ``out``'s results.json when there is one) in ``jobs`` processes
    and return ``{"results", "params", "configs": {setting: config}, "environment",
    "seconds_this_invocation"}``, plus ``"tuned"`` (the overrides taken from the studies in
    ``tuned``, an Optuna storage; the spec's own overrides win over them). With ``report_only``,
    train nothing and return what is recorded."""
    methods = spec.methods or registered_methods(spec.exclude)
    from_studies = tuned_overrides(tuned, [m for m in methods if m not in BASELINE_RUNS]) if tuned else []
    spec = replace(spec, overrides=(*from_studies, *spec.overrides))
    overrides = spec.method_overrides()
    bases = {setting.name: spec.base_config(setting) for setting in spec.settings}
    check_methods(methods, bases.values(), overrides)
    comparison = Comparison(out, overrides, ("knn", *BASELINE_RUNS, *methods))
    env = comparison.report_environment(device, report_only)
    started = time.perf_counter()
    if not report_only:
        comparison.run(spec, bases, jobs)
    report = {"results": comparison.results, "params": comparison.params,
              "configs": {name: base.to_dict() for name, base in bases.items()}, "environment": env,
              "seconds_this_invocation": round(time.perf_counter() - started, 1)}
    return {**report, "tuned": {"storage": tuned, "overrides": from_studies}} if tuned else report


def check_methods(methods: Sequence[str], bases: Any, overrides: MethodOverrides) -> None:
    """Refuse unknown methods, and each method's bad options or overrides, before anything trains."""
    unknown = [m for m in methods if m not in METHODS and m not in BASELINE_RUNS]
    if unknown:
        raise ConfigError(f"unknown method {unknown[0]!r} in --methods; known methods: {', '.join(METHODS)}")
    overrides.check(methods)
    for base in bases:
        for method in methods:
            if method not in BASELINE_RUNS:
                method_options(method_config(base, method, overrides))
