#!/bin/sh
# The committed benchmark under benchmarks/results/: MNIST and Repeated MNIST, seed 0 of
# every strategy first, then more seeds, each step resumable (finished runs are kept).
# The committed results were made by this script as it stands, on 2 cores:
#   sh benchmarks/run_bench_full.sh > /tmp/bench/full.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA_ROOT:-../shared/data}
# Training: 500 Adam steps (batch 32, affinely augmented) from fresh weights on the 20 initial
# labels, then 100 warm-started steps after each acquisition; evaluated on the full 10 000
# test images after every step.
TRAIN="--train-steps 500 --warm-steps 100 --train-batch 32 --augment affine --mc-samples 20 --jobs 2 --resume"
MNIST="--dataset mnist --budget 250 --score-subset 2000 --out benchmarks/results/mnist"
# Repeated MNIST: 1 000 original images x 3 noisy copies = a 3 000-item pool, all of it
# scored each step (a random 2 000 of 180 000 would rarely hold two copies of one image).
REPEATED="--dataset repeated-mnist --limit 1000 --budget 300 --score-subset 0 --out benchmarks/results/repeated-mnist"
REPEATED_STRATEGIES="random,bald,batchbald,coreset,badge,hybrid,entropy,stochastic_bald"

$PY -m alwidget bench --data-root "$DATA" $MNIST $TRAIN --seeds 0
$PY -m alwidget bench --data-root "$DATA" $REPEATED $TRAIN --seeds 0 --strategies $REPEATED_STRATEGIES
$PY -m alwidget bench --data-root "$DATA" $MNIST $TRAIN --seeds 0,1,2
$PY -m alwidget bench --data-root "$DATA" $REPEATED $TRAIN --seeds 0,1,2 --strategies $REPEATED_STRATEGIES
# Two more Repeated MNIST seeds (+26 min; the 3-seed run above is 71 min in all).
$PY -m alwidget bench --data-root "$DATA" $REPEATED $TRAIN --seeds 0,1,2,3,4 --strategies $REPEATED_STRATEGIES
# The ablation under benchmarks/results/mnist-no-augment (same recipe, no augmentation; ≈ 12 min):
#   $PY -m alwidget bench --data-root "$DATA" $MNIST $TRAIN --augment none --strategies random,bald,batchbald \
#       --seeds 0,1,2 --out benchmarks/results/mnist-no-augment
