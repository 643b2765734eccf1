"""Cost of one round of KDGAN, NaGAN and DISTN against the sum of their players' plain steps.

A round is what the engine does in one epoch of the game (``Trainer._train_epoch``): each player
of the method's schedule makes ``passes`` passes over the training batches, in order. The baseline
is the same players' *plain supervised steps* on the same batches and counts: forward,
cross-entropy, backward and optimizer step of each network alone, in a bare loop. Variants:

- ``plain``          bare loop, sum of the players' supervised steps (the denominator);
- ``plain-engine``   the same supervised steps through ``Trainer._train_epoch`` (engine bookkeeping);
- ``round``          the method's round through the engine, as shipped;
- ``round-cached``   the same round with an experimental *fixed-player output cache* monkeypatched
                     in (nothing in the package is edited): while a player updates, the others do
                     not change, so their eval-mode outputs on the training set are computed once
                     per phase (at most) and looked up by batch index instead of being recomputed
                     by a forward pass per step. Exact up to float rounding (checked below).

Every variant gets its own copy of the same initial players; repetitions rotate the variants'
order (drift in the machine's load falls on all alike); ratios are per repetition, then median.

Where the overhead comes from (per batch, in ``round``): D's update runs C and T forwards for
p_alpha = alpha p_c + (1 - alpha) p_t; T's update runs C's forward (distillation target) and D's
(scores of its samples); C's update runs T's and D's. So a KDGAN round adds two no-grad forwards
of each network to the three supervised steps; NaGAN adds one of C and one of D; DISTN adds none
(the frozen teacher's logits are cached by ``Distn.begin_training``).

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
from kdgan.metrics import predict_logits
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


def install_output_cache(trainer: Trainer) -> dict[str, int]:
    """Monkeypatch ``trainer`` with the proposed fixed-player output cache (see module docstring).

    While role R updates (between ``_activate(R)`` and the next ``_activate``), a forward of any
    other player on a training batch is served from that player's eval-mode logits on the whole
    training set, computed on first use in chunks of max(batch size, 128) examples (so that at
    batch 128 a fill does exactly the forwards it replaces; small batches are grouped, which is
    cheaper per example on CPU). A player's entry is dropped when it starts updating;
    everything is dropped when the epoch ends (``_activate("")``), so evaluation is untouched.
    Returns counters (forwards served, cache fills)."""
    method = trainer.method
    original_forward, original_activate = method.forward, trainer._activate
    state: dict[str, Any] = {"active": None, "cache": {}}
    counts = {"served": 0, "filled": 0}

    def activate(role: str) -> None:
        original_activate(role)
        state["active"] = role or None
        if not role:
            state["cache"].clear()
        else:
            state["cache"].pop(role, None)

    def forward(role: str, batch: Batch) -> torch.Tensor:
        active = state["active"]
        if active is None or role == active or batch.index is None or trainer.augment is not None:
            return original_forward(role, batch)
        cached = state["cache"].get(role)
        if cached is None:
            cached = predict_logits(lambda b: original_forward(role, b), trainer.splits.train,
                                    max(trainer.batch_size, FILL_CHUNK))
            state["cache"][role] = cached
            counts["filled"] += 1
        counts["served"] += 1
        return cached[batch.index]

    method.forward = forward  # type: ignore[method-assign]
    trainer._activate = activate  # type: ignore[method-assign]
    return counts


def install_lean_steps(trainer: Trainer) -> None:
    """Monkeypatch two per-step costs of the engine that matter for small networks:

    1. ``Trainer._train_epoch`` keeps, per step, a running sum and the first non-finite step with
       about seven tiny tensor ops (``isfinite``, ``~``, ``<``, ``&``, ``where``, ``nan_to_num``,
       ``+=``); here each step only appends ``loss.detach()`` and the sums and the first bad step
       are computed once per role from ``torch.stack`` (same values, same single read per epoch);
    2. ``Method.cross_entropy`` with class-index targets builds a one-hot target and a soft
       cross-entropy (one_hot, cast, log_softmax, mul, sum, mean, neg); here it is
       ``F.cross_entropy(logits, y)`` (same value for the softmax label loss)."""
    method = trainer.method
    original_ce = method.cross_entropy

    def cross_entropy(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        if method.label_loss == "softmax" and not batch.y.is_floating_point():
            return F.cross_entropy(logits, batch.y)
        return original_ce(logits, batch)

    method.cross_entropy = cross_entropy  # type: ignore[method-assign]
    trainer._train_epoch = lambda stage, epoch: lean_train_epoch(trainer, stage, epoch)  # type: ignore


def lean_train_epoch(self: Trainer, stage: Any, epoch: int) -> dict[str, float]:
    """``Trainer._train_epoch`` (single process, as of this benchmark) with the per-step loss
    bookkeeping moved out of the loop; batching, autocast, steps, the divergence check and the
    scheduler steps are unchanged."""
    import contextlib
    from dataclasses import replace as dc_replace

    from kdgan.errors import DivergenceError

    dist = getattr(self, "dist", None)
    assert dist is None or not dist.enabled, "the lean variant is single-process only"
    method = self.method
    if not stage.pretrain:
        method.start_epoch(epoch, stage.epochs)
    loss_fn = method.pretrain_loss if stage.pretrain else method.loss
    autocast = getattr(self, "autocast", contextlib.nullcontext)
    batch_size = getattr(self, "local_batch", self.batch_size)
    batch_kwargs = {"shard": (dist.rank, dist.world)} if dist is not None else {}
    stacked = []
    for role in stage.roles:
        player = method.players[role]
        self._activate(role)
        losses = []
        for _ in range(player.passes):
            for batch in self.splits.train.batches(batch_size, self.batches, **batch_kwargs):
                if self.augment is not None:
                    batch = dc_replace(batch, x=self.augment(batch.x, self.batches))
                with autocast():
                    loss = loss_fn(role, batch)
                self._step(player, loss)
                losses.append(loss.detach())
        values = torch.stack(losses).float() if losses else torch.zeros(0, device=self.device)
        finite = torch.isfinite(values)
        steps = torch.arange(len(values), device=self.device)
        first_bad = torch.where(finite, len(values), steps).min() if len(values) else torch.tensor(0)
        first_bad = torch.where(first_bad == len(values), -1, first_bad)
        mean = torch.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0).sum() / max(len(values), 1)
        stacked.append(torch.stack([mean, first_bad.to(mean.dtype)]))
    self._activate("")
    read = torch.stack(stacked).tolist()  # one read per epoch
    values_by_role = dict(zip(stage.roles, read, strict=True))
    for role, (_, bad) in values_by_role.items():
        if bad >= 0 and self.config.on_nonfinite == "stop":
            raise DivergenceError(f"the {role}'s loss became NaN or infinite at step {int(bad)} of epoch {epoch}")
    if not stage.pretrain:
        for role in stage.roles:
            if method.players[role].scheduler is not None:
                method.players[role].scheduler.step()
    return {f"loss_{role}": mean for role, (mean, _) in values_by_role.items()}


def bookkeeping_cost_us(device: torch.device, steps: int = 2000) -> dict[str, float]:
    """Microseconds per step of the engine's per-step loss bookkeeping, and of a list append."""
    loss = torch.tensor(0.5, device=device)

    def engine() -> None:
        total = torch.zeros((), device=device)
        first_bad = torch.full((), -1, device=device)
        for step in range(steps):
            detached = loss.detach()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(detached), step, first_bad)
            total += torch.nan_to_num(detached, nan=0.0, posinf=0.0, neginf=0.0)

    def lean() -> None:
        kept = [loss.detach() for _ in range(steps)]
        torch.nan_to_num(torch.stack(kept)).sum()

    times = interleaved({"engine": engine, "lean": lean}, 5, device)
    return {k: 1e6 * median(v) / steps for k, v in times.items()}


