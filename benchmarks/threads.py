"""Seconds per training step of the paper's MNIST student (MLP 784-800-800-10, batch 128, Adam)
with 1 and with 2 CPU threads, each in a fresh process, interleaved: the basis of the default
``threads: 1``. Run it as the machine is normally used (e.g. with another job running).

    python benchmarks/threads.py [--steps 50] [--rounds 3] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import time, torch
torch.set_num_threads({threads})
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 800), torch.nn.ReLU(),
                          torch.nn.Linear(800, 800), torch.nn.ReLU(), torch.nn.Linear(800, 10))
opt = torch.optim.Adam(net.parameters(), fused=True)
x, y = torch.rand(128, 1, 28, 28), torch.randint(0, 10, (128,))
for _ in range(5):
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
start = time.perf_counter()
for _ in range({steps}):
    opt.zero_grad(); torch.nn.functional.cross_entropy(net(x), y).backward(); opt.step()
print((time.perf_counter() - start) / {steps})
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    times: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for threads in (1, 2):
            code = CHILD.format(threads=threads, steps=args.steps)
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
            times[threads].append(float(out.stdout.strip()))
    load = os.getloadavg()
    median = {t: statistics.median(v) for t, v in times.items()}
    print("| threads | ms per step (median of rounds) |\n|---|---|")
    for t, v in median.items():
        print(f"| {t} | {v * 1000:.1f} |")
    print(f"2 threads / 1 thread: {median[2] / median[1]:.2f}x; load average after: {load[0]:.2f}")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"seconds_per_step": times, "median": median, "load_after": load}, handle, indent=1)


if __name__ == "__main__":
    main()
