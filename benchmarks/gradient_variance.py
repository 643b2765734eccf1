"""Variance of the classifier's adversarial gradient under the three label-sampling estimators.

On MNIST (n labelled examples), the paper's student (MLP 784-800-800-10) is pretrained with the
supervised loss and the paper's discriminator (LeNet conv32/conv64/fc1024) is pretrained with the
discriminator loss against it (NaGAN's pretraining stages, through the engine). Then, on one fixed
batch, the student's adversarial loss ``kdgan.methods.sampling.adversarial_loss`` (minimax form, one
sample per example) is differentiated many times with fresh noise, for ``concrete``,
``straight_through`` and ``reinforce`` at several temperatures (REINFORCE does not use the
temperature: it is drawn once and compared with every temperature).

For each estimator it reports, over the draws, the total variance of the gradient (the trace of
its covariance: the sum of per-coordinate variances) for the last layer and for all parameters
flattened, the squared norm of the mean gradient, and the cosine between the estimator's mean
gradient and REINFORCE's (REINFORCE is unbiased for the discrete-label objective; the relaxed
estimators are biased, more so at high temperature). Ratios are ``var(reinforce) / var(estimator)``.
As a reference it also computes the *exact* gradient of the discrete objective: with K labels and
D's score linear in y, ``E_{y~p_c}[l(g(x).y)] = sum_k p_c,k l(g_k(x))`` needs no sampling (this is
how the discriminator's own loss is computed); each estimator's mean is compared with it (cosine,
norm ratio).

    python benchmarks/gradient_variance.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import math
import time

import torch
from _common import finish, load_data, machine, mnist_specs, parser, setup, table

from kdgan import NaGAN, Player, TrainConfig, Trainer
from kdgan.methods.losses import generator_loss
from kdgan.methods.sampling import adversarial_loss
from kdgan.models import build_model

ESTIMATORS = ("concrete", "straight_through", "reinforce")


class Moments:
    """Running per-coordinate sums (float64) of a vector's draws: mean, total variance."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.n = 0
        self.sum = torch.zeros(size, dtype=torch.float64, device=device)
        self.sq = torch.zeros(size, dtype=torch.float64, device=device)

    def add(self, value: torch.Tensor) -> None:
        value = value.double()
        self.n += 1
        self.sum += value
        self.sq += value * value

    @property
    def mean(self) -> torch.Tensor:
        return self.sum / self.n

    def total_variance(self) -> float:
        """Sum over coordinates of the unbiased sample variance."""
        var = (self.sq - self.sum * self.sum / self.n) / (self.n - 1)
        return float(var.clamp_min(0).sum())


def ratio(a: float, b: float) -> float:
    """a / b, with 0 / 0 = nan and a / 0 = inf (few draws can all pick the same labels)."""
    if b == 0:
        return float("nan") if a == 0 else float("inf")
    return a / b


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-30))


def pretrain(splits, device: torch.device, student_epochs: int, disc_epochs: int, batch_size: int, seed: int):
    """The student (supervised, validation-selected) and D (discriminator loss), through the engine."""
    torch.manual_seed(seed)
    specs = mnist_specs()
    shape = tuple(splits.train.x.shape[1:])
    players = {role: Player.create(build_model(specs[role], shape, 10).to(device))
               for role in ("student", "discriminator")}
    trainer = Trainer(NaGAN(players), splits, TrainConfig(epochs=0, progress=False, checkpoint_every=0),
                      batch_size=batch_size, seed=seed,
                      pretrain_epochs={"student": student_epochs, "discriminator": disc_epochs})
    result = trainer.fit()
    for player in players.values():
        player.module.eval()
    return players, result


