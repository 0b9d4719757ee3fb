"""``LabelingPace``: when a map redraw would not get in the way of the next key press.

Any change to a plotly figure with WebGL traces makes the browser redraw every point of the
subplot, whichever trace changed: with 30 000 points that is 0.3 s of the page's main thread
in a software-rendered Chromium (0.1 s at 3 000 points; ``benchmarks/results/
browser-realsize.txt``). A key press arriving meanwhile waits for it, so with the map
attached to a 60 000-image pool, key press → next item had a p95 of 340 ms against 14 ms
without the map. Someone labeling a burst of easy items (a few hundred ms each) does not look
at the map between keys; the map can catch up at their next pause instead.

So the map asks this object how long to hold a redraw. Labels more than ``burst_gap_s`` apart
are a calm pace: the redraw waits ``settle_s`` (the label's batch change and coverage arrive
together) and then fits easily before the next key. Labels closer than that are a burst: the
redraw waits until no label has come for ``burst_gap_s``, but never more than
``max_delay_s`` after the change it shows, so a map watched while labeling non-stop still
moves.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["LabelingPace"]


class LabelingPace:
    """Remembers when labels arrived and says how long a redraw should still wait.

    Parameters
    ----------
    settle_s : float
        Wait after a label at a calm pace, so the changes one label causes (its class
        trace, the batch, coverage) are drawn in one go.
    burst_gap_s : float
        Labels closer together than this (median of the last few gaps) are a burst; a burst
        ends when no label came for this long.
    max_delay_s : float
        A redraw never waits longer than this after the change it is for.
    clock : callable
        Seconds, monotonic (tests pass their own).
    """

    def __init__(
        self,
        *,
        settle_s: float = 0.5,
        burst_gap_s: float = 1.5,
        max_delay_s: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if not 0 <= settle_s <= burst_gap_s <= max_delay_s:
            raise ValueError(
                "LabelingPace needs 0 <= settle_s <= burst_gap_s <= max_delay_s, got "
                f"{settle_s}, {burst_gap_s}, {max_delay_s}"
            )
        self.settle_s = settle_s
        self.burst_gap_s = burst_gap_s
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._times: deque[float] = deque(maxlen=6)
        self._lock = threading.Lock()  # labels are noted on the kernel's thread, read on the map's

    def now(self) -> float:
        return self._clock()

    def note_label(self) -> None:
        """A label (or several at once) just arrived."""
        now = self._clock()
        with self._lock:
            if self._times and now - self._times[-1] > 3 * self.burst_gap_s:
                self._times.clear()  # a new session of labeling: old gaps say nothing of it
            self._times.append(now)

    def in_burst(self) -> bool:
        """Whether the recent labels came faster than ``burst_gap_s`` apart (median)."""
        with self._lock:
            times = list(self._times)
        gaps = sorted(later - earlier for earlier, later in zip(times, times[1:]))
        return bool(gaps) and gaps[len(gaps) // 2] < self.burst_gap_s

    def delay_s(self, change_at: float) -> float:
        """Seconds a redraw for a change made at ``change_at`` should still wait (0: now)."""
        with self._lock:
            last = self._times[-1] if self._times else None
        if last is None:
            return 0.0
        now = self._clock()
        quiet = self.burst_gap_s if self.in_burst() else self.settle_s
        wait = last + quiet - now
        give_up = change_at + self.max_delay_s - now
        return max(0.0, min(wait, give_up))
