#!/usr/bin/env bash
# The equal-tuning-budget rows of docs/RESULTS.md (issue 15): every tunable method of Table 1 gets
# the same number of `kdgan tune` trials on the shipped mnist_kdgan config at n=100 (seed 0's
# validation split, never test), then `kdgan reproduce table1 --tuned` runs each method at its
# best trial for SEEDS seeds.
#
#   KDGAN_DATA=/path/to/data scripts/tuned_mnist.sh [OUT] [TRIALS] [SEEDS] [JOBS]   # defaults: runs/tuned-mnist 20 5 2
#
# Each study is topped up to TRIALS finished or pruned trials, so a killed run continues where it
# stopped without giving one method more trials than another. OUT/table1 resumes like any
# `kdgan reproduce` folder: after raising TRIALS, delete it so every method runs at its new best.
set -u
out=${1:-runs/tuned-mnist}
trials=${2:-20}
seeds=${3:-5}
jobs=${4:-2}
methods="mimic distn noisy codis dkd dist kd_logit_std nagan kdgan"
export OMP_NUM_THREADS=1
mkdir -p "$out"
done_trials() {
    python - "$out/tune/study.db" "$1" <<'EOF'
import sys, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
try:
    study = optuna.load_study(study_name=sys.argv[2], storage=f"sqlite:///{sys.argv[1]}")
except Exception:
    print(0)
else:
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    print(sum(t.state in done for t in study.trials))
EOF
}
for m in $methods; do
    left=$((trials - $(done_trials "$m")))
    [ "$left" -gt 0 ] || continue
    echo "$(date +%T) tune $m ($left trials)" >> "$out/progress.txt"
    kdgan tune mnist_kdgan --method "$m" --trials "$left" --jobs "$jobs" --seed 0 --out "$out/tune" \
        > "$out/tune-$m.log" 2>&1 || { echo "kdgan tune $m failed: see $out/tune-$m.log" >&2; exit 1; }
done
echo "$(date +%T) reproduce" >> "$out/progress.txt"
kdgan reproduce table1 --dataset mnist --sizes 100 --seeds "$seeds" --jobs "$jobs" \
    --methods "$(echo $methods | tr ' ' ,)" --tuned "$out/tune" --out "$out/table1" > "$out/table1.log" 2>&1
rc=$?
echo "$(date +%T) end rc=$rc" >> "$out/progress.txt"
kdgan tune --report "$out/tune" --out "$out/tune-report" >> "$out/table1.log" 2>&1
