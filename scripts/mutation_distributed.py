"""The torchrun half of the engine's mutation testing, which mutmut cannot do by itself.

mutmut 3 picks the tests for a mutant by the functions each test calls in its own process; the
tests of data-parallel training (tests/test_distributed.py) run torchrun in subprocesses, so they
are never picked, and every mutant of a branch that only runs under torchrun "survives". This
script reruns those tests against each such survivor of a finished `scripts/mutation.sh engine`:
the subprocesses inherit ``MUTANT_UNDER_TEST`` (mutmut's trampolines read it) and a PYTHONPATH
that puts the mutated copy of the package first.

    OMP_NUM_THREADS=1 python scripts/mutation_distributed.py          # after scripts/mutation.sh engine
    OMP_NUM_THREADS=1 python scripts/mutation_distributed.py NAME...  # these survivors only

A survivor is tried when its diff touches the data-parallel code (ranks, shards, gathers,
all-reduces, broadcasts, the main process), or when it is named (a line inside a data-parallel
branch that names none of them); it prints one line per mutant and the counts, and adds them to
.mutation/engine/distributed.txt (name: killed | survived; a later line wins).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".mutation" / "engine"
MUTANTS = WORK / "mutants"
# words of the data-parallel code; `stacked` and `means[` are the loss reduction inside
# `if self.dist.enabled:` in Trainer._train_epoch, whose lines name nothing else of it
DISTRIBUTED = re.compile(r"\bdist\b|\.dist\.|world|rank|shard|gather|all_reduce|broadcast|average_gradients|is_main"
                         r"|\bstacked\b|means\[")
TESTS = ["tests/test_distributed.py", "-k", "torchrun or two_processes"]


def survivors() -> list[str]:
    listing = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=WORK,
                             capture_output=True, text=True, check=True).stdout
    return [line.split(":")[0].strip() for line in listing.splitlines() if line.strip().endswith(": survived")]


def changed_lines(name: str) -> str:
    diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=WORK, capture_output=True,
                          text=True, check=True).stdout
    return "\n".join(line for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---"))


def killed(name: str) -> bool:
    env = {**os.environ, "MUTANT_UNDER_TEST": name, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(MUTANTS / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TESTS],
                          cwd=MUTANTS, env=env, capture_output=True, text=True, timeout=900)
    return done.returncode != 0


def main() -> int:
    if not (MUTANTS / "src").is_dir():
        print(f"no mutants in {MUTANTS}: run scripts/mutation.sh engine first", file=sys.stderr)
        return 2
    named = sys.argv[1:]
    tried = named or [name for name in survivors() if DISTRIBUTED.search(changed_lines(name))]
    results = []
    for name in tried:
        status = "killed" if killed(name) else "survived"
        results.append(f"{name}: {status}")
        print(results[-1], flush=True)
    with open(WORK / "distributed.txt", "a" if named else "w") as handle:
        handle.write("\n".join(results) + "\n")
    dead = sum(line.endswith("killed") for line in results)
    print(f"distributed: {len(tried)} survivors touch data-parallel code; torchrun tests kill {dead}, "
          f"{len(tried) - dead} survive")
    return 0


if __name__ == "__main__":
    sys.exit(main())
