"""Cost of one optimizer step for the MNIST and digits players: Adam with ``foreach=True`` (as
``kdgan.training.players.Player.create`` builds it), ``fused=True`` and the plain for-loop.

Gradients are fixed random tensors; each variant updates its own copy of the parameters. Median
and minimum of many steps after warm-up (CPU time with one thread, else wall clock synchronised).

    python benchmarks/optimizer_step.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import copy
import time

import torch
from _common import digits_specs, finish, interleaved, machine, median, mnist_specs, parser, setup, table

from kdgan.models import build_model, count_parameters

KINDS = {"foreach": {"foreach": True}, "fused": {"fused": True}, "for-loop": {"foreach": False}}


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    reps = 10 if args.quick else 30
    torch.manual_seed(0)
    rows, results = [], []
    for name, specs, shape in (("mnist", mnist_specs(), (1, 28, 28)), ("digits", digits_specs(), (1, 8, 8))):
        for role in ("student", "teacher"):
            base = build_model(specs[role], shape, 10).to(device)
            grads = [torch.randn_like(q) * 1e-3 for q in base.parameters()]
            steps = {}
            for kind, kwargs in KINDS.items():
                module = copy.deepcopy(base)
                for q, g in zip(module.parameters(), grads, strict=True):
                    q.grad = g.clone()
                steps[kind] = torch.optim.Adam(module.parameters(), lr=1e-3, **kwargs).step
            times = interleaved(steps, reps, device, warmup=3)
            entry = {"setup": name, "role": role, "parameters": count_parameters(base),
                     "median_ms": {k: 1000 * median(v) for k, v in times.items()},
                     "min_ms": {k: 1000 * min(v) for k, v in times.items()}}
            results.append(entry)
            med = entry["median_ms"]
            rows.append([name, role, f"{entry['parameters']:,}", med["foreach"], med["fused"], med["for-loop"],
                         med["foreach"] / med["fused"]])
    text = table(["setup", "network", "parameters", "foreach ms", "fused ms", "for-loop ms", "foreach/fused"], rows)
    text += f"\n\nAdam step, medians of {reps} steps after 3 warm-up steps."
    finish(args, "optimizer_step", info, results, began, text)


if __name__ == "__main__":
    main()
