#!/usr/bin/env bash
# The issue-15 ablation of docs/RESULTS.md ("Giving the game a signal"): MNIST n=100, each part of
# the KDGAN authors' recipe switched on alone over the shipped mnist_kdgan config, KDGAN and DISTN
# under the same terms in each row. About 20 minutes on one CPU core per seed.
#
#   KDGAN_DATA=/path/to/data scripts/ablation_mnist.sh [OUT] [SEEDS]      # defaults: runs/ablation, 1
#
# A row whose results.json exists is skipped, so a killed run continues with the next row.
set -u
out=${1:-runs/ablation}
seeds=${2:-1}
export OMP_NUM_THREADS=1
mkdir -p "$out"
row() {
    local name=$1
    shift
    [ -f "$out/$name/results.json" ] && return
    echo "$(date +%T) start $name" >> "$out/progress.txt"
    kdgan demo --config mnist_kdgan --seeds "$seeds" --methods distn,kdgan --out "$out/$name" "$@" > "$out/$name.log" 2>&1
    echo "$(date +%T) end $name rc=$?" >> "$out/progress.txt"
}
row base
row informative_d --set kdgan:options.discriminator_pretrain=supervised --set kdgan:discriminator.pretrain_epochs=20
row augmentation --set data.augment=affine
row passes --set student.passes=10 --set teacher.passes=10 --set kdgan:discriminator.passes=20
row regression --set kdgan:options.estimator=regression --set kdgan:options.samples=20 \
    --set kdgan:options.tau_start=10.0 --set kdgan:options.tau_end=0.2455
row unlabelled --set data.unlabelled=all
