"""How many CPU threads a training run or a scoring pass gives torch: no more than the cores
other programs leave free.

torch's CPU kernels use every core by default and their threads spin while they wait for each
other. Beside one other busy process on this 2-core machine, a head training on 100 labels of
60 000 MNIST images took 25-30 s with torch's 2 threads and 0.5-0.7 s with one; the small CNN
from scratch 166 s against 37-41 s, and a full-pool BALD query 7 s against 2 s. A notebook
shares its laptop with a browser and other kernels, so each job counts the runnable threads
of the whole machine when it starts and leaves those cores alone.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time

import torch

from .errors import InvalidArgumentError

__all__ = [
    "THREADS_VARIABLE",
    "busy_cpus_elsewhere",
    "cpu_count",
    "on_free_cores",
    "threads_for_jobs",
]

#: Set to a whole number to fix the thread count instead, the machine's load then ignored: a
#: run that must repeat bit for bit needs it (sums split over threads round differently).
THREADS_VARIABLE = "ALWIDGET_THREADS"

_SAMPLES = 3
_SAMPLE_GAP_S = 0.002
# A scoring pass predicts chunk by chunk: one reading serves the chunks of the next second.
_READING_KEPT_S = 1.0

# torch's count per thread: OpenMP keeps one per thread, and a thread that has not set its own
# takes the last count set anywhere. Background jobs are capped by the count torch had when
# alwidget was imported (its default or the user's), not by what another job left behind.
_THREADS_AT_IMPORT = torch.get_num_threads()
_last_reading: tuple[float, int | None] | None = None
_depth = threading.local()  # a job inside a job (scoring within training) keeps the outer count


def cpu_count() -> int:
    """CPUs this process may run on (its affinity where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def busy_cpus_elsewhere() -> int | None:
    """Threads running or ready to run on the machine besides the calling one: the median of a
    few reads of ``/proc/loadavg``'s running count, or None where there is no such file."""
    counts = []
    for sample in range(_SAMPLES):
        try:
            with open("/proc/loadavg", encoding="ascii") as loadavg:
                running = loadavg.read().split()[3].split("/")[0]
            counts.append(int(running) - 1)  # the reading thread is running
        except (OSError, IndexError, ValueError):
            return None
        if sample < _SAMPLES - 1:
            time.sleep(_SAMPLE_GAP_S)
    return max(0, sorted(counts)[len(counts) // 2])


def _threads_to_use(ceiling: int) -> int:
    global _last_reading
    fixed = os.environ.get(THREADS_VARIABLE, "").strip()
    if fixed:
        if not fixed.isdigit() or int(fixed) < 1:
            raise InvalidArgumentError(
                f"{THREADS_VARIABLE}={fixed!r} is not a whole number of at least 1; set it to "
                "the CPU threads training and scoring may use, or unset it to follow the "
                "machine's load"
            )
        return int(fixed)
    now = time.monotonic()
    if _last_reading is None or now - _last_reading[0] > _READING_KEPT_S:
        _last_reading = (now, busy_cpus_elsewhere())
    busy = _last_reading[1]
    if busy is None:
        return ceiling
    return max(1, min(ceiling, cpu_count() - busy))


@contextlib.contextmanager
def threads_for_jobs():
    """Run the block with torch's CPU threads capped by the cores other programs leave free.

    Never more than torch's count outside any such block: the calling thread's own on the
    main thread (the user may have set it), the count at alwidget's import on others. The
    calling thread's count is put back after. ``ALWIDGET_THREADS=N`` fixes the count.
    """
    if getattr(_depth, "value", 0):
        yield torch.get_num_threads()
        return
    on_main_thread = threading.current_thread() is threading.main_thread()
    before = torch.get_num_threads()
    ceiling = before if on_main_thread else _THREADS_AT_IMPORT
    threads = _threads_to_use(ceiling)
    if threads != before:
        torch.set_num_threads(threads)
    _depth.value = 1
    try:
        yield threads
    finally:
        _depth.value = 0
        after = before if on_main_thread else _THREADS_AT_IMPORT
        if torch.get_num_threads() != after:
            torch.set_num_threads(after)


def on_free_cores(function):
    """Decorate a training or scoring function to run inside :func:`threads_for_jobs`."""

    @functools.wraps(function)
    def on_free_cores_wrapper(*args, **kwargs):
        with threads_for_jobs():
            return function(*args, **kwargs)

    return on_free_cores_wrapper
