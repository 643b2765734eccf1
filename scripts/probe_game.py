"""Short runs of a method from a finished comparison's pretrained teacher and student, printing
validation accuracy and D's accuracies per epoch: a quick look at what the game does to them.

    python scripts/probe_game.py --weights runs/table1-mnist/weights/100-seed0- \
        "method=nagan;options={}" "method=nagan;options={};student.optimizer.lr=0.0001"

Each positional argument is one run: ';'-separated --set overrides of the mnist_kdgan config.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kdgan.config import load_config
from kdgan.data import load_splits
from kdgan.experiments.comparison import start_from
from kdgan.storage import load_checkpoint
from kdgan.training.runs import find_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--weights", required=True, help="prefix of the comparison's teacher.pt and student.pt")
    parser.add_argument("--config", default="mnist_kdgan")
    parser.add_argument("--data-dir", default="../shared/data")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    base = [f"data.dir={args.data_dir}", "train.progress=false", f"train.epochs={args.epochs}",
            "train.eval_test_each_epoch=false"]
    splits = load_splits(load_config(find_config(args.config), base).data, 0)
    teacher, student = (load_checkpoint(Path(args.weights + f"{role}.pt")) for role in ("teacher", "student"))
    for spec in args.runs:
        config = load_config(find_config(args.config), base + [s for s in spec.split(";") if s])
        trainer = start_from(config, splits, teacher, student)
        started = time.perf_counter()
        history = [r for r in trainer.fit().history if r["stage"] == "train"]
        print(spec, "| val", [round(r["val_accuracy"], 3) for r in history],
              "| D true", [round(r["d_true_acc"], 2) for r in history],
              "| D fake", [round(r["d_fake_acc"], 2) for r in history], f"| {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
