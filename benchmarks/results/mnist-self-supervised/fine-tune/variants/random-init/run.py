"""Control for the fine-tuning runs: the same network (the self-supervised encoder's CNN + the
MC-dropout head), the same bench settings and code path (``run_one``), but the encoder's
weights re-initialised (seeded) instead of the 20-epoch SimCLR ones. Does the SimCLR
start help, or is the architecture what limits the fine-tuned curve?

Run from a snapshot of the commit, as command.txt says, with one thread:
    OMP_NUM_THREADS=1 nice -n 10 env PYTHONPATH=/tmp/fttree /work/main/.venv/bin/python \
        benchmarks/results/mnist-self-supervised/fine-tune/variants/random-init/run.py
"""

import copy
import json
import sys
from dataclasses import asdict
from pathlib import Path

import alwidget.experiments.bench as bench
from alwidget.models import reset_parameters

HERE = Path(__file__).resolve().parent
loaded_encoder = bench.bench_encoder


def random_init_encoder(settings, progress=False):
    """The cached 20-epoch encoder's architecture with fresh (seed 0) weights and statistics."""
    encoder = copy.deepcopy(loaded_encoder(settings, progress))
    return reset_parameters(encoder, seed=0)


bench.bench_encoder = random_init_encoder  # run_one builds its Session through this name
settings = bench.BenchSettings(
    data_root="/work/shared/data", budget=250, encoder="self-supervised", encoder_epochs=20.0,
    fine_tune=True,
)  # fmt: skip
result = bench.run_one(
    settings, "bald", 0, threads=1, log=lambda text: print(text, file=sys.stderr, flush=True)
)
result["settings"] = {**asdict(settings), "extra": {"encoder_weights": "re-initialised, seed 0"}}
(HERE / "runs").mkdir(exist_ok=True)
(HERE / "runs" / "mnist-bald-seed0.json").write_text(json.dumps(result, indent=1))
