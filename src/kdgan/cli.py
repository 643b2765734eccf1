"""The ``kdgan`` command line: methods, train, evaluate, demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from kdgan.errors import KDGANError


def cmd_methods(args: argparse.Namespace) -> int:
    from kdgan.methods import METHODS

    for name, cls in METHODS.items():
        print(f"{name}: {cls.summary}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from kdgan.build import build_trainer, method_options
    from kdgan.config import load_config
    from kdgan.runs import find_config, prepare_run_dir

    overrides = list(args.set)
    if args.data_dir:
        overrides.append(f"data.dir={args.data_dir}")
    config = load_config(find_config(args.config), overrides)
    method_options(config)  # refuse bad options before a run directory is made
    out = Path(args.out) if args.out else Path("runs") / f"{config.method}-{time.strftime('%Y%m%d-%H%M%S')}"
    prepare_run_dir(out, config, args.resume)
    trainer = build_trainer(config, out_dir=out)
    result = trainer.fit(resume=args.resume)
    print(json.dumps(result.to_dict(), indent=2))
    print(f"run written to {out}", file=sys.stderr)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kdgan.evaluate import evaluate_run

    print(json.dumps(evaluate_run(Path(args.run_dir), args.data_dir), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from kdgan.demo import DEMO_METHODS, markdown_table, run_demo

    methods = args.methods.split(",") if args.methods else DEMO_METHODS
    report = run_demo(seeds=args.seeds, methods=methods, config=args.config, overrides=args.set,
                      out=Path(args.out) if args.out else None, progress=args.progress)
    print(markdown_table(report))
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
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except KDGANError as err:
        print(f"kdgan: error: {err}", file=sys.stderr)
        return 2
