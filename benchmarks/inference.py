"""Inference cost of the deployed student against the teacher: latency and size.

For the paper's MNIST players (student MLP 784-800-800-10, teacher LeNet conv32/conv64/fc1024)
and the digits players (configs/digits_kdgan.yaml), in eval mode under ``torch.inference_mode``:
latency at batch 1 and batch 256 (median over many runs after warm-up; wall clock and this
process's CPU time, which a shared machine disturbs less), throughput at batch 256, parameter
count and the bytes of the serialised state_dict (``torch.save``). Weights are random: latency
does not depend on their values.

    python benchmarks/inference.py [--device cpu|cuda] [--quick] [--out FILE.json] [--threads N]
"""

from __future__ import annotations

import io
import statistics
import time

import torch
from _common import digits_specs, finish, machine, mnist_specs, parser, setup, sync, table

from kdgan.models import build_model, count_parameters


def latency(module: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int, device: torch.device) -> dict:
    walls, cpus = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            module(x)
        sync(device)
        for _ in range(runs):
            c, w = time.process_time(), time.perf_counter()
            module(x)
            sync(device)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
    return {"wall_ms": 1000 * statistics.median(walls), "cpu_ms": 1000 * statistics.median(cpus),
            "wall_ms_p90": 1000 * sorted(walls)[int(0.9 * (len(walls) - 1))], "runs": runs}


def state_bytes(module: torch.nn.Module) -> int:
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    args = p.parse_args()
    device = setup(args)
    began = time.perf_counter()
    info = machine(device)
    info["clock"] = "wall clock and process CPU time, medians"
    setups = {"mnist": (mnist_specs(), (1, 28, 28)), "digits": (digits_specs(), (1, 8, 8))}
    runs_small, runs_big = (100, 10) if args.quick else (500, 40)
    rows, results = [], []
    torch.manual_seed(0)
    for name, (specs, shape) in setups.items():
        for role in ("student", "teacher"):
            module = build_model(specs[role], shape, 10).to(device).eval()
            entry = {"setup": name, "role": role, "model": specs[role], "parameters": count_parameters(module),
                     "state_dict_bytes": state_bytes(module)}
            for batch, runs in ((1, runs_small), (256, runs_big)):
                x = torch.rand(batch, *shape, device=device)
                entry[f"batch{batch}"] = latency(module, x, runs, max(5, runs // 10), device)
            entry["throughput_256_per_s"] = 256 / (entry["batch256"]["wall_ms"] / 1000)
            results.append(entry)
    for name in setups:
        s, t = (next(e for e in results if e["setup"] == name and e["role"] == r) for r in ("student", "teacher"))
        for e in (s, t):
            rows.append([name, e["role"], f"{e['parameters']:,}", f"{e['state_dict_bytes'] / 1e6:.2f} MB",
                         e["batch1"]["wall_ms"], e["batch1"]["cpu_ms"], e["batch256"]["wall_ms"],
                         e["batch256"]["cpu_ms"], e["throughput_256_per_s"]])
        rows.append([name, "teacher/student", f"{t['parameters'] / s['parameters']:.1f}x",
                     f"{t['state_dict_bytes'] / s['state_dict_bytes']:.1f}x",
                     t["batch1"]["wall_ms"] / s["batch1"]["wall_ms"], t["batch1"]["cpu_ms"] / s["batch1"]["cpu_ms"],
                     t["batch256"]["wall_ms"] / s["batch256"]["wall_ms"],
                     t["batch256"]["cpu_ms"] / s["batch256"]["cpu_ms"], "-"])
    text = table(["setup", "network", "parameters", "state_dict", "b1 wall ms", "b1 CPU ms", "b256 wall ms",
                  "b256 CPU ms", "b256 examples/s"], rows)
    text += (f"\n\n{device.type}, {torch.get_num_threads()} thread(s), eval mode, torch.inference_mode; medians of "
             f"{runs_small} runs at batch 1 and {runs_big} at batch 256 after warm-up.")
    finish(args, "inference", info, results, began, text)


if __name__ == "__main__":
    main()
