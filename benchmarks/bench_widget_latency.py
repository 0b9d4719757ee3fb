"""Server-side latency from a label to the next item being ready in the widget.

For each label: the key handler's code path runs (``Widget.press_key`` with the focused
item's id, exactly what the browser's key message triggers: store the label through the
session, advance, update every view); the clock stops when the next item is focused and
rendered. Measured idle and while a retrain runs in the background thread (another retrain is
started whenever one ends, so every measured label overlaps training).

By default the benchmark runs inside a real IPython kernel (started with jupyter_client), so
widget updates are serialised and sent as comm messages over ZeroMQ, as in a notebook; no
browser is attached. ``--in-process`` runs it in this interpreter instead, where ipywidgets
serialises state but has no kernel to send it to.

Labels go to a new SQLite store in a temporary directory (``--store`` to choose another), as
a notebook session writes them to its store before the widget moves on.

Also ``--quickstart`` times ``notebooks/quickstart.ipynb`` top to bottom under nbclient.

Usage::

    python benchmarks/bench_widget_latency.py [--labels 200] [--pause 0.1] [--in-process] [--quickstart]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_P95_MS = 30.0


def run_benchmark(n_labels: int, pause_s: float, strategy: str) -> dict:
    """Label ``n_labels`` items idle, then ``n_labels`` during retraining; returns latencies in ms."""
    import numpy as np

    import alwidget as al

    pool = al.datasets.load_digits()
    session = al.Session(
        pool, strategy=strategy, seed=0, train_config=al.TrainConfig(min_steps=300, max_steps=600)
    )
    widget = al.Widget(session)

    def truth(item_id) -> str:
        return session.classes[int(pool.targets[pool.position(item_id)])]

    def label_once() -> float:
        time.sleep(pause_s)  # the annotator looks at the item
        item = widget.focused_item
        started = time.perf_counter()
        widget.press_key(truth(item.id), str(item.id))
        while True:
            shown = widget.focused_item
            if shown is not None and shown.id in widget._rendered:
                return (time.perf_counter() - started) * 1000.0
            time.sleep(0.0002)

    # Enough labels of two classes for the first retrain, as after a few minutes of use.
    for _ in range(20):
        label_once()
    widget.wait(timeout=120)

    idle = [label_once() for _ in range(n_labels)]
    widget.wait(timeout=120)

    during, overlapped_retrains = [], 0
    while len(during) < n_labels:
        if not widget.training:
            widget.retrain()
            overlapped_retrains += 1
        latency = label_once()
        if widget.training:
            during.append(latency)
    widget.wait(timeout=600)
    widget.close()

    def summary(values: list[float]) -> dict:
        array = np.asarray(values)
        return {
            "n": int(array.size),
            "p50_ms": float(np.percentile(array, 50)),
            "p95_ms": float(np.percentile(array, 95)),
            "max_ms": float(array.max()),
        }

    return {
        "strategy": strategy,
        "pause_s": pause_s,
        "idle": summary(idle),
        "during_retrain": summary(during),
        "retrains_started": overlapped_retrains,
        "model_version": session.model_version,
        "labels": session.n_labels,
    }


def run_in_kernel(n_labels: int, pause_s: float, strategy: str) -> dict:
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name="python3", cwd=str(REPO))
    chunks: list[str] = []

    def collect(message) -> None:
        if message["msg_type"] == "stream":
            chunks.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            chunks.append("\n".join(message["content"]["traceback"]))

    code = (
        f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from bench_widget_latency import run_benchmark\n"
        f"print('RESULT' + json.dumps(run_benchmark({n_labels}, {pause_s}, {strategy!r})))\n"
    )
    try:
        reply = client.execute_interactive(code, timeout=3600, output_hook=collect)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    text = "".join(chunks)
    if reply["content"]["status"] != "ok" or "RESULT" not in text:
        raise RuntimeError(f"benchmark failed in the kernel:\n{text}")
    return json.loads(text.split("RESULT", 1)[1].strip().splitlines()[0])


def time_quickstart() -> float:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    # A first run as a user has it: the session's default store file in a fresh directory.
    saved = os.environ.pop("ALWIDGET_STORE", None)
    try:
        started = time.perf_counter()
        NotebookClient(
            notebook,
            timeout=600,
            kernel_name="python3",
            store_widget_state=True,
            resources={"metadata": {"path": tempfile.mkdtemp(prefix="alwidget-quickstart-")}},
        ).execute()
        return time.perf_counter() - started
    finally:
        if saved is not None:
            os.environ["ALWIDGET_STORE"] = saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=200, help="labels per phase (default 200)")
    parser.add_argument(
        "--pause", type=float, default=0.1, help="seconds between labels (default 0.1)"
    )
    parser.add_argument(
        "--strategy", default="bald", help="session strategy (default bald, as in the quickstart)"
    )
    parser.add_argument("--in-process", action="store_true", help="run here instead of in a kernel")
    parser.add_argument(
        "--quickstart", action="store_true", help="also time the quickstart notebook"
    )
    parser.add_argument(
        "--store", help="label store for the session (default: a new SQLite file in a temp dir)"
    )
    args = parser.parse_args(argv)

    # Sessions commit every label to their store before the widget advances, so the store's
    # commit is part of the latency. A fresh file each run: an existing one would be resumed.
    store = args.store or str(Path(tempfile.mkdtemp(prefix="alwidget-bench-")) / "labels.db")
    os.environ["ALWIDGET_STORE"] = store  # read by Session, here or in the kernel (inherits env)

    runner = run_benchmark if args.in_process else run_in_kernel
    result = runner(args.labels, args.pause, args.strategy)
    where = "in-process" if args.in_process else "in a kernel"
    print(
        f"label -> next item ready ({where}, strategy {result['strategy']}, {args.pause:.2f} s between labels)"
    )
    for phase in ("idle", "during_retrain"):
        stats = result[phase]
        verdict = (
            "ok" if stats["p95_ms"] <= TARGET_P95_MS else f"ABOVE the {TARGET_P95_MS:.0f} ms target"
        )
        print(
            f"  {phase:15s} n={stats['n']:4d}  p50 {stats['p50_ms']:6.2f} ms  p95 {stats['p95_ms']:6.2f} ms  "
            f"max {stats['max_ms']:7.2f} ms  ({verdict})"
        )
    print(
        f"  retrains overlapped: {result['retrains_started']}, final model v{result['model_version']}, "
        f"{result['labels']} labels, store {store}"
    )
    if args.quickstart:
        print(f"quickstart.ipynb top to bottom under nbclient: {time_quickstart():.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
