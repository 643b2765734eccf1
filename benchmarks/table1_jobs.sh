#!/usr/bin/env bash
# Wall time of the MNIST Table 1 (sizes 100 and 1,000, 3 seeds, the paper's methods) with --jobs J
# (issue 14; docs/PERFORMANCE.md, "Table 1 on every core"). Prints the wall time and the sum of the
# runs' own seconds, whose ratio is what the parallel runs bought.
#
#   KDGAN_DATA=/path/to/data benchmarks/table1_jobs.sh [JOBS] [OUT]      # defaults: 2, runs/table1-jobs
set -euo pipefail
jobs=${1:-2}
out=${2:-runs/table1-jobs}
export OMP_NUM_THREADS=1
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
start=$(date +%s)
kdgan reproduce table1 --dataset mnist --sizes 100,1000 --seeds 3 \
    --methods supervised,mimic,distn,noisy,codis,nagan,kdgan --jobs "$jobs" --out "$out"
end=$(date +%s)
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python - "$out/results.json" "$((end - start))" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
runs = sum(r["seconds"] for methods in results.values() for rows in methods.values() for r in rows)
wall = float(sys.argv[2])
print(f"wall {wall:.0f} s; runs' own seconds {runs:.0f} s; ratio {runs / wall:.2f}")
PY
