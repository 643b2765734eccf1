"""The ``kdgan`` command line: methods, train, evaluate, demo, reproduce, export, predict, plot."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

from kdgan.errors import ConfigError, KDGANError, OutputError


def cmd_methods(args: argparse.Namespace) -> int:
    from kdgan.methods import METHODS

    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kdgan.config import load_config
    from kdgan.storage import output_error
    from kdgan.training.build import build_trainer, method_options
    from kdgan.training.distributed import barrier, setup
    from kdgan.training.runlock import check_not_in_use, check_output_dir, run_lock
    from kdgan.training.runs import find_config, prepare_run_dir

    overrides = list(args.set)
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    config = load_config(find_config(args.config), overrides)
    method_options(config)  # refuse bad options before a run directory is made
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out is empty; give the run's folder, or leave --out out for runs/METHOD-TIMESTAMP")
    out = Path(args.out) if args.out else Path("runs") / f"{config.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    check_output_dir(out)  # a file, a path under a file, an unwritable folder: refused before the build
    check_not_in_use(out)  # a second writer too (the lock itself is taken below, after the build)
    info = setup(config.device)
    trainer = build_trainer(config, out_dir=out, dist_info=info)  # data and networks are checked first
    # Rank 0 writes the run and holds its lock from before the first write until the run ends.
    with run_lock(out) if info.is_main else contextlib.nullcontext():
        if info.is_main:
            prepare_run_dir(out, config, args.resume)
        barrier(info)
        try:
            result = trainer.fit(resume=args.resume)
        except OSError as err:  # disk full, permissions changed, ... while training
            error = err if isinstance(err, OutputError) else output_error(Path(err.filename or out), err)
            resumable = OutputError(f"{error} (then the run continues from its last checkpoint with --resume)")
            resumable.errno, resumable.filename = error.errno, error.filename
            raise resumable from err
    if info.is_main:
        print(json.dumps(result.to_dict(), indent=2))
        print(f"run written to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kdgan.evaluation.evaluate import evaluate_run

    print(json.dumps(evaluate_run(Path(args.run_dir), args.data_dir), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kdgan.experiments.demo import DEMO_METHODS, markdown_table, run_demo

    check_at_least_one(args.seeds, "--seeds")
    methods = args.methods.split(",") if args.methods else DEMO_METHODS
    report = run_demo(seeds=args.seeds, methods=methods, config=args.config, overrides=args.set,
                      out=Path(args.out) if args.out else None, progress=args.progress)
    print(markdown_table(report))
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from kdgan.experiments.reproduce import TABLE1_CONFIGS, TABLE1_METHODS, reproduce_table1
    from kdgan.experiments.reproduce_tags import TABLE2_CONFIGS

    datasets = TABLE1_CONFIGS if args.table == "table1" else TABLE2_CONFIGS
    if args.dataset not in datasets:  # checked first: the name is also part of the default results folder
        raise ConfigError(f"--dataset for {args.table} must be one of {', '.join(datasets)}; got {args.dataset!r}")
    check_at_least_one(args.seeds, "--seeds")
    sizes = parse_sizes(args.sizes)
    methods = args.methods.split(",") if args.methods else TABLE1_METHODS
    out = Path(args.out or f"runs/{args.table}-{args.dataset}")
    if args.table == "table1":
        from kdgan.experiments.reproduce import table1_markdown

        report = reproduce_table1(args.dataset, sizes, args.seeds, out, methods, args.epochs, args.device,
                                  args.data_dir, args.set, args.progress, args.report_only)
        print(table1_markdown(report))
    else:
        from kdgan.experiments.reproduce_tags import reproduce_table2, table2_markdown

        report = reproduce_table2(args.dataset, args.seeds, out, args.methods.split(",") if args.methods else None,
                                  args.epochs, args.device, args.data_dir, args.set, args.progress, args.report_only)
        print(table2_markdown(report))
    print(f"results in {out}", file=sys.stderr)
    return 0


def check_at_least_one(value: int, option: str) -> None:
    """Refuse a count (of seeds) below one, which would run nothing and report an empty table."""
    if value < 1:
        raise ConfigError(f"{option} must be at least 1, got {value}")


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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="kdgan", description="Knowledge distillation with GANs (KDGAN) and baselines.")
    sub = top.add_subparsers(dest="command", required=True)

    sub.add_parser("methods", help="list the methods").set_defaults(func=cmd_methods)

    train = sub.add_parser("train", help="train one method from a config")
    train.add_argument("config", help="a YAML config file, or a built-in config name such as digits_kdgan")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. --set options.alpha=0.3 (repeatable)")
    train.add_argument("--out", help="run directory (default runs/METHOD-TIMESTAMP)")
    train.add_argument("--data-dir", help="folder with the dataset's files (else $KDGAN_DATA)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser("evaluate", help="re-evaluate a run's selected student on its test split")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data-dir", help="folder with the dataset's files, if it moved")
    evaluate.set_defaults(func=cmd_evaluate)

    demo = sub.add_parser("demo", help="every method on the embedded digits data; prints a table")
    demo.add_argument("--seeds", type=int, default=3)
    demo.add_argument("--out", help="folder for results.json and table.md")
    demo.add_argument("--methods", help="comma-separated subset of methods")
    demo.add_argument("--config", default="digits_kdgan", help="base config (networks, data, KDGAN options)")
    demo.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the base config")
    demo.add_argument("--progress", action="store_true", help="show per-run progress bars")
    demo.set_defaults(func=cmd_demo)

    rep = sub.add_parser("reproduce", help="reproduce the paper's tables (resumable)")
    rep.add_argument("table", choices=["table1", "table2"], help="table1: MNIST/CIFAR-10 compression; table2: tags")
    rep.add_argument("--dataset", required=True, help="table1: mnist or cifar10; table2: corel5k, yeast or emotions")
    rep.add_argument("--sizes", default="100,1000", help="table1: labelled-set sizes, comma-separated")
    rep.add_argument("--seeds", type=int, default=3)
    rep.add_argument("--methods", help="comma-separated subset of methods")
    rep.add_argument("--epochs", type=int, help="epochs of every method (default: the config's)")
    rep.add_argument("--device", help="cpu, cuda, cuda:N or auto")
    rep.add_argument("--data-dir", help="folder with the dataset's files (else $KDGAN_DATA)")
    rep.add_argument("--out", help="results folder (default runs/TABLE-DATASET); rerun to resume")
    rep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override the config")
    rep.add_argument("--progress", action="store_true", help="show per-run progress bars")
    rep.add_argument("--report-only", action="store_true",
                     help="train nothing; rewrite the tables and plots from the runs already in --out")
    rep.set_defaults(func=cmd_reproduce)

    export = sub.add_parser("export", help="export a run's student to ONNX or TorchScript")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=["onnx", "torchscript"], default="onnx")
    export.add_argument("--out", help="output file or folder (default: inside the run directory)")
    export.add_argument("--opset", type=int, default=17)
    export.add_argument("--no-verify", action="store_true", help="skip reloading and comparing the exported model")
    export.set_defaults(func=cmd_export)

    pred = sub.add_parser("predict", help="classes or top-k tags for IDX, image or .npy inputs")
    pred.add_argument("run_dir")
    pred.add_argument("inputs", nargs="+", help="IDX file, image file or folder, or .npy array")
    pred.add_argument("--top-k", type=int, default=1)
    pred.add_argument("--scale", type=float, help="divide raw values by this (e.g. 16 for raw sklearn digits)")
    pred.add_argument("--invert", action="store_true", help="invert images (dark ink on light paper)")
    pred.add_argument("--json", action="store_true", help="print JSON instead of a table")
    pred.set_defaults(func=cmd_predict)

    plot = sub.add_parser("plot", help="learning curves of one or several runs to PNG")
    plot.add_argument("run_dirs", nargs="+")
    plot.add_argument("--out", required=True, help="PNG file, or a folder to write METRIC.png in")
    plot.add_argument("--metric", default="val_accuracy")
    plot.add_argument("--x", choices=["epoch", "seconds"], default="epoch")
    plot.add_argument("--pretrain", action="store_true", help="include pretraining stages")
    plot.set_defaults(func=cmd_plot)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KDGANError as err:
        print(f"kdgan: error: {err}", file=sys.stderr)
        return 2
