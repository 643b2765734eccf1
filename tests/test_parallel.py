"""experiments/parallel.run_all: the same results in any number of processes."""

from __future__ import annotations

import pytest
import torch

from kdgan.errors import ConfigError
from kdgan.experiments.parallel import run_all


def seeded_draw(seed: int) -> tuple[int, float, int]:
    """A run in miniature: seeded, returns its seed, a random number and its torch thread count."""
    torch.manual_seed(seed)
    if seed == 99:
        raise ValueError("run 99 failed")
    return seed, float(torch.rand(())), torch.get_num_threads()


def test_processes_give_the_sequential_results_in_task_order_with_one_thread_each():
    sequential = run_all(seeded_draw, [3, 1, 2, 5], jobs=1)
    recorded = []
    parallel = run_all(seeded_draw, [3, 1, 2, 5], jobs=2, done=lambda task, result: recorded.append(task))
    assert [r[:2] for r in parallel] == [r[:2] for r in sequential]
    assert [r[0] for r in parallel] == [3, 1, 2, 5]
    assert {r[2] for r in parallel} == {1}  # each worker runs torch on one thread
    assert sorted(recorded) == [1, 2, 3, 5]  # every finished run reported once, as it finished


def test_a_failing_run_raises_its_error_and_bad_jobs_are_refused():
    with pytest.raises(ValueError, match="run 99 failed"):
        run_all(seeded_draw, [1, 99, 2], jobs=2)
    with pytest.raises(ConfigError, match="--jobs must be >= 1, got 0"):
        run_all(seeded_draw, [1], jobs=0)