@dataclass
class Setup:
    name: str
    specs: dict[str, dict[str, Any]]
    batch_size: int
    batches: int
    passes: dict[str, int]
    reps: int
    lean: bool = True  # also time the lean-bookkeeping variants
    check: bool = True  # check that the cache leaves the round's result unchanged


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


EXTRA_FORWARDS = {  # no-grad forwards of other players per batch of a round, by the updated player
    "kdgan": {"discriminator": ("student", "teacher"), "teacher": ("student", "discriminator"),
              "student": ("teacher", "discriminator")},
    "nagan": {"discriminator": ("student",), "student": ("discriminator",)},
    "distn": {"student": ()},
}


def use_fused_adam(players: dict[str, Player]) -> dict[str, Player]:
    """Replace each player's Adam (``foreach=True``, as ``Player.create`` builds it) by the same
    Adam with ``fused=True`` (one kernel for the whole update; on CPU since torch 2.4)."""
    for player in players.values():
        old = player.optimizer
        assert isinstance(old, torch.optim.Adam) and not isinstance(old, torch.optim.AdamW)
        group = old.param_groups[0]
        player.optimizer = torch.optim.Adam(player.module.parameters(), lr=group["lr"], betas=group["betas"],
                                            eps=group["eps"], weight_decay=group["weight_decay"], fused=True)
    return players


