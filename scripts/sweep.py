"""Grid search of a method's options on the validation split, from shared pretrained players.

    python scripts/sweep.py --config mnist_kdgan --set data.dir=../shared/data \
        --grid options.alpha=0.1,0.5,0.9 --grid options.beta=0.1,1 --seeds 1 --out runs/sweep

Keys joined by ``+`` share one axis (``--grid student.optimizer.game_lr+teacher.optimizer.game_lr=1e-3,1e-4``).
The teacher and student are trained once per seed (supervised, selected on validation, as in
``kdgan reproduce``); each grid point then starts from them. Results are ranked by mean
validation accuracy; the test accuracy is printed beside it but must not be used to choose.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from dataclasses import replace
from pathlib import Path

from kdgan.config import load_config
from kdgan.data import load_splits
from kdgan.experiments.comparison import Comparison, start_from, summarize
from kdgan.training.runs import find_config


def grid_points(grid: list[str]) -> list[list[str]]:
    """Every combination of the ``KEY[+KEY...]=V1,V2,...`` axes, as lists of ``KEY=V`` overrides."""
    axes = [(keys.split("+"), values.split(","))
            for keys, _, values in (g.partition("=") for g in grid)]
    return [[f"{key}={value}" for (keys, _), value in zip(axes, point) for key in keys]
            for point in itertools.product(*(values for _, values in axes))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--grid", action="append", default=[], help="KEY[+KEY...]=V1,V2,... (repeatable)")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    out = Path(args.out)
    base = load_config(find_config(args.config), args.set)
    base = replace(base, train=replace(base.train, progress=False))
    baselines = Comparison(out)
    rows = json.loads((out / "sweep.json").read_text()) if (out / "sweep.json").is_file() else []
    for seed in range(args.seeds):
        seeded = replace(base, seed=seed)
        splits = load_splits(seeded.data, seed)
        teacher, student = baselines.baselines("sweep", seeded, splits)
        for settings in grid_points(args.grid):
            if any(r["settings"] == settings and r["seed"] == seed for r in rows):
                continue
            overrides = [*args.set, *settings, f"seed={seed}", "train.progress=false"]
            config = load_config(find_config(args.config), overrides)
            trainer = start_from(config, splits, teacher, student)
            summary = summarize(trainer.fit(), seed)
            rows.append({"settings": settings, "seed": seed, "val": summary["val"]["accuracy"],
                         "test": summary["test"]["accuracy"], "seconds": summary["seconds"],
                         "git_commit": baselines.commit})
            (out / "sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
            print(settings, seed, f"val {rows[-1]['val']:.4f} test {rows[-1]['test']:.4f}", flush=True)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(" ".join(row["settings"]), []).append(row)
    ranked = sorted(groups.items(), key=lambda kv: -statistics.fmean(r["val"] for r in kv[1]))
    print("| settings | val accuracy % | test accuracy % | seeds |\n|---|---|---|---|")
    for name, group in ranked:
        val = statistics.fmean(r["val"] for r in group) * 100
        test = statistics.fmean(r["test"] for r in group) * 100
        print(f"| {name} | {val:.2f} | {test:.2f} | {len(group)} |")


if __name__ == "__main__":
    main()