def measure(student: torch.nn.Module, disc: torch.nn.Module, batch, taus: list[float], draws: int,
            device: torch.device, seed: int) -> list[dict]:
    params = [p for p in student.parameters()]
    for p in params:
        p.requires_grad_(True)
    last = list(student.net[-1].parameters())  # the output layer (weight, bias)
    n_last = sum(p.numel() for p in last)
    n_all = sum(p.numel() for p in params)
    with torch.no_grad():
        disc_logits = disc(batch.x)
    logits = student(batch.x)  # eval mode: deterministic; one graph, differentiated per draw
    # the exact gradient of E_{y~p_c}[l(g(x).y)] = sum_k p_c,k l(g_k): K = 10 labels, no sampling
    exact_loss = (logits.softmax(-1) * generator_loss(disc_logits, "minimax")).sum(-1).mean()
    exact = torch.cat([g.reshape(-1) for g in torch.autograd.grad(exact_loss, params, retain_graph=True)]).double()
    torch.manual_seed(seed)
    rows = []
    configs = [("reinforce", None)] + [(e, t) for t in taus for e in ESTIMATORS if e != "reinforce"]
    for estimator, tau in configs:
        m_last, m_all = Moments(n_last, device), Moments(n_all, device)
        began = time.process_time()
        for _ in range(draws):
            loss = adversarial_loss(logits, disc_logits, tau or 1.0, estimator, "minimax", 1)
            grads = torch.autograd.grad(loss, params, retain_graph=True)
            flat = torch.cat([g.reshape(-1) for g in grads])
            m_all.add(flat)
            m_last.add(torch.cat([g.reshape(-1) for g in grads[-2:]]))
        rows.append({
            "estimator": estimator, "tau": tau, "draws": draws,
            "var_last": m_last.total_variance(), "var_all": m_all.total_variance(),
            "mean_sq_norm_last": float(m_last.mean.norm() ** 2), "mean_sq_norm_all": float(m_all.mean.norm() ** 2),
            "_mean_all": m_all.mean, "_mean_last": m_last.mean,
            "cpu_seconds": round(time.process_time() - began, 2),
        })
    ref = rows[0]
    ref_mean = ref["_mean_all"]
    for row in rows:
        row["ratio_reinforce_over_this_last"] = ratio(ref["var_last"], row["var_last"])
        row["ratio_reinforce_over_this_all"] = ratio(ref["var_all"], row["var_all"])
        row["cos_mean_vs_reinforce_all"] = cosine(row["_mean_all"], ref["_mean_all"])
        row["cos_mean_vs_exact_all"] = cosine(row["_mean_all"], exact)
        row["mean_norm_over_exact_norm"] = float(row["_mean_all"].norm() / exact.norm())
        # noise-to-signal: total variance of ONE draw over the squared norm of the mean gradient
        row["noise_to_signal_all"] = row["var_all"] / max(row["mean_sq_norm_all"], 1e-300)
    for row in rows:
        del row["_mean_all"], row["_mean_last"]
    rows.append({"estimator": "exact (sum over the K labels)", "tau": None, "draws": 0, "var_last": 0.0,
                 "var_all": 0.0, "mean_sq_norm_all": float(exact.norm() ** 2), "cos_mean_vs_exact_all": 1.0,
                 "ratio_reinforce_over_this_last": float("inf"), "ratio_reinforce_over_this_all": float("inf"),
                 "cos_mean_vs_reinforce_all": cosine(exact, ref_mean), "mean_norm_over_exact_norm": 1.0})
    assert len(last) == 2 and grads[-2].shape == last[0].shape  # the last two parameters are the output layer
    return rows


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--draws", type=int, default=None, help="gradient draws per estimator and temperature")
    p.add_argument("--batch", type=int, default=10, help="examples in the fixed batch (default 10, the training batch)")
    p.add_argument("--taus", default="0.1,0.3,1,3", help="temperatures (default 0.1,0.3,1,3)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    draws = args.draws or (150 if args.quick else 800)
    taus = [float(t) for t in args.taus.split(",")]
    splits = load_data("mnist", args.data_dir, 100, 1000, seed=args.seed).to(device)
    disc_epochs = 3 if args.quick else 5
    # (name, student pretraining epochs): 'fitted' as configured (the student fits its 100 examples,
    # so D has little to tell apart on them); 'early' after one epoch (soft predictions, D informative)
    regimes = [("fitted", 10 if args.quick else 20), ("early", 1)]
    text, results = "", {"draws": draws, "batch": args.batch, "taus": taus, "regimes": []}
    headers = ["estimator", "tau", "var last layer", "var all params", "|E g|^2 all", "reinforce/this (last)",
               "reinforce/this (all)", "cos(E g, exact)", "|E g|/|exact|"]
    for name, student_epochs in regimes:
        players, pre = pretrain(splits, device, student_epochs, disc_epochs, 10, args.seed)
        student, disc = players["student"].module, players["discriminator"].module
        batch = splits.train.batch(torch.arange(args.batch, device=device))
        with torch.no_grad():
            d_logits = disc(batch.x)
            p_student = student(batch.x).softmax(-1)
            d_true = torch.sigmoid(d_logits.gather(1, batch.y[:, None])).mean().item()
            d_fake = (torch.sigmoid(d_logits) * p_student).sum(-1).mean().item()
            p_true = p_student.gather(1, batch.y[:, None]).mean().item()
        rows = measure(student, disc, batch, taus, draws, device, args.seed)
        text += (f"\nregime '{name}': student pretrained {student_epochs} epoch(s) (val accuracy "
                 f"{pre.val['accuracy']:.4f}), D {disc_epochs} epochs; on the batch: mean p_c(y_true) = "
                 f"{p_true:.3f}, mean D(x, y_true) = {d_true:.3f}, mean E_(y~p_c) D(x, y) = {d_fake:.3f}\n")
        text += table(headers, [[r["estimator"], "-" if r["tau"] is None else r["tau"], r["var_last"], r["var_all"],
                                 r["mean_sq_norm_all"], r["ratio_reinforce_over_this_last"],
                                 r["ratio_reinforce_over_this_all"], r["cos_mean_vs_exact_all"],
                                 r["mean_norm_over_exact_norm"]] for r in rows])
        text += "\n"
        results["regimes"].append({"name": name, "student_pretrain_epochs": student_epochs,
                                   "disc_pretrain_epochs": disc_epochs, "student_val_accuracy": pre.val["accuracy"],
                                   "p_c_true_mean": p_true, "d_true_mean": d_true, "d_fake_mean": d_fake,
                                   "rows": rows})
    se = math.sqrt(2 / (draws - 1))
    text += (f"\nMNIST n=100, fixed batch of the first {args.batch} training examples, {draws} draws per row (relative "
             f"standard error of a per-coordinate variance about {100 * se:.0f}%, less for the sums); minimax "
             "generator loss, one sample per example; REINFORCE's baseline is the leave-one-out batch mean.")
    finish(args, "gradient_variance", info, results, began, text)


if __name__ == "__main__":
    main()
