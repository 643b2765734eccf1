"""Epochs and time for KDGAN, NaGAN and DISTN to reach a target validation accuracy.

Protocol (per seed, as in ``kdgan demo``): the teacher and the student are pretrained once with the
supervised loss (a plain loop for a fixed number of epochs, outside the timings); every method
then starts from those two networks, pretrains its discriminator as configured (KDGAN and NaGAN,
counted in its time) and trains for the same number of epochs through ``kdgan.training.build.build_trainer``
and ``Trainer.fit``. Curves come from the engine's history (stage "train": ``val_accuracy`` and
``seconds``, the engine's wall clock, restarted at the first epoch of the game: D's pretraining is
reported apart). The benchmark also wraps the trainer's ``_train_epoch`` and ``_evaluate_epoch``
(without changing them) to split each epoch's CPU time into training and evaluation.

The target is ``--target`` or, by default, the supervised student's validation accuracy plus
``--margin`` (2 points): the epoch at which a method first gains that much over its start.

Quick: the embedded digits (configs/digits_kdgan.yaml), 3 seeds, 30 epochs. Full: MNIST, n=100,
validation 500 (each epoch evaluates on it, and that dominates an MNIST epoch on CPU), the paper's
networks (student MLP 784-800-800-10, dropout 0.12; teacher LeNet conv32/conv64/fc1024, dropout
0.5, pretrained 30 epochs; D the same LeNet without dropout), 2 seeds, 20 epochs; other settings
from configs/digits_kdgan.yaml (batch 10, Adam 1e-3, KDGAN options, D pretrained 5 epochs).

    python benchmarks/convergence.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
                                     [--plot FILE.png] [--epochs E] [--seeds S] [--target ACC]
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import DATA_DIR, finish, load_data, machine, mnist_specs, parser, save_figure, setup, table

from kdgan.config import RunConfig, apply_overrides, from_dict, load_config
from kdgan.evaluation.metrics import evaluate_logits, predict_logits
from kdgan.models import build_model
from kdgan.training.build import build_trainer
from kdgan.training.runs import find_config

METHODS = ("kdgan", "nagan", "distn")


def base_config(dataset: str, device: str, threads: int, epochs: int, data_dir: Path) -> RunConfig:
    config = load_config(find_config("digits_kdgan"))
    config = replace(config, device=device, threads=threads, train=replace(config.train, epochs=epochs,
                     progress=False, checkpoint_every=0))
    if dataset == "mnist":
        data = replace(config.data, name="mnist", dir=str(data_dir), n=100, val_size=500, batch_size=10)
        specs = mnist_specs()
        specs["student"]["dropout"] = 0.12  # the authors' keep probability 0.88
        specs["teacher"]["dropout"] = 0.5
        config = replace(config, data=data,
                         student=replace(config.student, model=specs["student"]),
                         teacher=replace(config.teacher, model=specs["teacher"], pretrain_epochs=30),
                         discriminator=replace(config.discriminator, model=specs["discriminator"]))
    return config


def pretrain(spec: dict[str, Any], splits, epochs: int, batch_size: int, seed: int, device: torch.device):
    """Supervised pretraining, a plain loop (Adam 1e-3), fixed epochs; returns (state, val accuracy)."""
    torch.manual_seed(seed)
    module = build_model(spec, tuple(splits.train.x.shape[1:]), splits.num_classes).to(device)
    opt = torch.optim.Adam(module.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        module.train()
        for batch in splits.train.batches(batch_size, gen):
            loss = F.cross_entropy(module(batch.x), batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    module.eval()
    val = evaluate_logits(predict_logits(lambda b: module(b.x), splits.val, 1000), splits.val)["accuracy"].item()
    return copy.deepcopy(module.state_dict()), val


def instrument(trainer) -> None:
    """Add CPU/wall seconds of training and of evaluation to each epoch's record (no behaviour change)."""
    train_epoch, evaluate_epoch = trainer._train_epoch, trainer._evaluate_epoch

    def wrapped_train(stage, epoch):
        c, w = time.process_time(), time.perf_counter()
        out = train_epoch(stage, epoch)
        return {**out, "cpu_train": time.process_time() - c, "wall_train": time.perf_counter() - w}

    def wrapped_eval(stage):
        c, w = time.process_time(), time.perf_counter()
        out = evaluate_epoch(stage)
        return {**out, "cpu_eval": time.process_time() - c, "wall_eval": time.perf_counter() - w}

    trainer._train_epoch, trainer._evaluate_epoch = wrapped_train, wrapped_eval


