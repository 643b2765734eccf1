"""CPU seconds of one game epoch of the MNIST Table 1 config, split into training and evaluation
(validation + test each epoch, as the table's best-test column needs), for KDGAN and DISTN at
n=100 and n=1,000 (docs/PERFORMANCE.md, "Table 1 on every core"). Three game epochs after one
epoch of each pretraining; report_players off, as in comparisons.

    KDGAN_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/epoch_split.py
"""

from __future__ import annotations

import time

from kdgan.config import load_config
from kdgan.training.build import build_trainer
from kdgan.training.runs import find_config

EPOCHS = 3


def epoch_split(n: int, batch_size: int, method: str) -> dict[str, float]:
    """Mean CPU seconds per game epoch spent in training and in evaluation."""
    overrides = [f"data.n={n}", f"data.batch_size={batch_size}", f"train.epochs={EPOCHS}", "train.progress=false",
                 "train.report_players=false", "student.pretrain_epochs=1", "teacher.pretrain_epochs=1",
                 "discriminator.pretrain_epochs=1", f"method={method}", *([] if method == "kdgan" else ["options={}"])]
    trainer = build_trainer(load_config(find_config("mnist_kdgan"), overrides))
    spent = {"train": 0.0, "evaluation": 0.0}
    train_epoch, evaluate_epoch = trainer._train_epoch, trainer._evaluate_epoch

    def timed(kind, fn, stage, *args):
        began = time.process_time()
        out = fn(stage, *args)
        if stage.name == "train":
            spent[kind] += time.process_time() - began
        return out

    trainer._train_epoch = lambda stage, epoch: timed("train", train_epoch, stage, epoch)
    trainer._evaluate_epoch = lambda stage: timed("evaluation", evaluate_epoch, stage)
    trainer.fit()
    return {kind: seconds / EPOCHS for kind, seconds in spent.items()}


if __name__ == "__main__":
    for n, batch_size in ((100, 10), (1000, 50)):
        for method in ("kdgan", "distn"):
            split = epoch_split(n, batch_size, method)
            share = split["evaluation"] / sum(split.values())
            print(f"n={n} {method}: train {split['train']:.2f} s, evaluation {split['evaluation']:.2f} s "
                  f"per game epoch (evaluation {share:.0%})")
