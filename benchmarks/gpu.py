"""The GPU benchmark: what a GPU buys kdgan's Table 1 runs, in one command of under five minutes.

For the MNIST and CIFAR-10 configs' players (student, teacher, discriminator) it measures, each
with ``train.precision`` fp32 and bf16 and with ``train.compile`` off and on:

- ``player_steps``: samples/s of each player's plain supervised training step (one epoch of
  ``--batch-size`` batches through the Trainer, the first epoch, which compiles, left out);
- ``rounds``: one KDGAN round (D, then T, then C, one pass each) against the sum of its players'
  plain epochs on the same batches;
- ``table1_cell``: the wall time of one Table 1 cell, KDGAN on the MNIST config at n=100 (batch 10)
  with its pretraining of the three players and its 30 game epochs.

Inputs are random tensors of MNIST's and CIFAR-10's shapes (no dataset is read: the costs do not
depend on the pixels). Everything goes through ``build_trainer`` and ``Trainer.fit`` as a user's run
does; epoch times come from the run's history. A measurement that would start after ``--budget``
seconds is recorded as skipped. ``--quick`` runs a tiny version on the CPU in seconds (compile
variants are skipped there: compiling takes minutes on a CPU), so the script is known to work
before GPU time is spent on it.

    python benchmarks/gpu.py --device cuda --out benchmarks/results/gpu.json
    python benchmarks/gpu.py --quick --out /tmp/gpu_quick.json
"""

from __future__ import annotations

import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from _common import finish, machine, parser, setup, table

from kdgan.config import load_config
from kdgan.data.core import Splits, TensorData
from kdgan.training.build import build_trainer
from kdgan.training.runs import find_config

CONFIGS = {"mnist": ("mnist_kdgan", (1, 28, 28)), "cifar10": ("cifar10_kdgan", (3, 32, 32))}
VARIANTS = [(precision, compiled) for compiled in (False, True) for precision in ("fp32", "bf16")]
ROLES = ("student", "teacher", "discriminator")


def variant_name(precision: str, compiled: bool) -> str:
    return precision + ("+compile" if compiled else "")


def synthetic_splits(shape: tuple[int, ...], n: int, val: int, device: torch.device, test: int | None = None) -> Splits:
    """Random inputs of a dataset's shape with balanced labels of 10 classes (``test``: as
    many test examples as validation ones unless given)."""
    generator = torch.Generator().manual_seed(0)

    def part(size: int) -> TensorData:
        return TensorData(torch.randn(size, *shape, generator=generator), torch.arange(size) % 10, 10)

    return Splits(part(n), part(val), part(val if test is None else test)).to(device)


def player_config(dataset: str, method: str, role: str | None, overrides: list[str]) -> Any:
    """The dataset's config for one measurement: ``supervised`` on ``role``'s network (D's network
    trained as a classifier for its plain step), or the method; no pretraining."""
    name = CONFIGS[dataset][0]
    pairs = [f"method={method}", "train.progress=false", "train.checkpoint_every=0", "train.report_players=false",
             "train.eval_test_each_epoch=false", "student.pretrain_epochs=0", "teacher.pretrain_epochs=0",
             "discriminator.pretrain_epochs=0", *overrides]
    config = load_config(find_config(name), pairs + ([f"options.player={trained_as(role)}"] if role else []))
    if role is not None:  # the network trained is role's, in the slot of the student or the teacher
        slot = trained_as(role)
        model = dict(config.player(role).model)
        setattr(config, slot, replace(config.player(slot), model=model))
    return config


def trained_as(role: str) -> str:
    """Which network slot ``supervised`` trains for ``role``: D's network is trained as a teacher."""
    return "student" if role == "student" else "teacher"


def epoch_seconds(config: Any, splits: Splits) -> tuple[float, float]:
    """Median seconds of an epoch after the first, and the first epoch's (compiling, warming up)."""
    trainer = build_trainer(config, splits=splits)
    history = [r for r in trainer.fit().history if r["stage"] == "train"]
    ends = [r["seconds"] for r in history]
    durations = [b - a for a, b in zip([0.0, *ends], ends)]
    return statistics.median(durations[1:]), durations[0]


class Budget:
    """Skips measurements that would start after ``seconds`` of the benchmark have passed."""

    def __init__(self, seconds: float) -> None:
        self.began, self.seconds, self.skipped = time.perf_counter(), seconds, []

    def allows(self, what: str, variant: str) -> bool:
        if time.perf_counter() - self.began <= self.seconds:
            return True
        self.skipped.append({"what": what, "variant": variant, "reason": f"over the {self.seconds:.0f} s budget"})
        return False