def run_method(base: RunConfig, method: str, seed: int, splits, states: dict[str, dict]) -> dict[str, Any]:
    options = base.options if method == "kdgan" else {}
    config = replace(base, method=method, seed=seed, options=options,
                     student=replace(base.student, pretrain_epochs=0), teacher=replace(base.teacher, pretrain_epochs=0))
    trainer = build_trainer(config, splits=splits)
    for role, state in states.items():
        if role in trainer.method.players:
            trainer.method.players[role].module.load_state_dict(state)
    instrument(trainer)
    result = trainer.fit()
    pre = [r for r in result.history if r["stage"] != "train"]
    train = [r for r in result.history if r["stage"] == "train"]
    offset = pre[-1]["seconds"] if pre else 0.0
    extra = ("teacher_val_accuracy", "d_true_acc", "d_fake_acc", "tau", "loss_student", "loss_teacher",
             "loss_discriminator")
    curve = [{"epoch": r["epoch"] + 1, "val_accuracy": r["val_accuracy"], "seconds": r["seconds"] - offset,
              "cpu_train": r["cpu_train"], "cpu_eval": r["cpu_eval"], "wall_train": r["wall_train"],
              "wall_eval": r["wall_eval"], **{k: r[k] for k in extra if k in r}} for r in train]
    return {"method": method, "seed": seed, "curve": curve, "pretrain_seconds": offset,
            "pretrain_cpu": sum(r["cpu_train"] + r["cpu_eval"] for r in pre),
            "test_accuracy": result.test["accuracy"], "selected_epoch": result.selected_epoch}


def reach(curve: list[dict], target: float) -> dict[str, Any] | None:
    cpu = 0.0
    for point in curve:
        cpu += point["cpu_train"] + point["cpu_eval"]
        if point["val_accuracy"] >= target:
            return {"epoch": point["epoch"], "seconds": point["seconds"], "cpu_seconds": cpu}
    return None


