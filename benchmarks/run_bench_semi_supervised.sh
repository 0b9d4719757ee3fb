#!/bin/sh
# Issue 14's ablation matrix on MNIST (Gal protocol, budget 250, seeds 0-2, the five strategies):
# what the unlabeled pool buys, one part at a time, on a frozen self-supervised encoder so the
# whole matrix fits in well under two hours (60 runs of 35-135 s: 73 min on one core in session 15;
# the 99 % recipe, which fine-tunes the encoder, costs 25-50 min a run and lives in
# results/fine-tune/).
#
# Every recipe: the Gal CNN body pretrained by SimCLR on the 60 000 pool images for 10 epochs
# (cached under ~/.cache/alwidget/encoders after the first run, about 450 s on one core), frozen,
# with the MC-dropout head trained on its features; 1 000 Adam steps of 32 from fresh weights on
# the 20 initial labels, then 600 warm-started steps after each acquisition of 10; T = 20; a
# random 2 000 unlabeled items scored per step; the full 10 000 test images after every step.
#   a-plain      labels only (the committed bench's training, on this encoder)
#   a-averaged   + weight averaging (EMA 0.98): the stable-curve part alone
#   b-pseudo     + pseudo-labels (at most 3 000 per class, from 30 000 candidates)
#   c-fixmatch   + FixMatch consistency (feature-space weak/strong views)
# Usage (from the repository root; each recipe resumable, finished runs are kept):
#   sh benchmarks/run_bench_semi_supervised.sh > /tmp/matrix.log 2>&1 &
set -e
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DATA=${DATA_ROOT:-../shared/data}
JOBS=${JOBS:-2}
OUT=${OUT:-benchmarks/results/semi-supervised-matrix}
COMMON="--dataset mnist --budget 250 --score-subset 2000 --train-steps 1000 --warm-steps 600 --train-batch 32 --augment none --mc-samples 20 --seeds 0,1,2 --strategies random,entropy,bald,batchbald,badge --encoder self-supervised --encoder-epochs 10 --encoder-architecture gal_cnn --jobs $JOBS --resume --no-png"
PSEUDO="--pseudo-labels --pseudo-label-per-class 3000 --pseudo-label-candidates 30000"
started=$(date +%s)
run() {
    name=$1
    shift
    echo "== $name: start $(date -u +%H:%M:%S)"
    $PY -m alwidget bench --data-root "$DATA" $COMMON "$@" --out "$OUT/$name"
    echo "== $name: end $(date -u +%H:%M:%S), $(($(date +%s) - started)) s since the start"
}
run a-plain
run a-averaged --weight-averaging 0.98
run b-pseudo --weight-averaging 0.98 $PSEUDO
run c-fixmatch --weight-averaging 0.98 $PSEUDO --semi-supervised fixmatch
echo "== whole matrix: $(($(date +%s) - started)) s"
