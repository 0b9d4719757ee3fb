#!/bin/sh
# The committed benchmark under benchmarks/results/: MNIST and Repeated MNIST, seed 0 of
# every strategy first, then more seeds, each step resumable (finished runs are kept).
# The committed results were made by these commands (the MNIST seeds 0,1,2 line ran beside the
# Repeated MNIST seed-0 line to use more of the shared machine); ≈ 2 h wall on 2 busy cores.
#   nice -n 5 sh benchmarks/run_bench_full.sh > /tmp/bench/full.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA_ROOT:-../shared/data}
# Training: 150 Adam steps (batch 32) from fresh weights on the 20 initial labels, then 40
# warm-started steps after each acquisition; evaluated on 2 000 random test images.
TRAIN="--train-steps 150 --warm-steps 40 --train-batch 32 --test-limit 2000 --mc-samples 20 --jobs 2 --resume"
MNIST="--dataset mnist --budget 250 --score-subset 2000 --out benchmarks/results/mnist"
# Repeated MNIST: 1 000 original images x 3 noisy copies = a 3 000-item pool, all of it
# scored each step (a random 2 000 of 180 000 would rarely hold two copies of one image).
REPEATED="--dataset repeated-mnist --limit 1000 --budget 300 --score-subset 0 --out benchmarks/results/repeated-mnist"
REPEATED_STRATEGIES="random,bald,batchbald,coreset,badge,hybrid,entropy"

$PY -m alwidget bench --data-root "$DATA" $MNIST $TRAIN --seeds 0
$PY -m alwidget bench --data-root "$DATA" $REPEATED $TRAIN --seeds 0 --strategies $REPEATED_STRATEGIES
$PY -m alwidget bench --data-root "$DATA" $MNIST $TRAIN --seeds 0,1,2
$PY -m alwidget bench --data-root "$DATA" $REPEATED $TRAIN --seeds 0,1,2 --strategies $REPEATED_STRATEGIES
