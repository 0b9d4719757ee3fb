"""``JobRunner``: the one place the widgets run work off the kernel's main thread.

The labeling panel trains and fetches batches here; the map fits, refreshes and redraws here.
Jobs run in *lanes*, one worker thread per lane: jobs of one lane run one at a time, in order,
and a slow lane (training) never delays another (fetching the next batch).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["JobRunner", "Throttle"]


class JobRunner:
    """Runs jobs in background lanes and says when their results have been applied.

    A job counts as running until its ``on_done`` callback has returned, so :meth:`wait` also
    waits for the caller to have applied the result.

    A job submitted with ``coalesce=True`` while a job of the same ``kind`` waits to start is not
    queued again: the waiting job reads the newest state when it runs, so a burst of labels
    costs one redraw, not one per event.

    Parameters
    ----------
    lanes : sequence of str
        One worker thread each; :meth:`submit` defaults to the first.
    on_error : callable, optional
        ``on_error(error, kind)`` for an exception a job raises (the exception is then also
        raised from the job's future).
    name : str
        Prefix of the worker threads' names.
    gates : mapping of str to callable, optional
        ``{lane: gate}``: ``gate()`` runs on the lane's worker thread before each of its jobs
        (e.g. waits until what the jobs need is ready).
    """

    def __init__(
        self,
        lanes: Sequence[str] = ("jobs",),
        *,
        on_error: Callable[[BaseException, str], None] | None = None,
        name: str = "alwidget",
        gates: Mapping[str, Callable[[], object]] | None = None,
    ):
        if not lanes:
            raise ValueError("JobRunner needs at least one lane, e.g. lanes=('jobs',)")
        unknown = set(gates or ()) - set(lanes)
        if unknown:
            raise ValueError(f"gates for lanes that do not exist: {sorted(unknown)}")
        self._gates = dict(gates or {})
        self._executors = {
            lane: ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-{lane}")
            for lane in lanes
        }
        self._default_lane = lanes[0]
        self._on_error = on_error
        # A leaf lock: nothing else is locked and no callback runs while it is held.
        self._state = threading.Condition()
        self._unfinished: Counter[str] = Counter()  # kind -> jobs whose on_done has not returned
        self._waiting: dict[str, Future] = {}  # kind -> a coalescing job not started yet
        self._closing = threading.Event()

    @property
    def closing(self) -> bool:
        """True once :meth:`shutdown` was called (a long job should stop at its next step)."""
        return self._closing.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep in a job for up to ``seconds``; True (at once) when :meth:`shutdown` is called."""
        return self._closing.wait(max(0.0, seconds))

    def is_running(self, kind: str) -> bool:
        """Whether a job of ``kind`` is queued, running or having its result applied."""
        with self._state:
            return self._unfinished[kind] > 0

    def submit(
        self,
        kind: str,
        job: Callable[[], object],
        *,
        lane: str | None = None,
        on_done: Callable[[Future], None] | None = None,
        coalesce: bool = True,
    ) -> Future:
        """Run ``job()`` in ``lane``; then ``on_done(future)`` in the worker thread.

        Returns the job's future, or the waiting job's when ``coalesce`` joins one.
        """
        lane = lane or self._default_lane
        executor = self._executors[lane]
        gate = self._gates.get(lane)
        slot: list[Future] = []

        def run():
            with self._state:  # waits until submit below has registered the future
                if self._waiting.get(kind) is slot[0]:
                    del self._waiting[kind]
            try:
                if gate is not None:
                    gate()
                return job()
            except Exception as error:
                if self._on_error is not None:
                    self._on_error(error, kind)
                raise

        def finished(future: Future) -> None:
            try:
                if on_done is not None:
                    on_done(future)
            finally:
                with self._state:
                    self._unfinished[kind] -= 1
                    self._state.notify_all()

        with self._state:
            if coalesce and kind in self._waiting:
                return self._waiting[kind]
            future = executor.submit(run)
            slot.append(future)
            self._unfinished[kind] += 1
            if coalesce:
                self._waiting[kind] = future
        # Outside the lock: a job that is already done runs `finished` right here.
        future.add_done_callback(finished)
        return future

    def wait(self, timeout: float | None = None) -> None:
        """Block until every job has finished and its result has been applied.

        Raises
        ------
        TimeoutError
            If jobs are still running after ``timeout`` seconds.
        """
        with self._state:
            if not self._state.wait_for(lambda: not +self._unfinished, timeout=timeout):
                busy = ", ".join(f"{count} {kind}" for kind, count in (+self._unfinished).items())
                raise TimeoutError(f"background jobs still running after {timeout} s: {busy}")

    def shutdown(self) -> None:
        """Cancel jobs not started yet; a running job finishes (or stops at its next step)."""
        self._closing.set()
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)


class Throttle:
    """Lets a report through at most every ``interval`` seconds, and always the last one:
    each report is a comm message, and a flood of them only slows the browser."""

    def __init__(self, interval: float):
        self._interval = interval
        self._last = 0.0

    def lets_through(self, *, last: bool) -> bool:
        now = time.monotonic()
        if not last and now - self._last < self._interval:
            return False
        self._last = now
        return True
