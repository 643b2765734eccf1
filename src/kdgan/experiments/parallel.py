"""Independent runs in parallel (``--jobs J``): J worker processes of one torch thread each.

A run's result depends only on its own config and seed (every run seeds every generator it draws
from), so the same runs in any number of processes give the same numbers. Workers are forked from
a fork server (spawned where there is none), never from this process, so no worker inherits its
threads or locks; the server imports torch and the training code once, so the workers of every
pool start without paying for those imports again. Each worker sets torch to one thread, which
on a shared CPU is much faster than several threads per process.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

import torch

from kdgan.errors import ConfigError

Task = TypeVar("Task")
Result = TypeVar("Result")

# What the fork server imports once for all workers: the driver, and the slow imports of a
# worker's first run (torch._dynamo by the first optimizer, sklearn.datasets by the digits reader).
WORKER_PRELOAD = ["kdgan.experiments.comparison", "torch._dynamo", "sklearn.datasets"]


def _one_thread() -> None:
    torch.set_num_threads(1)


def worker_context() -> multiprocessing.context.BaseContext:
    """The fork server's context where the platform has one (it preloads :data:`WORKER_PRELOAD`
    when this process starts it first), else spawn."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_PRELOAD)
    return context


def run_all(
    fn: Callable[[Task], Result], tasks: Sequence[Task], jobs: int = 1,
    done: Callable[[Task, Result], None] | None = None,
) -> list[Result]:
    """``[fn(task) for task in tasks]``, in ``jobs`` processes when ``jobs > 1``. ``done(task,
    result)`` is called in this process as each run finishes (e.g. to record it, so that a killed
    comparison keeps every finished run). ``fn`` and the tasks must be picklable (a module-level
    function and plain data). The first failing run's error is raised once the others stop."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if jobs == 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            results.append(fn(task))
            if done is not None:
                done(task, results[-1])
        return results
    with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=worker_context(), initializer=_one_thread) as pool:
        futures = {pool.submit(fn, task): i for i, task in enumerate(tasks)}
        results: list[Result | None] = [None] * len(tasks)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)  # record each run as it ends
            for future in finished:
                index = futures[future]
                if future.exception() is not None:
                    for other in pending:
                        other.cancel()
                    raise future.exception()
                results[index] = future.result()
                if done is not None:
                    done(tasks[index], results[index])
    return results  # type: ignore[return-value]
