#!/usr/bin/env bash
# Mutation testing of the maths and the training code with mutmut 3 (not part of CI: it takes
# tens of minutes). Each set runs in its own copy of src/ and tests/ under .mutation/SET/, so
# nothing mutmut writes (its mutants/ folder, its result files) ever lands in src/.
#
#   pip install "mutmut==3.8.1"        # into the project's venv; not in the dev extra (it pulls textual, libcst)
#   scripts/mutation.sh maths          # methods/ (incl. losses.py, sampling.py)
#   scripts/mutation.sh engine         # training/engine.py, evaluator.py, cache.py, players.py, then
#                                      # scripts/mutation_distributed.py (the torchrun tests per survivor)
#   scripts/mutation.sh checks         # training/checks.py, checkpoint.py, stages.py (fast direct tests)
#   scripts/mutation.sh all            # the three, one after the other (the default)
#
# One worker and one torch thread: the development machine has two shared cores. Results are
# summarised at the end; `cd .mutation/SET && mutmut show NAME` shows one mutant's diff, and
# `mutmut results --all true` lists every mutant's status. Never run `mutmut apply` here.
# docs/RELIABILITY.md ("Mutation testing") records the last run's counts and survivors.
set -euo pipefail
set -f  # the file patterns below are for mutmut, not for the shell

repo=$(cd "$(dirname "$0")/.." && pwd)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

run_set() {
    local name=$1 only=$2 tests=$3
    local work=$repo/.mutation/$name
    rm -rf "$work"
    mkdir -p "$work"
    cp -r "$repo/src" "$repo/tests" "$repo/pyproject.toml" "$work/"
    find "$work" -name __pycache__ -prune -exec rm -rf {} +
    # mutants are forked from one process: tqdm's default lock is a multiprocessing semaphore that
    # they all share, and a mutant killed while holding it (a timeout) blocked every later mutant
    # at its first progress bar. A per-process lock and no monitor thread make forking safe.
    printf '\n\nimport threading  # added by scripts/mutation.sh\n\nimport tqdm\n\n%s\n%s\n' \
        "tqdm.std.tqdm.set_lock(threading.RLock())" "tqdm.std.tqdm.monitor_interval = 0" >> "$work/tests/conftest.py"
    cat > "$work/setup.cfg" <<EOF
[mutmut]
source_paths = src
only_mutate =
$(printf '    %s\n' $only)
pytest_add_cli_args = -p no:cacheprovider -q
pytest_add_cli_args_test_selection =
$(printf '    %s\n' $tests)
EOF
    echo "== mutation set '$name' in $work ($(python -m mutmut --version))"
    (cd "$work" && python -m mutmut run --max-children 1 >run.log 2>&1) || {
        tail -n 30 "$work/run.log"
        return 1
    }
    (cd "$work" && python -m mutmut results --all true >results.txt)
    python - "$work/results.txt" "$name" <<'EOF'
import collections, sys
counts = collections.Counter(line.rsplit(": ", 1)[1].strip() for line in open(sys.argv[1]) if ": " in line)
total = sum(counts.values())
killed = counts["killed"] + counts["timeout"]
print(f"{sys.argv[2]}: {total} mutants, " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
print(f"{sys.argv[2]}: killed (incl. timeouts) {killed}/{total} = {100 * killed / max(total, 1):.1f} %")
EOF
}

which=${1:-all}
if [[ ! $which =~ ^(maths|engine|checks|all)$ ]]; then
    echo "usage: scripts/mutation.sh [maths|engine|checks|all]" >&2
    exit 2
fi
if [[ $which =~ ^(maths|all)$ ]]; then
    run_set maths "src/kdgan/methods/*" \
        "tests/test_losses.py tests/test_sampling.py tests/test_method_maths.py tests/test_modern_baselines.py
         tests/test_game_signal.py tests/test_game_recipe.py tests/test_methods.py"
fi
# The training code is split in two sets so that each mutant runs only fast tests: the loop and its
# parts against end-to-end runs on tiny data; the checks (plain functions) against direct calls.
if [[ $which =~ ^(engine|all)$ ]]; then
    run_set engine "src/kdgan/training/engine.py src/kdgan/training/evaluator.py src/kdgan/training/cache.py
                    src/kdgan/training/players.py" \
        "tests/test_engine.py tests/test_cache.py tests/test_training_options.py tests/test_training_checks.py
         tests/test_game_recipe.py tests/test_game_signal.py tests/test_methods.py tests/test_bad_inputs.py
         tests/test_engine_details.py"
    # mutmut never picks the torchrun tests (they run the engine in subprocesses): rerun them
    # against each survivor that touches the data-parallel code
    python "$repo/scripts/mutation_distributed.py"
fi
if [[ $which =~ ^(checks|all)$ ]]; then
    run_set checks "src/kdgan/training/checks.py src/kdgan/training/checkpoint.py src/kdgan/training/stages.py" \
        "tests/test_training_checks.py"
fi
