"""The ``kdgan`` command line: methods, train, evaluate, demo, reproduce, export, predict, plot, tune."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TypeAlias

from kdgan.errors import ConfigError, KDGANError


def cmd_methods(args: argparse.Namespace) -> int:
    from kdgan.methods import METHODS

    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kdgan.config import load_config
    from kdgan.training.build import method_options, train_run
    from kdgan.training.runs import find_config

    overrides = [*args.set, *([f"data.dir={args.data_dir}"] if args.data_dir else [])]
    config = load_config(find_config(args.config), overrides)
    method_options(config)  # refuse bad options before a run directory is made
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out is empty; give the run's folder, or leave --out out for runs/METHOD-TIMESTAMP")
    out = Path(args.out) if args.out else Path("runs") / f"{config.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = train_run(config, out, args.resume)
    if result is not None:  # the process that wrote the run
        print(json.dumps(result.to_dict(), indent=2))
        print(f"run written to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kdgan.evaluation.evaluate import evaluate_run

    print(json.dumps(evaluate_run(Path(args.run_dir), args.data_dir), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kdgan.experiments.demo import markdown_table, run_demo

    check_at_least_one(args.seeds, "--seeds")
    report = run_demo(seeds=args.seeds, methods=parse_methods(args.methods), config=args.config, overrides=args.set,
                      out=Path(args.out) if args.out else None, progress=args.progress, jobs=args.jobs)
    print(markdown_table(report))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from kdgan.experiments.reproduce import TABLE1_CONFIGS
    from kdgan.experiments.reproduce_tags import TABLE2_CONFIGS

    datasets = TABLE1_CONFIGS if args.table == "table1" else TABLE2_CONFIGS
    if args.dataset not in datasets:  # checked first: the name is also part of the default results folder
        raise ConfigError(f"--dataset for {args.table} must be one of {', '.join(datasets)}; got {args.dataset!r}")
    check_at_least_one(args.seeds, "--seeds")
    sizes = parse_sizes(args.sizes)
    methods = parse_methods(args.methods)
    out = Path(args.out or f"runs/{args.table}-{args.dataset}")
    if args.merge:
        from kdgan.experiments.reproduce import merge_results

        runs = merge_results([Path(folder) for folder in args.merge], out)
        print(f"{runs} runs merged into {out / 'results.json'}", file=sys.stderr)
        args.report_only = True
    if args.table == "table1":
        from kdgan.experiments.reproduce import reproduce_table1, table1_markdown

        report = reproduce_table1(args.dataset, sizes, args.seeds, out, methods, args.epochs, args.device,
                                  args.data_dir, args.set, args.progress, args.report_only, args.jobs, args.tuned,
                                  args.config)
        print(table1_markdown(report))
    else:
        from kdgan.experiments.reproduce_tags import reproduce_table2, table2_markdown

        report = reproduce_table2(args.dataset, args.seeds, out, methods, args.epochs, args.device, args.data_dir,
                                  args.set, args.progress, args.report_only, args.jobs, args.tuned, args.config)
        print(table2_markdown(report))
    print(f"results in {out}", file=sys.stderr)
    return 0


def check_at_least_one(value: int, option: str) -> None:
    """Refuse a count (of seeds) below one, which would run nothing and report an empty table."""
    if value < 1:
        raise ConfigError(f"{option} must be at least 1, got {value}")


def parse_methods(text: str | None) -> list[str] | None:
    """``--methods``: method names separated by commas; None (every registered method) when not given."""
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def parse_sizes(text: str) -> list[int]:
    """``--sizes``: labelled-set sizes, positive integers separated by commas."""
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--sizes must be positive integers separated by commas (e.g. 100,1000), got {text!r}")
    return sizes


def cmd_export(args: argparse.Namespace) -> int:
    from kdgan.deploy.export import export_student

    # args.out stays a str: its trailing slash marks a folder
    print(export_student(Path(args.run_dir), args.format, args.out, args.opset, verify=not args.no_verify))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from kdgan.deploy.predict import format_json, format_table, predict_student
    from kdgan.deploy.student_file import open_student

    student = open_student(Path(args.run_dir))
    rows = predict_student(student, [Path(p) for p in args.inputs], top_k=args.top_k, scale=args.scale,
                           invert=args.invert)
    print(format_json(rows, student) if args.json else format_table(rows))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from kdgan.evaluation.plot import plot_runs

    # args.out stays a str: its trailing slash marks a folder
    print(plot_runs(args.run_dirs, args.out, metric=args.metric, x=args.x, include_pretrain=args.pretrain))
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    if args.report:
        from kdgan.experiments.tune_report import write_report

        out = Path(args.out) if args.out else (Path(args.report) / "report" if "://" not in args.report
                                               else Path("tune-report"))
        write_report(args.report, out)
        print(f"report written to {out / 'report.md'}", file=sys.stderr)
        return 0
    from kdgan.experiments.tune import TuneSpec, storage_url, tune

    if args.config is None or args.method is None or args.trials is None:
        raise ConfigError("kdgan tune needs CONFIG, --method and --trials (or --report DIR|URL to report on studies)")
    out = Path(args.out or f"runs/tune-{Path(args.config).stem}")
    overrides = list(args.set) + ([f"data.dir={args.data_dir}"] if args.data_dir else [])
    spec = TuneSpec(config=args.config, method=args.method, storage=storage_url(args.storage, out),
                    study=args.study or args.method, out=out, overrides=tuple(overrides), seed=args.seed,
                    prune=not args.no_prune, heartbeat=args.heartbeat)
    study = tune(spec, args.trials, args.jobs)
    states = [t.state.name for t in study.trials]
    summary = {s: states.count(s) for s in sorted(set(states))}
    print(json.dumps({"study": study.study_name, "storage": spec.storage, "trials": summary}, indent=2))
    if "COMPLETE" in summary:
        print(json.dumps({"best_value": study.best_value, "best_params": study.best_params}, indent=2))
    return 0


JOBS_HELP = ("independent runs in this many processes of one torch thread each (same numbers as --jobs 1); "
             "at most the number of cores")
DATA_DIR_HELP = "folder with the dataset's files (else $KDGAN_DATA)"
PER_METHOD_SET = "; METHOD:KEY=VALUE for one method only"
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _add_set(command: argparse.ArgumentParser, help_text: str) -> None:
    """The repeatable --set KEY=VALUE config override shared by train, demo, reproduce and tune."""
    command.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=help_text)


def _add_data_dir(command: argparse.ArgumentParser, help_text: str = DATA_DIR_HELP) -> None:
    """--data-dir, the folder the dataset's files are read from."""
    command.add_argument("--data-dir", help=help_text)


