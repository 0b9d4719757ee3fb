"""One background thread for the map's slow work, with bursts of the same job coalesced."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor

__all__ = ["CoalescingJobs"]


class CoalescingJobs:
    """Runs jobs one at a time in a background thread.

    A job submitted under a ``kind`` whose previous job of that kind has not started yet is
    not queued again: that waiting job will read the newest state when it runs. So a burst of
    labels or queue changes costs one redraw, not one per event.

    Parameters
    ----------
    on_error : callable
        ``on_error(error, kind)`` for an exception raised by a job (then re-raised into its
        future).
    """

    def __init__(self, on_error: Callable[[BaseException, str], None]):
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="alwidget-map"
        )
        self._on_error = on_error
        self._lock = threading.Lock()
        self._pending: list[Future] = []
        self._waiting: dict[
            str, Future
        ] = {}  # kind -> a job of that kind not started yet

    def submit(self, kind: str, job: Callable[[], object]) -> Future:
        """Run ``job()`` in the background (or join the waiting job of the same kind)."""

        def run():
            with self._lock:
                self._waiting.pop(kind, None)
            try:
                return job()
            except Exception as error:
                self._on_error(error, kind)
                raise

        with self._lock:
            if kind in self._waiting:
                return self._waiting[kind]
            future = self._executor.submit(run)
            self._waiting[kind] = future
            self._pending.append(future)
        return future

    def wait(self, timeout: float | None = None) -> None:
        """Block until every submitted job has finished.

        Raises
        ------
        TimeoutError
            If a job is still running after ``timeout`` seconds.
        """
        with self._lock:
            pending = list(self._pending)
        _, not_done = futures.wait(pending, timeout=timeout)
        with self._lock:
            self._pending = [future for future in self._pending if not future.done()]
        if not_done:
            raise TimeoutError(
                f"{len(not_done)} map job(s) still running after {timeout} s"
            )

    def shutdown(self) -> None:
        """Cancel waiting jobs; a running one finishes in the background."""
        self._executor.shutdown(wait=False, cancel_futures=True)
