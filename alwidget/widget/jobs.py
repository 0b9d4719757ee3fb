"""Work that runs off the kernel's main thread: training + rescoring, and batch refills.

Each kind of job has its own single-worker executor, so a refill never waits for a
training run and two trainings never overlap. Results come back through callbacks that run
in the worker thread; the widget applies them under its lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ..errors import PoolExhaustedError
from .render import RenderedItem, render_pool_item

PROGRESS_INTERVAL_S = 0.15


@dataclass
class FetchedBatch:
    """A queried batch plus its items pre-rendered, so applying it on the UI side is cheap."""

    batch: object | None  # alwidget.Batch, or None when the pool is exhausted
    rendered: dict


@dataclass
class TrainingResult:
    report: object
    fetched: FetchedBatch
    seconds: float


def fetch_batch(session, batch_size: int, rendered_cache: dict) -> FetchedBatch:
    """``session.query`` plus rendering of the items not rendered yet (thread-safe for the cache)."""
    try:
        batch = session.query(batch_size)
    except PoolExhaustedError:
        return FetchedBatch(None, {})
    rendered: dict[object, RenderedItem] = {}
    for item_id in batch.ids:
        cached = rendered_cache.get(item_id)
        rendered[item_id] = cached if cached is not None else render_pool_item(session.pool, item_id)
    return FetchedBatch(batch, rendered)


class ThrottledProgress:
    """Forwards training progress at most every ``interval`` seconds (and always the last step).

    The training loop reports every few steps; sending each one over the comm would flood
    the browser for nothing.
    """

    def __init__(self, sink: Callable[[float, float, dict], None], interval: float = PROGRESS_INTERVAL_S):
        self._sink = sink
        self._interval = interval
        self._last = 0.0

    def __call__(self, info: dict) -> None:
        members = max(1, int(info.get("members", 1)))
        member = int(info.get("member", 0))
        total = max(1, int(info.get("total_steps", 1)))
        step = int(info.get("step", 0))
        fraction = min(1.0, (member + step / total) / members)
        now = time.monotonic()
        if fraction < 1.0 and now - self._last < self._interval:
            return
        self._last = now
        self._sink(fraction, float(info.get("loss", float("nan"))), info)


class BackgroundJobs:
    """Single-worker executors for training and for refills.

    A job counts as running until its done-callback has returned, so :meth:`wait` also waits
    for the widget to have applied the result.
    """

    def __init__(self):
        self._training = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alwidget-train")
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alwidget-score")
        self._idle = threading.Condition()
        self._running = {"training": 0, "refill": 0}
        self._closing = threading.Event()

    @property
    def refilling(self) -> bool:
        return self._running["refill"] > 0

    def _submit(self, kind: str, executor: ThreadPoolExecutor, function, on_done) -> Future:
        with self._idle:
            self._running[kind] += 1

        def finished(future: Future) -> None:
            try:
                on_done(future)
            finally:
                with self._idle:
                    self._running[kind] -= 1
                    self._idle.notify_all()

        try:
            future = executor.submit(function)
        except BaseException:
            with self._idle:
                self._running[kind] -= 1
            raise
        future.add_done_callback(finished)
        return future

    def start_training(self, session, batch_size: int, rendered_cache: dict, progress, on_done) -> Future:
        def train_and_rescore() -> TrainingResult:
            started = time.perf_counter()
            report = session.retrain(progress=progress, should_stop=self._closing.is_set)
            fetched = fetch_batch(session, batch_size, rendered_cache)
            return TrainingResult(report, fetched, time.perf_counter() - started)

        return self._submit("training", self._training, train_and_rescore, on_done)

    def start_refill(self, session, batch_size: int, rendered_cache: dict, on_done) -> Future:
        return self._submit("refill", self._scoring, lambda: fetch_batch(session, batch_size, rendered_cache), on_done)

    def wait(self, timeout: float | None = None) -> None:
        """Block until no job is running and every result has been applied.

        Raises
        ------
        TimeoutError
            If jobs are still running after ``timeout`` seconds.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: not any(self._running.values()), timeout=timeout):
                raise TimeoutError(f"background jobs still running after {timeout} s: {self._running}")

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def shutdown(self) -> None:
        """Cancel queued jobs and stop a running training at its next step."""
        self._closing.set()
        self._training.shutdown(wait=False, cancel_futures=True)
        self._scoring.shutdown(wait=False, cancel_futures=True)
