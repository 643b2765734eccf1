#!/usr/bin/env bash
# The issue-15 ablation of docs/RESULTS.md ("Giving the game a signal"): MNIST n=100, each part of
# the KDGAN authors' recipe switched on alone over the shipped mnist_kdgan config, KDGAN and DISTN
# under the same terms in each row, and all five parts together (all_together).
#
#   KDGAN_DATA=/path/to/data scripts/ablation_mnist.sh [OUT] [SEEDS] [ROWS]   # defaults: runs/ablation, 1, all
#
# ROWS: row names separated by spaces (e.g. "base regression"). A row whose results.json exists is
# skipped, so a killed run continues with the next row. Every row runs mnist_kdgan as it was when
# the ablation was first run (game lr 1e-3 for every method, no per_method, no select_start), so that
# its rows stay comparable.
set -u
out=${1:-runs/ablation}
seeds=${2:-1}
rows=${3:-all}
export OMP_NUM_THREADS=1
mkdir -p "$out"
row() {
    local name=$1
    shift
    [ -f "$out/$name/results.json" ] && return
    [ "$rows" = all ] || [[ " $rows " == *" $name "* ]] || return
    echo "$(date +%T) start $name" >> "$out/progress.txt"
    kdgan demo --config mnist_kdgan --seeds "$seeds" --methods distn,kdgan --out "$out/$name" \
        --set "per_method={}" --set train.select_start=false "$@" > "$out/$name.log" 2>&1
    local rc=$?
    echo "$(date +%T) end $name rc=$rc" >> "$out/progress.txt"
}
row base
row informative_d --set kdgan:options.discriminator_pretrain=supervised --set kdgan:discriminator.pretrain_epochs=20
row augmentation --set data.augment=affine
row passes --set student.passes=10 --set teacher.passes=10 --set kdgan:discriminator.passes=20
row regression --set kdgan:options.estimator=regression --set kdgan:options.samples=20 \
    --set kdgan:options.tau_start=10.0 --set kdgan:options.tau_end=0.2455
row unlabelled --set data.unlabelled=all
row all_together --set kdgan:options.discriminator_pretrain=supervised --set kdgan:discriminator.pretrain_epochs=20 \
    --set data.augment=affine --set student.passes=10 --set teacher.passes=10 --set kdgan:discriminator.passes=20 \
    --set kdgan:options.estimator=regression --set kdgan:options.samples=20 --set kdgan:options.tau_start=10.0 \
    --set kdgan:options.tau_end=0.2455 --set data.unlabelled=all
