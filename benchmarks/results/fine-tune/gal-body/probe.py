"""Frozen-feature probes of the pretrained Gal CNN body against the default SimCLR encoder.

Loads (never trains) the encoders the bench cached: the Gal body of this folder's run
(``--encoder-epochs 3 --encoder-architecture gal_cnn``) and the default strided CNN of
``benchmarks/results/mnist-self-supervised/fine-tune`` (``--encoder-epochs 20``), both seed 0,
and probes their features with ``benchmarks/bench_self_supervised.py``'s probes (logistic
regression and cosine 5-NN on 100 and 1 000 balanced labels, 5 draws; on all 60 000) on the
10 000 test images; raw pixels as the yardstick. One thread.

Usage: PYTHONPATH=<tree> OMP_NUM_THREADS=1 nice -n 10 python probe.py
"""

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_self_supervised import encode, fmt_probes, probes  # noqa: E402

import alwidget as al  # noqa: E402
from alwidget.encoders.self_supervised import self_supervised  # noqa: E402

torch.set_num_threads(1)
print(f"load average {os.getloadavg()}")
root = Path("/work/shared/data")
pool = al.datasets.load_mnist(root)
test = pool.test
pool_x = pool.inputs(np.arange(len(pool)))
test_x = test.inputs
pool_y, test_y = np.asarray(pool.targets), np.asarray(test.targets)

cases = {
    "gal_cnn body, 3 epochs": dict(max_epochs=3, architecture="gal_cnn"),
    "strided CNN (default), 20 epochs": dict(max_epochs=20),
}
for name, settings in cases.items():
    encoder = self_supervised(pool, time_budget=None, seed=0, progress=False, **settings)
    assert encoder.report.loaded, f"{name}: not in the cache; run the bench first"
    started = time.perf_counter()
    train_f, test_f = encode(encoder, pool_x), encode(encoder, test_x)
    encoded = time.perf_counter() - started
    report = encoder.report
    print(
        f"{name}: trained {report.seconds:.0f} s, {report.epochs:.1f} epochs, final loss "
        f"{report.loss:.3f}; encoded 70 000 images in {encoded:.0f} s"
    )
    print("  " + fmt_probes(probes(train_f, pool_y, test_f, test_y, draws=5)))
flat = pool_x.reshape(len(pool_x), -1).numpy(), test_x.reshape(len(test_x), -1).numpy()
print("raw pixels:\n  " + fmt_probes(probes(flat[0], pool_y, flat[1], test_y, draws=5)))
