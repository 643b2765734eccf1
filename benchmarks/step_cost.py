"""Cost of one round of KDGAN, NaGAN and DISTN against the sum of their players' plain steps.

A round is what the engine does in one epoch of the game (``Trainer._train_epoch``): each player
of the method's schedule makes ``passes`` passes over the training batches, in order. The baseline
is the same players' *plain supervised steps* on the same batches and counts: forward,
cross-entropy, backward and optimizer step of each network alone, in a bare loop. Variants:

- ``plain``          bare loop, sum of the players' supervised steps (the denominator);
- ``plain-engine``   the same supervised steps through ``Trainer._train_epoch`` (engine bookkeeping);
- ``round-nocache``  the method's round with ``train.cache_outputs=false``: every step runs the
                     other players' forwards it needs;
- ``round``          the round as shipped: the fixed players' outputs come from the engine's
                     output cache (``kdgan.training.cache``), refilled only after their owner updates.

Rounds are timed in steady state (the cache carries over from the previous round, as in training).
Every variant gets its own copy of the same initial players; repetitions rotate the variants'
order (drift in the machine's load falls on all alike); ratios are per repetition, then median.

Where the overhead comes from. Without the cache, per batch, D's update runs C and T forwards for
p_alpha = alpha p_c + (1 - alpha) p_t; T's update runs C's forward (distillation target) and D's
(scores of its samples); C's update runs T's and D's: two no-grad forwards of every network per
batch on top of the three supervised steps. With it, each network runs one no-grad forward over
the training set per round (C's serves D's and T's passes, D's serves T's and C's, T's after its
pass serves C's pass and the next round's D pass); NaGAN one of C and one of D; DISTN's frozen
teacher one per training stage.

    python benchmarks/step_cost.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from _common import digits_specs, finish, interleaved, load_data, machine, median, mnist_specs, parser, setup, table

from kdgan import KDGAN, Distn, NaGAN, Player, Splits, TensorData, TrainConfig, Trainer
from kdgan.data.core import Batch
from kdgan.methods.base import Method
from kdgan.models import build_model

METHODS = {"kdgan": KDGAN, "nagan": NaGAN, "distn": Distn}


class PlainRound(Method):
    """Supervised cross-entropy for every player of a schedule, run through the engine."""

    name = "plain-round"
    summary = "benchmark only"
    roles: ClassVar[tuple[str, ...]] = ("student", "teacher", "discriminator")

    def __init__(self, players: dict[str, Player], schedule: tuple[str, ...]) -> None:
        super().__init__(players)
        self.schedule = schedule

    def loss(self, role: str, batch: Batch) -> torch.Tensor:
        return self.supervised_loss(role, batch)


FILL_CHUNK = 128  # examples per forward when filling the cache (at least the training batch size)


@dataclass
class Setup:
    name: str
    specs: dict[str, dict[str, Any]]
    batch_size: int
    batches: int
    passes: dict[str, int]
    reps: int
    check: bool = True  # check that the cached round equals the uncached one


def make_players(specs: dict[str, dict[str, Any]], roles: tuple[str, ...], in_shape: tuple[int, ...],
                 device: torch.device, passes: dict[str, int], seed: int = 0) -> dict[str, Player]:
    torch.manual_seed(seed)
    players = {}
    for role in roles:
        module = build_model(specs[role], in_shape, 10).to(device)
        players[role] = Player.create(module, passes=passes.get(role, 1))
    return players


def clone_players(players: dict[str, Player]) -> dict[str, Player]:
    return {role: Player.create(copy.deepcopy(p.module), passes=p.passes) for role, p in players.items()}


def plain_loop(players: dict[str, Player], schedule: tuple[str, ...], train: TensorData, batch_size: int,
               generator: torch.Generator) -> None:
    """The players' plain supervised steps, in a bare loop (the baseline)."""
    for role in schedule:
        player = players[role]
        player.module.train()
        for _ in range(player.passes):
            for batch in train.batches(batch_size, generator):
                loss = F.cross_entropy(player.module(batch.x), batch.y)
                player.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                player.optimizer.step()