def plot(runs: list[dict], start: dict[int, float], path: Path, title: str, target: float | None) -> None:
    """Validation accuracy vs epoch and vs seconds: thin lines per seed, bold the mean over seeds;
    a dot where a run first reaches its target (the dashed line when the target is one number)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"kdgan": "tab:red", "nagan": "tab:blue", "distn": "tab:green"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        curves = []
        for run in mine:
            xs_epoch = [0] + [p["epoch"] for p in run["curve"]]
            xs_sec = [0.0] + [p["seconds"] for p in run["curve"]]
            ys = [start[run["seed"]]] + [p["val_accuracy"] for p in run["curve"]]
            curves.append((xs_epoch, xs_sec, ys))
            axes[0].plot(xs_epoch, ys, color=colors[method], alpha=0.3, linewidth=0.8)
            axes[1].plot(xs_sec, ys, color=colors[method], alpha=0.3, linewidth=0.8)
            if run.get("reached"):
                got = run["reached"]
                axes[0].plot([got["epoch"]], [run["target"]], "o", color=colors[method], markersize=4)
                axes[1].plot([got["seconds"]], [run["target"]], "o", color=colors[method], markersize=4)
        mean_y = [statistics.fmean(c[2][i] for c in curves) for i in range(len(curves[0][2]))]
        mean_s = [statistics.fmean(c[1][i] for c in curves) for i in range(len(curves[0][1]))]
        axes[0].plot(curves[0][0], mean_y, color=colors[method], linewidth=2, label=f"{method} (mean)")
        axes[1].plot(mean_s, mean_y, color=colors[method], linewidth=2, label=f"{method} (mean)")
    for ax, xlabel in zip(axes, ("epoch of the game", "seconds (engine wall clock, game only)"), strict=True):
        if target is not None:
            ax.axhline(target, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation accuracy")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle(title)
    save_figure(fig, path)


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs of each game (default: quick 30, full 20)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default: quick 3, full 2)")
    p.add_argument("--target", type=float, default=None, help="target validation accuracy")
    p.add_argument("--margin", type=float, default=0.02, help="default target: supervised student + margin")
    p.add_argument("--plot", type=Path, default=None, help="PNG path (default: next to --out, else in the temp folder)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override the base config, e.g. student.optimizer.game_lr=0.0001 (repeatable)")
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    info["clock"] = "engine history seconds (wall clock) and process CPU time per epoch (wrappers)"
    dataset = "digits" if args.quick else "mnist"
    epochs = args.epochs or (30 if args.quick else 20)
    seeds = args.seeds or (3 if args.quick else 2)
    base = base_config(dataset, args.device, args.threads, epochs, args.data_dir or DATA_DIR)
    if args.set:
        base = from_dict(RunConfig, apply_overrides(base.to_dict(), args.set))
    runs, start, pretrained = [], {}, {}
    for seed in range(seeds):
        splits = load_data(dataset, args.data_dir, base.data.n, base.data.val_size, seed).to(device)
        t_state, t_val = pretrain(base.teacher.model, splits, base.teacher.pretrain_epochs, base.data.batch_size,
                                  seed, device)
        s_state, s_val = pretrain(base.student.model, splits, base.student.pretrain_epochs, base.data.batch_size,
                                  seed, device)
        start[seed] = s_val
        pretrained[seed] = {"teacher_val_accuracy": t_val, "student_val_accuracy": s_val}
        print(f"seed {seed}: pretrained teacher val {t_val:.4f}, student val {s_val:.4f}", flush=True)
        for method in METHODS:
            states = {"student": s_state, "teacher": t_state}
            run = run_method(base, method, seed, splits, states)
            best = max(run["curve"], key=lambda r: r["val_accuracy"])
            last = run["curve"][-1]
            print(f"  {method}: best val {best['val_accuracy']:.4f} at epoch {best['epoch']}, last "
                  f"{last['val_accuracy']:.4f}, {last['seconds']:.1f} s; last epoch: "
                  + ", ".join(f"{k} {last[k]:.4g}" for k in ("teacher_val_accuracy", "d_true_acc", "d_fake_acc",
                                                              "loss_student") if k in last), flush=True)
            runs.append(run)
    rows, summary = [], {}
    for method in METHODS:
        mine = [r for r in runs if r["method"] == method]
        hits, epochs_to, secs_to, cpu_to = 0, [], [], []
        for run in mine:
            target = args.target if args.target is not None else start[run["seed"]] + args.margin
            got = reach(run["curve"], target)
            run["target"], run["reached"] = target, got
            if got:
                hits += 1
                epochs_to.append(got["epoch"])
                secs_to.append(got["seconds"])
                cpu_to.append(got["cpu_seconds"])
        n_ep = len(mine[0]["curve"])
        per_epoch = statistics.fmean(r["curve"][-1]["seconds"] / n_ep for r in mine)
        cpu_train = statistics.fmean(sum(p["cpu_train"] for p in r["curve"]) / n_ep for r in mine)
        cpu_eval = statistics.fmean(sum(p["cpu_eval"] for p in r["curve"]) / n_ep for r in mine)
        best = statistics.fmean(max(p["val_accuracy"] for p in r["curve"]) for r in mine)
        summary[method] = {
            "reached": f"{hits}/{len(mine)}",
            "epochs_to_target": [r["reached"]["epoch"] if r["reached"] else None for r in mine],
            "seconds_to_target": [round(r["reached"]["seconds"], 2) if r["reached"] else None for r in mine],
            "median_epochs_to_target": statistics.median(epochs_to) if epochs_to else None,
            "median_seconds_to_target": statistics.median(secs_to) if secs_to else None,
            "median_cpu_seconds_to_target": statistics.median(cpu_to) if cpu_to else None,
            "wall_seconds_per_epoch": per_epoch, "cpu_train_per_epoch": cpu_train, "cpu_eval_per_epoch": cpu_eval,
            "mean_best_val": best,
            "mean_test_of_selected": statistics.fmean(r["test_accuracy"] for r in mine),
            "d_pretrain_seconds": statistics.fmean(r["pretrain_seconds"] for r in mine),
        }
        s = summary[method]
        rows.append([method, s["reached"], ",".join("-" if e is None else str(e) for e in s["epochs_to_target"]),
                     ",".join("-" if e is None else f"{e:.1f}" for e in s["seconds_to_target"]),
                     s["mean_best_val"], s["mean_test_of_selected"], per_epoch, cpu_train, cpu_eval,
                     s["d_pretrain_seconds"]])
    targets = [round(next(r["target"] for r in runs if r["seed"] == seed), 4) for seed in range(seeds)]
    text = table(["method", "reached", "epochs to target (per seed)", "seconds to target (per seed)",
                  "mean best val", "mean test (selected)", "wall s/epoch", "CPU s/epoch train", "CPU s/epoch eval",
                  "D pretrain s"], rows)
    speed = []  # the paper's claim: epochs to NaGAN's best validation accuracy (of the same seed)
    for seed in range(seeds):
        by_method = {r["method"]: r for r in runs if r["seed"] == seed}
        nagan_best = max(p["val_accuracy"] for p in by_method["nagan"]["curve"])
        reached = {m: reach(by_method[m]["curve"], nagan_best) for m in METHODS}
        speed.append({"seed": seed, "nagan_best_val": nagan_best,
                      **{m: (got["epoch"] if got else None) for m, got in reached.items()}})
    summary["epochs_to_nagan_best"] = speed
    text += "\n\nepochs to reach NaGAN's best validation accuracy (the paper's speed claim):\n" + table(
        ["seed", "NaGAN best val", *METHODS],
        [[r["seed"], r["nagan_best_val"], *("never" if r[m] is None else r[m] for m in METHODS)] for r in speed])
    how = "given" if args.target is not None else f"supervised student + {args.margin}"
    text += (f"\n\n{dataset}, n={base.data.n}, {seeds} seed(s), {epochs} epochs per method; target val accuracy "
             f"per seed (seed order): {targets} ({how}); pretrained: {pretrained}")
    plot_path = args.plot or (args.out.with_suffix(".png") if args.out
                              else Path(tempfile.gettempdir()) / f"kdgan_convergence_{dataset}.png")
    plot(runs, start, plot_path, f"{dataset} n={base.data.n}: validation accuracy, {seeds} seeds "
         "(dots: target reached)", args.target)
    text += f"\nplot: {plot_path}"
    results = {"dataset": dataset, "n": base.data.n, "epochs": epochs, "seeds": seeds, "summary": summary,
               "pretrained": pretrained, "runs": runs, "plot": str(plot_path)}
    finish(args, "convergence", info, results, began, text)


if __name__ == "__main__":
    main()