def max_param_diff(a: dict[str, Player], b: dict[str, Player]) -> float:
    diff = 0.0
    for role in a:
        for pa, pb in zip(a[role].module.parameters(), b[role].module.parameters(), strict=True):
            diff = max(diff, (pa.detach() - pb.detach()).abs().max().item())
    return diff


def check_cache_equivalence(players: dict[str, Player], method_name: str, splits: Splits,
                            batch_size: int) -> dict[str, float]:
    """Largest parameter difference after one round, same seed and batches: the cached round, and
    the cached round with the lean steps, each against the round as shipped."""
    results = {}
    for label in ("round", "round-cached", "round-cached-lean", "round-all"):
        ps = clone_players(players)  # same weights, fresh optimizers, every time
        if label == "round-all":
            use_fused_adam(ps)
        method = METHODS[method_name](ps)
        trainer = Trainer(method, splits, TrainConfig(epochs=1, progress=False, checkpoint_every=0),
                          batch_size=batch_size)
        if "cached" in label or label == "round-all":
            install_output_cache(trainer)
        if label.endswith("lean") or label == "round-all":
            install_lean_steps(trainer)
        trainer._activate("")  # as Trainer.fit does before begin_training
        method.begin_training(splits.train, augmented=False)
        torch.manual_seed(123)
        trainer.batches.manual_seed(123)
        trainer._train_epoch(trainer.stages[-1], 0)
        results[label] = ps
    return {label: max_param_diff(results["round"], ps) for label, ps in results.items() if label != "round"}


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
        variants: dict[str, Any] = {}
        plain_players = clone_players({r: base[r] for r in schedule})
        gen = torch.Generator().manual_seed(0)
        variants["plain"] = lambda pp=plain_players, g=gen, s=schedule: plain_loop(pp, s, train, setup_.batch_size, g)
        fused_players = use_fused_adam(clone_players({r: base[r] for r in schedule}))
        gen_f = torch.Generator().manual_seed(0)
        variants["plain-fused"] = lambda pp=fused_players, g=gen_f, s=schedule: plain_loop(pp, s, train,
                                                                                           setup_.batch_size, g)
        labels = ["plain-engine", "round", "round-cached"]
        if setup_.lean:
            labels += ["plain-engine-lean", "round-cached-lean"]
        labels.append("round-all")
        counters: dict[str, int] = {}
        for label in labels:
            if label.startswith("plain"):
                method: Method = PlainRound(clone_players(base), schedule)
            else:
                players = clone_players({r: base[r] for r in roles})
                method = cls(use_fused_adam(players) if label == "round-all" else players)
            trainer = Trainer(method, splits, config, batch_size=setup_.batch_size)
            if "cached" in label or label == "round-all":
                found = install_output_cache(trainer)
                if label == "round-cached":
                    counters = found
            if label.endswith("lean") or label == "round-all":
                install_lean_steps(trainer)
            trainer._activate("")
            method.begin_training(train, augmented=False)
            variants[label] = lambda t=trainer: t._train_epoch(t.stages[-1], 0)
        times = interleaved(variants, setup_.reps, device, warmup=1)

        def ratio(name: str, times: dict[str, list[float]] = times) -> float:
            return median([t / p for t, p in zip(times[name], times["plain"], strict=True)])

        steps = sum(comps[r]["step"] * base[r].passes for r in schedule)
        extra = sum(comps[o]["forward"] * base[r].passes for r in schedule for o in EXTRA_FORWARDS[method_name][r])
        n_steps = sum(base[r].passes for r in schedule) * setup_.batches
        row = {
            "setup": setup_.name, "method": method_name, "batch_size": setup_.batch_size,
            "batches": setup_.batches, "passes": {r: base[r].passes for r in schedule}, "reps": setup_.reps,
            "seconds": {k: median(v) for k, v in times.items()}, "all_seconds": times,
            "ratios": {k: ratio(k) for k in times if k != "plain"},
            "ratios_of_min": {k: min(v) / min(times["plain"]) for k, v in times.items() if k != "plain"},
            "speedup_all": median([a / b for a, b in zip(times["round"], times["round-all"], strict=True)]),
            "speedup_all_of_min": min(times["round"]) / min(times["round-all"]),
            "ratio_all_to_plain_fused": median([a / b for a, b in zip(times["round-all"], times["plain-fused"],
                                                                       strict=True)]),
            "predicted_ratio_from_components": (steps + extra) / steps,
            "ms_per_step_plain": 1000 * median(times["plain"]) / n_steps,
            "examples_per_s": {k: len(train) / median(v) for k, v in times.items()},
            "cache_fills_per_round": counters.get("filled", 0) / (setup_.reps + 1),
            "cache_max_param_diff": (check_cache_equivalence({r: base[r] for r in roles}, method_name, splits,
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
        Setup("mnist-b128", mnist_specs(), 128, 1, {}, args.reps or (3 if quick else 7), lean=False, check=not quick),
        Setup("digits-b10", digits_specs(), 10, 10, {}, args.reps or (9 if quick else 21)),
        Setup("digits-b10-paperpasses", digits_specs(), 10, 5, paper_passes, args.reps or (3 if quick else 7),
              lean=not quick),
    ]
    if not quick:
        setups.insert(1, Setup("mnist-b10", mnist_specs(), 10, 10, {}, args.reps or 5, lean=True))
    if device.type == "cuda":
        setups.insert(1, Setup("mnist-b128x8", mnist_specs(), 128, 8, {}, args.reps or 5, lean=True))
    if args.only:
        setups = [s for s in setups if s.name in args.only.split(",")]
    results = []
    for s in setups:
        n = s.batch_size * s.batches
        data = "mnist" if s.name.startswith("mnist") else "digits"
        splits = load_data(data, args.data_dir, n, 100, seed=0).to(device)
        print(f"{s.name}: {n} examples, batch {s.batch_size}, {s.reps} repetitions", flush=True)
        results.append(run_setup(s, splits, device, comp_reps=5 if quick else 15))
    bookkeeping = bookkeeping_cost_us(device)

    headers = ["setup", "method", "passes D/T/C", "plain s", "round s", "round/plain", "round/plain (min)",
               "cached/plain", "cached/plain (min)", "predicted", "max |dθ| cached", "max |dθ| cached+lean"]
    rows = []
    for r in results:
        for m in r["methods"]:
            ps = m["passes"]
            passes = "/".join(str(ps.get(k, "-")) for k in ("discriminator", "teacher", "student"))
            diff = m["cache_max_param_diff"]
            rows.append([m["setup"], m["method"], passes, m["seconds"]["plain"], m["seconds"]["round"],
                         m["ratios"]["round"], m["ratios_of_min"]["round"], m["ratios"]["round-cached"],
                         m["ratios_of_min"]["round-cached"], m["predicted_ratio_from_components"],
                         "not checked" if diff is None else diff["round-cached"],
                         "not checked" if diff is None else diff["round-cached-lean"]])
    text = table(headers, rows)
    def both(m: dict, key: str) -> str:
        if key not in m["ratios"]:
            return "-"
        return f"{m['ratios'][key]:.3f} / {m['ratios_of_min'][key]:.3f}"

    lean_rows = [[m["setup"], m["method"], *(both(m, k) for k in ("plain-engine", "plain-engine-lean", "round",
                                                                   "round-cached", "round-cached-lean"))]
                 for r in results for m in r["methods"]]
    text += ("\n\nengine variants, time / plain: median of per-repetition ratios / ratio of the fastest "
             "repetitions:\n") + table(
        ["setup", "method", "plain-engine", "plain-engine-lean", "round", "round-cached", "round-cached-lean"],
        lean_rows)
    all_rows = [[m["setup"], m["method"], m["seconds"]["round"], m["seconds"]["round-all"],
                 f"{m['speedup_all']:.2f}x / {m['speedup_all_of_min']:.2f}x", m["seconds"]["plain-fused"],
                 m["ratio_all_to_plain_fused"],
                 "not checked" if m["cache_max_param_diff"] is None else m["cache_max_param_diff"]["round-all"]]
                for r in results for m in r["methods"]]
    text += ("\n\nall three proposals together (output cache + lean steps + fused Adam) against the engine as "
             "shipped:\n") + table(["setup", "method", "round s", "proposed s", "speed-up (median / min)",
                                    "plain-fused s", "proposed / plain-fused", "max |dθ| proposed"], all_rows)
    comp_rows = [[r["setup"], role, c["step"], c["forward"], c["forward"] / c["step"]]
                 for r in results for role, c in r["components_ms"].items()]
    text += "\n\nper network, one batch (ms, median):\n" + table(
        ["setup", "network", "plain step", "no-grad forward", "forward/step"], comp_rows)
    text += (f"\n\nper-step loss bookkeeping of Trainer._train_epoch: {bookkeeping['engine']:.1f} us/step; "
             f"append + one stack per role: {bookkeeping['lean']:.1f} us/step")
    if device.type == "cuda":
        tp = [[m["setup"], m["method"], *(m["examples_per_s"].get(k, "-") for k in ("plain", "round", "round-cached"))]
              for r in results for m in r["methods"]]
        text += "\n\nGPU throughput (training examples per second, one round over them):\n" + table(
            ["setup", "method", "plain", "round", "round-cached"], tp)
    results = {"setups": results, "bookkeeping_us_per_step": bookkeeping}
    finish(args, "step_cost", info, results, began, text)


if __name__ == "__main__":
    main()