def _add_methods(sub: Subparsers) -> None:
    sub.add_parser("methods", help="list the methods").set_defaults(func=cmd_methods)


def _add_train(sub: Subparsers) -> None:
    train = sub.add_parser("train", help="train one method from a config")
    train.add_argument("config", help="a YAML config file, or a built-in config name such as digits_kdgan")
    _add_set(train, "override a config value, e.g. --set options.alpha=0.3 (repeatable)")
    train.add_argument("--out", help="run directory (default runs/METHOD-TIMESTAMP)")
    _add_data_dir(train)
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.set_defaults(func=cmd_train)


def _add_evaluate(sub: Subparsers) -> None:
    evaluate = sub.add_parser("evaluate", help="re-evaluate a run's selected student on its test split")
    evaluate.add_argument("run_dir")
    _add_data_dir(evaluate, "folder with the dataset's files, if it moved")
    evaluate.set_defaults(func=cmd_evaluate)


def _add_demo(sub: Subparsers) -> None:
    demo = sub.add_parser("demo", help="every method on the embedded digits data; prints a table")
    demo.add_argument("--seeds", type=int, default=3)
    demo.add_argument("--out", help="folder for results.json and table.md")
    demo.add_argument("--methods", help="comma-separated methods (default: every registered method; the "
                      "supervised student is always the baseline row)")
    demo.add_argument("--config", default="digits_kdgan", help="base config (networks, data, KDGAN options)")
    _add_set(demo, "override the base config" + PER_METHOD_SET)
    demo.add_argument("--progress", action="store_true", help="show per-run progress bars")
    demo.add_argument("--jobs", type=int, default=1, help=JOBS_HELP)
    demo.set_defaults(func=cmd_demo)


