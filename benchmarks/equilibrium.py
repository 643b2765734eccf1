"""Does the game drive the student (and teacher) to the true label distribution?

The KDGAN paper's claim: the three-player game's equilibrium is p_c = p_t = p_u. This benchmark
builds a problem whose p_u(y|x) is known exactly: K classes with equal priors, x ~ N(mu_k, s^2 I)
in 2-D with the means on a circle close enough to overlap, and every label (training, validation)
drawn from the true posterior p_u(y|x) = softmax_k(mu_k.x / s^2 - |mu_k|^2 / (2 s^2)). The student
(MLP, 16 hidden), the teacher (MLP 64-64) and the discriminator (MLP 64) are trained through the
Python API (``Player.create``, method classes, ``Trainer``) on TensorData splits; a Trainer subclass
adds, after every epoch (pretraining included), the mean KL(p_u || p_c) and KL(p_u || p_t) over a
held-out sample of x (no labels needed) to the epoch's record.

Methods: ``supervised`` (the student alone, cross-entropy: the maximum-likelihood reference),
``distn`` (frozen teacher), ``nagan`` and ``kdgan`` with their default options. Every method of a
seed starts from the same pretrained student and teacher; adversarial methods pretrain D first.

    python benchmarks/equilibrium.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import copy
import math
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from _common import finish, machine, parser, save_figure, setup, table

from kdgan import KDGAN, Distn, NaGAN, Player, Splits, Supervised, TensorData, TrainConfig, Trainer
from kdgan.config import OptimizerConfig
from kdgan.models import MLP

METHODS = ("supervised", "distn", "nagan", "kdgan")


class Mixture:
    """K isotropic 2-D Gaussians, equal priors, means on a circle of radius ``radius``."""

    def __init__(self, classes: int = 4, radius: float = 1.5, std: float = 1.0) -> None:
        angles = torch.arange(classes) * 2 * math.pi / classes
        self.means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)
        self.std, self.classes = std, classes

    def posterior_logits(self, x: torch.Tensor) -> torch.Tensor:
        var = self.std**2
        means = self.means.to(x)
        return x @ means.T / var - (means**2).sum(1) / (2 * var)

    def sample(self, n: int, generator: torch.Generator) -> TensorData:
        component = torch.randint(self.classes, (n,), generator=generator)
        x = self.means[component] + self.std * torch.randn(n, 2, generator=generator)
        p_u = self.posterior_logits(x).softmax(-1)
        y = torch.multinomial(p_u, 1, generator=generator).squeeze(1)  # labels from the true posterior
        return TensorData(x, y, self.classes)


def kl_to_truth(p_u_log: torch.Tensor, logits: torch.Tensor) -> float:
    """Mean over examples of KL(p_u || softmax(logits))."""
    return float((p_u_log.exp() * (p_u_log - F.log_softmax(logits, -1))).sum(-1).mean())


class KLTrainer(Trainer):
    """Adds the student's and the teacher's mean KL to the true posterior to every epoch record."""

    holdout: torch.Tensor
    p_u_log: torch.Tensor

    def _evaluate_epoch(self, stage: Any) -> dict[str, float]:
        record = super()._evaluate_epoch(stage)
        with torch.no_grad():
            for role in ("student", "teacher"):
                if role in self.method.players:
                    module = self.method.players[role].module
                    was_training = module.training
                    module.eval()
                    record[f"kl_{role}"] = kl_to_truth(self.p_u_log, module(self.holdout))
                    module.train(was_training)
        return record


def make_players(roles: tuple[str, ...], device: torch.device, seed: int) -> dict[str, Player]:
    torch.manual_seed(seed)
    hidden = {"student": [16], "teacher": [64, 64], "discriminator": [64]}
    return {role: Player.create(MLP((2,), 4, hidden=hidden[role]).to(device), OptimizerConfig(lr=1e-3))
            for role in roles}


def train(method_name: str, splits: Splits, states: dict[str, dict], holdout: torch.Tensor, p_u_log: torch.Tensor,
          epochs: int, batch_size: int, device: torch.device, seed: int,
          pretrain: dict[str, int]) -> tuple[list[dict], int]:
    roles = {"supervised": ("student",), "distn": ("student", "teacher"), "nagan": ("student", "discriminator"),
             "kdgan": ("student", "teacher", "discriminator")}[method_name]
    players = make_players(roles, device, seed + 1)
    for role, state in states.items():
        if role in players:
            players[role].module.load_state_dict(state)
    cls = {"supervised": Supervised, "distn": Distn, "nagan": NaGAN, "kdgan": KDGAN}[method_name]
    method = cls(players)
    trainer = KLTrainer(method, splits, TrainConfig(epochs=epochs, progress=False, checkpoint_every=0),
                        batch_size=batch_size, seed=seed,
                        pretrain_epochs={r: e for r, e in pretrain.items() if r in roles})
    trainer.holdout, trainer.p_u_log = holdout, p_u_log
    result = trainer.fit()
    return result.history, result.selected_epoch


def plot(curves: dict[str, list[list[dict]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"supervised": "black", "distn": "tab:green", "nagan": "tab:blue", "kdgan": "tab:red"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for method, runs in curves.items():
        for i, hist in enumerate(runs):
            train = [r for r in hist if r["stage"] == "train"]
            ax.plot([r["epoch"] + 1 for r in train], [r["kl_student"] for r in train], color=colors[method],
                    alpha=0.8, label=f"{method}: KL(p_u||p_c)" if i == 0 else None)
            if method == "kdgan":
                ax.plot([r["epoch"] + 1 for r in train], [r["kl_teacher"] for r in train], color=colors[method],
                        linestyle="--", alpha=0.8, label="kdgan: KL(p_u||p_t)" if i == 0 else None)
    ax.set_yscale("log")
    ax.set_xlabel("epoch of the game")
    ax.set_ylabel("mean KL on held-out x (nats)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=None, help="epochs of each game (default quick 30, full 60)")
    p.add_argument("--seeds", type=int, default=None, help="seeds (default quick 1, full 3)")
    p.add_argument("--n", type=int, default=1000, help="labelled training examples (default 1000)")
    p.add_argument("--plot", type=Path, default=None,
                   help="PNG of the KL curves (default: next to --out, else in the temp folder)")
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    info["clock"] = "engine history seconds"
    epochs = args.epochs or (30 if args.quick else 60)
    seeds = args.seeds or (1 if args.quick else 3)
    batch_size = 50
    pretrain = {"teacher": 30, "student": 3, "discriminator": 5}
    mixture = Mixture()
    results: dict[str, list[dict]] = {m: [] for m in METHODS}
    curves: dict[str, list[list[dict]]] = {m: [] for m in METHODS}
    bayes = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(1000 + seed)
        train_data, val, test = (mixture.sample(n, gen) for n in (args.n, 1000, 1000))
        splits = Splits(train_data, val, test).to(device)
        holdout = mixture.sample(4000, gen).x.to(device)
        p_u_log = F.log_softmax(mixture.posterior_logits(holdout), -1)
        bayes.append(float((mixture.posterior_logits(val.x).argmax(-1) == val.y).float().mean()))
        # shared starting point: teacher and student pretrained (supervised) once per seed
        base = make_players(("student", "teacher"), device, seed)
        start = Trainer(Supervised(base, Supervised.Options(player="teacher")), splits,
                        TrainConfig(epochs=pretrain["teacher"], progress=False, checkpoint_every=0),
                        batch_size=batch_size, seed=seed).fit()
        Trainer(Supervised(base), splits, TrainConfig(epochs=pretrain["student"], progress=False,
                                                      checkpoint_every=0), batch_size=batch_size, seed=seed).fit()
        states = {role: copy.deepcopy(p.module.state_dict()) for role, p in base.items()}
        with torch.no_grad():
            start_kl = {role: kl_to_truth(p_u_log, base[role].module.eval()(holdout)) for role in base}
        print(f"seed {seed}: Bayes val accuracy {bayes[-1]:.4f}; teacher val {start.val['accuracy']:.4f}; start KL "
              f"student {start_kl['student']:.4f}, teacher {start_kl['teacher']:.4f}", flush=True)
        for method in METHODS:
            hist, selected = train(method, splits, states, holdout, p_u_log, epochs, batch_size, device, seed,
                         {"discriminator": pretrain["discriminator"]})
            game = [r for r in hist if r["stage"] == "train"]
            row = {"seed": seed, "start_kl_student": start_kl["student"], "start_kl_teacher": start_kl["teacher"],
                   "final_kl_student": game[-1]["kl_student"], "min_kl_student": min(r["kl_student"] for r in game),
                   "final_kl_teacher": game[-1].get("kl_teacher"), "final_val_accuracy": game[-1]["val_accuracy"],
                   "selected_epoch": selected, "selected_kl_student": game[selected]["kl_student"],
                   "seconds": game[-1]["seconds"]}
            if "kl_teacher" in game[-1]:
                row["min_kl_teacher"] = min(r["kl_teacher"] for r in game)
            results[method].append(row)
            curves[method].append(hist)
            print(f"  {method}: KL(p_u||p_c) {row['start_kl_student']:.4f} -> {row['final_kl_student']:.4f}"
                  + (f", KL(p_u||p_t) {row['start_kl_teacher']:.4f} -> {row['final_kl_teacher']:.4f}"
                     if row["final_kl_teacher"] is not None else ""), flush=True)

    def mean(method: str, key: str) -> float | str:
        values = [r[key] for r in results[method] if r.get(key) is not None]
        return statistics.fmean(values) if values else "-"

    rows = [[m, mean(m, "start_kl_student"), mean(m, "final_kl_student"), mean(m, "min_kl_student"),
             mean(m, "selected_kl_student"),
             mean(m, "start_kl_teacher") if m in ("kdgan", "distn") else "-", mean(m, "final_kl_teacher"),
             mean(m, "final_val_accuracy")] for m in METHODS]
    text = table(["method", "KL(p_u||p_c) start", "final", "min over epochs", "at selected epoch",
                  "KL(p_u||p_t) start", "final",
                  "final val acc"], rows)
    text += (f"\n\n{mixture.classes} Gaussians in 2-D (radius {1.5}, std {1.0}), n={args.n} labelled examples, labels "
             f"drawn from p_u(y|x); {seeds} seed(s), {epochs} epochs per method, batch {batch_size}; KL in nats, "
             f"mean over 4000 held-out x; Bayes val accuracy {statistics.fmean(bayes):.4f}; pretraining {pretrain}.")
    plot_path = args.plot or (args.out.with_suffix(".png") if args.out
                              else Path(tempfile.gettempdir()) / "kdgan_equilibrium.png")
    plot(curves, plot_path)
    text += f"\nplot: {plot_path}"
    finish(args, "equilibrium", info, {"per_method": results, "bayes_val_accuracy": bayes, "epochs": epochs,
                                       "n": args.n, "pretrain": pretrain, "curves": {
                                           m: [[{k: r.get(k) for k in ("stage", "epoch", "kl_student", "kl_teacher",
                                                                       "val_accuracy", "seconds")} for r in h]
                                               for h in runs] for m, runs in curves.items()}},
           began, text)


if __name__ == "__main__":
    main()
