"""``JobRunner``'s lane gates: run on the lane's worker before each of its jobs, not on
other lanes."""

from __future__ import annotations

import threading

import pytest

from alwidget.widget.jobs import JobRunner


def test_a_gate_runs_on_its_lanes_worker_before_each_job_and_holds_it_back():
    opened = threading.Event()
    gate_threads = []

    def gate():
        gate_threads.append(threading.current_thread().name)
        opened.wait(10)

    runner = JobRunner(("training", "scoring"), gates={"training": gate}, name="test")
    try:
        held = runner.submit("train", lambda: threading.current_thread().name, lane="training")
        free = runner.submit("score", lambda: "scored", lane="scoring")
        assert free.result(timeout=10) == "scored"  # another lane is not gated
        assert not held.done()  # ... this one waits behind its gate
        opened.set()
        worker = held.result(timeout=10)
        second = runner.submit("train-again", lambda: "again", lane="training")
        assert second.result(timeout=10) == "again"
        assert gate_threads == [worker, worker]  # once per job, on the lane's own thread
        assert worker.startswith("test-training")
    finally:
        opened.set()
        runner.shutdown()


def test_a_gate_for_a_lane_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="lanes that do not exist"):
        JobRunner(("jobs",), gates={"training": lambda: None})


def test_waiting_for_trainings_imports_gives_up_on_closing_or_timeout():
    """In a fresh interpreter (nothing imported ``torch._dynamo`` yet), a job waiting for
    training's imports is let go when its widget closes or the wait times out."""
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from alwidget.widget import preload\n"
        "assert 'torch._dynamo' not in sys.modules\n"
        "started = time.monotonic()\n"
        "print(preload.wait_for_training_modules(timeout=60, give_up=lambda: True))\n"
        "print(preload.wait_for_training_modules(timeout=0.3))\n"
        "print(time.monotonic() - started < 10)\n"
        "preload.import_worker_modules(preload.TRAINING_MODULES)\n"
        "print(preload.wait_for_training_modules(timeout=0))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False", "True", "True"]