def _add_reproduce(sub: Subparsers) -> None:
    rep = sub.add_parser("reproduce", help="reproduce the paper's tables (resumable)")
    rep.add_argument("table", choices=["table1", "table2"], help="table1: MNIST/CIFAR-10 compression; table2: tags")
    rep.add_argument("--dataset", required=True, help="table1: mnist or cifar10; table2: corel5k, yeast or emotions")
    rep.add_argument("--sizes", default="100,1000", help="table1: labelled-set sizes, comma-separated")
    rep.add_argument("--seeds", type=int, default=3)
    rep.add_argument("--methods", help="comma-separated methods (default: every registered method)")
    rep.add_argument("--epochs", type=int, help="epochs of every method (default: the config's)")
    rep.add_argument("--config", help="base config, a built-in name or a YAML file of the same dataset (default: the "
                     "dataset's shipped config, e.g. mnist_kdgan); e.g. mnist_kdgan_authors for the authors' recipe")
    rep.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    _add_data_dir(rep)
    rep.add_argument("--out", help="results folder (default runs/TABLE-DATASET); rerun to resume")
    _add_set(rep, "override the config" + PER_METHOD_SET)
    rep.add_argument("--progress", action="store_true", help="show per-run progress bars")
    rep.add_argument("--report-only", action="store_true",
                     help="train nothing; rewrite the tables and plots from the runs already in --out")
    rep.add_argument("--jobs", type=int, default=1, help=JOBS_HELP)
    rep.add_argument("--merge", nargs="+", metavar="DIR", help="gather the runs of these --out folders (one table, "
                     "disjoint --methods) into --out, then report as --report-only does")
    rep.add_argument("--tuned", metavar="DIR|URL", help="run each method at the best trial of its study (named "
                     "after the method) in this kdgan tune storage; --set items still win")
    rep.set_defaults(func=cmd_reproduce)


def _add_export(sub: Subparsers) -> None:
    export = sub.add_parser("export", help="export a run's student to ONNX or TorchScript")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    export.add_argument("--out", help="output file or folder (default: inside the run directory)")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument("--no-verify", action="store_true", help="skip reloading and comparing the exported model")
    export.set_defaults(func=cmd_export)


def _add_predict(sub: Subparsers) -> None:
    pred = sub.add_parser("predict", help="classes or top-k tags for IDX, image or .npy inputs")
    pred.add_argument("run_dir")
    pred.add_argument("inputs", nargs="+", help="IDX file, image file or folder, or .npy array")
    pred.add_argument("--top-k", type=int, default=1)
    pred.add_argument("--scale", type=float, help="divide raw values by this (e.g. 16 for raw sklearn digits)")
    pred.add_argument("--invert", action="store_true", help="invert images (dark ink on light paper)")
    pred.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pred.set_defaults(func=cmd_predict)


def _add_plot(sub: Subparsers) -> None:
    plot = sub.add_parser("plot", help="learning curves of one or several runs to PNG")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("--out", required=True, help="PNG file, or a folder to write METRIC.png in")
    plot.add_argument("--metric", default="val_accuracy")
    plot.add_argument("--x", choices=["epoch", "seconds"], default="epoch")
    plot.add_argument("--pretrain", action="store_true", help="include pretraining stages")
    plot.set_defaults(func=cmd_plot)


def _add_tune(sub: Subparsers) -> None:
    tn = sub.add_parser("tune", help="search a method's hyperparameters on validation (Optuna); --report to summarise")
    tn.add_argument("config", nargs="?", help="a YAML config file or a built-in config name")
    tn.add_argument("--method", help="the method to tune (its search space is declared next to its Options)")
    tn.add_argument("--trials", type=int, help="trials to add to the study (shared among --jobs workers)")
    tn.add_argument("--storage", help="Optuna database URL, e.g. postgresql://user@host/db (default OUT/study.db)")
    tn.add_argument("--study", help="study name (default: the method); a rerun adds trials to it")
    tn.add_argument("--jobs", type=int, default=1, help="worker processes (each with the config's threads)")
    tn.add_argument("--out", help="folder for study.db and the shared pretrained players (default "
                    "runs/tune-CONFIG); with --report, the report's folder")
    tn.add_argument("--seed", type=int, default=0, help="the sampler's seed (training uses the config's seed)")
    tn.add_argument("--no-prune", action="store_true", help="train every trial to the end (no median pruner)")
    tn.add_argument("--heartbeat", type=int, default=30, help="seconds between a running trial's heartbeats; "
                    "a trial silent for twice that is marked failed")
    _add_set(tn, "override the config")
    _add_data_dir(tn)
    tn.add_argument("--report", metavar="DIR|URL", help="write the report of every study in this storage")
    tn.set_defaults(func=cmd_tune)


def parser() -> argparse.ArgumentParser:
    """The kdgan command line: one subcommand per _add_* function, in --help order."""
    top = argparse.ArgumentParser(prog="kdgan", description="Knowledge distillation with GANs (KDGAN) and baselines.")
    sub = top.add_subparsers(dest="command", required=True)
    for add_command in (_add_methods, _add_train, _add_evaluate, _add_demo, _add_reproduce, _add_export,
                        _add_predict, _add_plot, _add_tune):
        add_command(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KDGANError as err:
        print(f"kdgan: error: {err}", file=sys.stderr)
        return 2