def run(args: Any, device: torch.device) -> dict[str, Any]:
    quick = args.quick
    batch, batches, epochs = (4, 2, 2) if quick else (args.batch_size, 20, 4)
    n, val = batch * batches, batch
    common = [f"device={device}", f"data.batch_size={batch}", f"data.eval_batch_size={max(val, 10)}",
              f"train.epochs={epochs}"]
    budget = Budget(args.budget)
    results: dict[str, Any] = {"settings": {"batch_size": batch, "examples": n, "epochs_per_measurement": epochs,
                                            "data": "random tensors of the dataset's shape"},
                               "player_steps": [], "rounds": [], "table1_cell": [], "skipped": budget.skipped}
    for precision, compiled in VARIANTS:
        variant = variant_name(precision, compiled)
        if compiled and (quick or device.type == "cpu"):
            budget.skipped.append({"what": "all", "variant": variant,
                                   "reason": "compile is measured on a GPU only (compiling takes minutes on a CPU)"})
            continue
        flags = [f"train.precision={precision}", f"train.compile={str(compiled).lower()}"]
        for dataset, (_, shape) in CONFIGS.items():
            splits = synthetic_splits(shape, n, val, device)
            plain = {}
            for role in ROLES:
                if not budget.allows(f"{dataset} {role} step", variant):
                    continue
                seconds, first = epoch_seconds(player_config(dataset, "supervised", role, common + flags), splits)
                plain[role] = seconds
                results["player_steps"].append({
                    "dataset": dataset, "role": role, "variant": variant, "precision": precision,
                    "compile": compiled, "batch_size": batch, "samples_per_second": n / seconds,
                    "epoch_seconds": seconds, "first_epoch_seconds": first})
            if len(plain) == len(ROLES) and budget.allows(f"{dataset} kdgan round", variant):
                seconds, first = epoch_seconds(player_config(dataset, "kdgan", None, common + flags), splits)
                results["rounds"].append({
                    "dataset": dataset, "variant": variant, "round_seconds": seconds,
                    "plain_steps_seconds": sum(plain.values()), "ratio": seconds / sum(plain.values()),
                    "first_round_seconds": first})
        if budget.allows("table1 cell", variant):
            results["table1_cell"].append(table1_cell(device, flags, quick) | {"variant": variant})
    return results


def table1_cell(device: torch.device, flags: list[str], quick: bool) -> dict[str, Any]:
    """Wall seconds of KDGAN on the MNIST config at n=100, batch 10, pretraining included, with
    MNIST's 10,000 test examples (the config scores them every epoch)."""
    tiny = ["student.pretrain_epochs=1", "teacher.pretrain_epochs=1", "discriminator.pretrain_epochs=1",
            "train.epochs=1", "data.val_size=20", "data.eval_batch_size=20"] if quick else []
    config = load_config(find_config("mnist_kdgan"), [f"device={device}", "train.progress=false", "data.n=100",
                                                      "data.batch_size=10", *flags, *tiny])
    splits = synthetic_splits((1, 28, 28), 100, config.data.val_size, device, test=20 if quick else 10_000)
    began = time.perf_counter()
    build_trainer(config, splits=splits).fit()
    seconds = time.perf_counter() - began
    epochs = {role: config.player(role).pretrain_epochs for role in ROLES} | {"game": config.train.epochs}
    return {"seconds": seconds, "epochs": epochs, "n": 100, "batch_size": 10, "val_size": config.data.val_size,
            "test_size": len(splits.test)}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.set_defaults(device="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch-size", type=int, default=128, help="batch of the player and round measurements")
    p.add_argument("--budget", type=float, default=240.0, help="start no measurement after this many seconds")
    args = p.parse_args()
    device = setup(args)
    info = machine(device) | {"clock": "wall clock: the Trainer's per-epoch seconds (it reads losses once an epoch)"}
    began = time.perf_counter()
    results = run(args, device)
    rows = [[r["dataset"], r["role"], r["variant"], r["samples_per_second"], r["first_epoch_seconds"]]
            for r in results["player_steps"]]
    text = table(["dataset", "player", "variant", "samples/s", "first epoch s"], rows)
    text += "\n\n" + table(["dataset", "variant", "round s", "plain steps s", "ratio"],
                           [[r["dataset"], r["variant"], r["round_seconds"], r["plain_steps_seconds"], r["ratio"]]
                            for r in results["rounds"]])
    text += "\n\n" + table(["table 1 cell", "seconds"], [[r["variant"], r["seconds"]] for r in results["table1_cell"]])
    finish(args, "gpu", info, results, began, text)


if __name__ == "__main__":
    main()