def component_times(players: dict[str, Player], batch: Batch, reps: int, device: torch.device) -> dict[str, dict]:
    """Median seconds of one plain step and one eval-mode no-grad forward of each network."""
    out = {}
    for role, player in players.items():
        module = copy.deepcopy(player.module)
        opt = Player.create(module).optimizer

        def step(module: torch.nn.Module = module, opt: torch.optim.Optimizer = opt) -> None:
            module.train()
            loss = F.cross_entropy(module(batch.x), batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def forward(module: torch.nn.Module = module) -> None:
            module.eval()
            with torch.no_grad():
                module(batch.x)

        times = interleaved({"step": step, "forward": forward}, reps, device, warmup=2)
        out[role] = {k: median(v) for k, v in times.items()}
    return out


PER_BATCH_FORWARDS = {  # without the cache: other players' no-grad forwards per batch, by updated player
    "kdgan": {"discriminator": ("student", "teacher"), "teacher": ("student", "discriminator"),
              "student": ("teacher", "discriminator")},
    "nagan": {"discriminator": ("student",), "student": ("discriminator",)},
    "distn": {"student": ("teacher",)},
}
PER_ROUND_FORWARDS = {  # with the cache, in steady state: forwards over the training set per round
    "kdgan": ("student", "teacher", "discriminator"), "nagan": ("student", "discriminator"), "distn": (),
}


def game_trainer(method_name: str, players: dict[str, Player], splits: Splits, batch_size: int,
                 cache: bool) -> Trainer:
    """A trainer of the method's game stage, ready for ``_train_epoch`` as ``Trainer.fit`` leaves it."""
    config = TrainConfig(epochs=1, progress=False, checkpoint_every=0, cache_outputs=cache)
    trainer = Trainer(METHODS[method_name](players), splits, config, batch_size=batch_size)
    trainer.output_cache = trainer._new_output_cache()
    return trainer


def max_cache_diff(players: dict[str, Player], method_name: str, splits: Splits, batch_size: int) -> float:
    """Largest parameter difference after two rounds with and without the cache, same seed and batches."""
    results = []
    for cache in (False, True):
        ps = clone_players(players)
        trainer = game_trainer(method_name, ps, splits, batch_size, cache)
        torch.manual_seed(123)
        trainer.batches.manual_seed(123)
        for epoch in range(2):
            trainer._train_epoch(trainer.stages[-1], epoch)
        results.append(ps)
    diff = 0.0
    for role, player in results[0].items():
        for a, b in zip(player.module.parameters(), results[1][role].module.parameters(), strict=True):
            diff = max(diff, (a.detach() - b.detach()).abs().max().item())
    return diff


def run_setup(setup_: Setup, splits: Splits, device: torch.device, comp_reps: int) -> dict[str, Any]:
    train = splits.train
    in_shape = tuple(train.x.shape[1:])
    base = make_players(setup_.specs, ("student", "teacher", "discriminator"), in_shape, device, setup_.passes)
    probe = train.batch(torch.arange(min(setup_.batch_size, len(train)), device=device))
    comps = component_times(base, probe, comp_reps, device)
    config = TrainConfig(epochs=1, progress=False, checkpoint_every=0)
    rows = []
    for method_name, cls in METHODS.items():
        schedule, roles = tuple(cls.schedule), tuple(cls.roles)
        plain_players = clone_players({r: base[r] for r in schedule})
        gen = torch.Generator().manual_seed(0)
        variants: dict[str, Any] = {
            "plain": lambda pp=plain_players, g=gen, s=schedule: plain_loop(pp, s, train, setup_.batch_size, g)
        }
        engine = Trainer(PlainRound(clone_players(base), schedule), splits, config, batch_size=setup_.batch_size)
        variants["plain-engine"] = lambda t=engine: t._train_epoch(t.stages[-1], 0)
        for label, cache in (("round-nocache", False), ("round", True)):
            trainer = game_trainer(method_name, clone_players({r: base[r] for r in roles}), splits,
                                   setup_.batch_size, cache)
            variants[label] = lambda t=trainer: t._train_epoch(t.stages[-1], 0)
        times = interleaved(variants, setup_.reps, device, warmup=1)

        def ratio(name: str, times: dict[str, list[float]] = times) -> float:
            return median([t / p for t, p in zip(times[name], times["plain"], strict=True)])

        steps = setup_.batches * sum(comps[r]["step"] * base[r].passes for r in schedule)
        per_batch = setup_.batches * sum(
            comps[o]["forward"] * base[r].passes for r in schedule for o in PER_BATCH_FORWARDS[method_name][r]
        )
        per_round = setup_.batches * sum(comps[o]["forward"] for o in PER_ROUND_FORWARDS[method_name])
        row = {
            "setup": setup_.name, "method": method_name, "batch_size": setup_.batch_size,
            "batches": setup_.batches, "passes": {r: base[r].passes for r in schedule}, "reps": setup_.reps,
            "seconds": {k: median(v) for k, v in times.items()}, "all_seconds": times,
            "ratios": {k: ratio(k) for k in times if k != "plain"},
            "ratios_of_min": {k: min(v) / min(times["plain"]) for k, v in times.items() if k != "plain"},
            "predicted": {"round-nocache": (steps + per_batch) / steps, "round": (steps + per_round) / steps},
            "examples_per_s": {k: len(train) / median(v) for k, v in times.items()},
            "cache_max_param_diff": (max_cache_diff({r: base[r] for r in roles}, method_name, splits,
                                                    setup_.batch_size) if setup_.check else None),
        }
        rows.append(row)
        print(f"  {method_name}: " + ", ".join(f"{k}/plain {v:.3f}" for k, v in row["ratios"].items()), flush=True)
    return {"setup": setup_.name, "components_ms": {r: {k: 1000 * v for k, v in c.items()} for r, c in comps.items()},
            "methods": rows}


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=None, help="timed repetitions per variant")
    p.add_argument("--only", default=None, help="comma-separated setups to run (default: all)")
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    paper_passes = {"discriminator": 20, "teacher": 10, "student": 10}  # KDGAN authors' MNIST code
    quick = args.quick
    setups = [
        Setup("mnist-b128", mnist_specs(), 128, 1, {}, args.reps or (3 if quick else 7), check=not quick),
        Setup("digits-b10", digits_specs(), 10, 10, {}, args.reps or (9 if quick else 21)),
        Setup("digits-b10-paperpasses", digits_specs(), 10, 5, paper_passes, args.reps or (3 if quick else 7)),
    ]
    if not quick:
        setups[1:1] = [
            Setup("mnist-b10", mnist_specs(), 10, 10, {}, args.reps or 5),
            Setup("mnist-b10-paperpasses", mnist_specs(), 10, 10, paper_passes, args.reps or 3, check=False),
        ]
    if device.type == "cuda":
        setups.insert(1, Setup("mnist-b128x8", mnist_specs(), 128, 8, {}, args.reps or 5))
    if args.only:
        setups = [s for s in setups if s.name in args.only.split(",")]
    results = []
    for s in setups:
        n = s.batch_size * s.batches
        data = "mnist" if s.name.startswith("mnist") else "digits"
        splits = load_data(data, args.data_dir, n, 100, seed=0).to(device)
        print(f"{s.name}: {n} examples, batch {s.batch_size}, {s.reps} repetitions", flush=True)
        results.append(run_setup(s, splits, device, comp_reps=5 if quick else 15))

    def both(m: dict, key: str) -> str:
        return f"{m['ratios'][key]:.2f} / {m['ratios_of_min'][key]:.2f}"

    headers = ["setup", "method", "passes D/T/C", "plain s", "round s", "round/plain", "predicted",
               "no cache/plain", "predicted", "plain-engine/plain", "max |dθ| cache vs none"]
    rows = []
    for r in results:
        for m in r["methods"]:
            ps = m["passes"]
            passes = "/".join(str(ps.get(k, "-")) for k in ("discriminator", "teacher", "student"))
            diff = m["cache_max_param_diff"]
            rows.append([m["setup"], m["method"], passes, m["seconds"]["plain"], m["seconds"]["round"],
                         both(m, "round"), m["predicted"]["round"], both(m, "round-nocache"),
                         m["predicted"]["round-nocache"], both(m, "plain-engine"),
                         "not checked" if diff is None else diff])
    text = ("time / plain: median of per-repetition ratios / ratio of the fastest repetitions\n"
            + table(headers, rows))
    comp_rows = [[r["setup"], role, c["step"], c["forward"], c["forward"] / c["step"]]
                 for r in results for role, c in r["components_ms"].items()]
    text += "\n\nper network, one batch (ms, median):\n" + table(
        ["setup", "network", "plain step", "no-grad forward", "forward/step"], comp_rows)
    if device.type == "cuda":
        tp = [[m["setup"], m["method"], *(m["examples_per_s"][k] for k in ("plain", "round-nocache", "round"))]
              for r in results for m in r["methods"]]
        text += "\n\nGPU throughput (training examples per second, one round over them):\n" + table(
            ["setup", "method", "plain", "round-nocache", "round"], tp)
    finish(args, "step_cost", info, {"setups": results}, began, text)


if __name__ == "__main__":
    main()
