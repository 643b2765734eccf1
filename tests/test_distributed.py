"""Data-parallel training through torchrun: sharding, equivalence with one process, resuming."""

import json
import os
import subprocess
import sys

import pytest
import torch

from kdgan.data import TensorData
from kdgan.training.build import load_student

from .conftest import tiny_overrides


def test_shards_are_disjoint_and_form_the_global_batches():
    data = TensorData(torch.arange(40.0).unsqueeze(1), torch.arange(40) % 10, 10)
    single = [b.index.tolist() for b in data.batches(8, torch.Generator().manual_seed(3))]
    ranks = [[b.index.tolist() for b in data.batches(4, torch.Generator().manual_seed(3), shard=(r, 2))]
             for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(single)
    for k, global_batch in enumerate(single):
        assert not set(ranks[0][k]) & set(ranks[1][k])
        assert sorted(ranks[0][k] + ranks[1][k]) == sorted(global_batch)


def test_uneven_tail_is_dropped_so_ranks_step_together():
    data = TensorData(torch.arange(41.0).unsqueeze(1), torch.arange(41) % 10, 10)
    counts = [sum(len(b.index) for b in data.batches(4, torch.Generator().manual_seed(0), shard=(r, 2)))
              for r in range(2)]
    assert counts == [20, 20]


def _train(out, nproc, extra=(), resume=False):
    args = ["train", "digits_kdgan", "--out", str(out), *(["--resume"] if resume else [])]
    for item in [*tiny_overrides(epochs=3), *extra]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if nproc == 1:
        command = [sys.executable, "-m", "kdgan", *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "kdgan", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "final.json").read_text())


DETERMINISTIC = ["method=supervised", "options={}", "student.pretrain_epochs=0", "student.model.dropout=0.0",
                 "data.batch_size=10"]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    one = _train(tmp_path / "one", 1, DETERMINISTIC)
    two = _train(tmp_path / "two", 2, DETERMINISTIC)
    a, b = load_student(tmp_path / "one"), load_student(tmp_path / "two")
    diffs = [(p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters())]
    assert max(diffs) < 1e-4  # the same updates up to the order of floating-point sums
    assert two["val"]["accuracy"] == pytest.approx(one["val"]["accuracy"], abs=0.01)
    assert two["selected_epoch"] == one["selected_epoch"]


def test_kdgan_runs_and_resumes_under_torchrun(tmp_path):
    first = _train(tmp_path / "kd", 2)
    assert first["test"]["accuracy"] > 0.2
    lines = (tmp_path / "kd" / "metrics.jsonl").read_text().splitlines()
    epochs = [json.loads(line)["epoch"] for line in lines if '"train"' in line]
    assert epochs == [-1, 0, 1, 2]  # the start (digits_kdgan has train.select_start), then 3 game epochs, once each
    checkpoint = torch.load(tmp_path / "kd" / "last.pt", weights_only=False)
    assert len(checkpoint["rng"]) == 2  # one generator state per rank
    resumed = _train(tmp_path / "kd", 2, resume=True)  # every rank loads the finished checkpoint
    assert resumed["test"] == first["test"] and resumed["selected_epoch"] == first["selected_epoch"]
