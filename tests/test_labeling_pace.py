"""When the map redraws while someone labels: hand-built label timelines on a fake clock."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alwidget.widget.jobs import JobRunner
from alwidget.widget.pace import LabelingPace


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def pace_with_labels_at(times, **options):
    clock = FakeClock()
    pace = LabelingPace(clock=clock, **options)
    for t in times:
        clock.t = t
        pace.note_label()
    return pace, clock


def test_no_labels_means_no_wait():
    pace, clock = pace_with_labels_at([])
    assert pace.delay_s(clock.t) == 0.0 and not pace.in_burst()


def test_a_calm_pace_waits_only_to_settle():
    pace, clock = pace_with_labels_at([100.0, 103.0, 106.0])  # one label every 3 s
    assert not pace.in_burst()
    assert pace.delay_s(106.0) == pytest.approx(0.5)
    clock.t = 106.6
    assert pace.delay_s(106.0) == 0.0


def test_a_burst_waits_for_a_real_pause():
    pace, clock = pace_with_labels_at([100.0, 100.3, 100.6, 100.9])
    assert pace.in_burst()
    clock.t = 101.4  # 0.5 s after the last label: a calm pace would redraw now, a burst waits
    assert pace.delay_s(100.9) == pytest.approx(1.0)
    clock.t = 102.4
    assert pace.delay_s(100.9) == 0.0


def test_a_non_stop_burst_still_redraws_after_the_longest_delay():
    times = [100.0 + 0.3 * i for i in range(200)]  # a label every 0.3 s for a minute
    pace, clock = pace_with_labels_at(times[:10])
    change_at = times[0]
    for t in times[10:]:
        clock.t = t
        pace.note_label()
        if t - change_at >= 20.0:
            assert pace.delay_s(change_at) == 0.0
            break
        assert pace.delay_s(change_at) > 0.0
    else:
        pytest.fail("the redraw waited for ever")


def test_labels_after_a_long_break_start_a_new_pace():
    pace, clock = pace_with_labels_at([100.0, 100.2, 100.4, 100.6, 100.8, 200.0])
    assert not pace.in_burst()  # the old burst says nothing of the label after the break
    assert pace.delay_s(200.0) == pytest.approx(0.5)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="settle_s <= burst_gap_s"):
        LabelingPace(settle_s=2.0, burst_gap_s=1.0)


@given(
    gaps=st.lists(st.floats(min_value=0.01, max_value=10.0), min_size=1, max_size=30),
    asked_after=st.floats(min_value=0.0, max_value=30.0),
)
def test_the_delay_is_bounded_and_never_negative(gaps, asked_after):
    times = [100.0]
    for gap in gaps:
        times.append(times[-1] + gap)
    pace, clock = pace_with_labels_at(times)
    change_at = times[-1]
    clock.t = change_at + asked_after
    delay = pace.delay_s(change_at)
    assert 0.0 <= delay <= max(0.0, pace.max_delay_s - asked_after) + 1e-9
    assert delay <= max(0.0, pace.burst_gap_s - asked_after) + 1e-9


def test_a_job_runner_sleep_ends_at_shutdown():
    jobs = JobRunner(("lane",))
    started = time.monotonic()
    future = jobs.submit("nap", lambda: jobs.sleep(30))
    time.sleep(0.1)
    jobs.shutdown()
    assert future.result(5) is True and time.monotonic() - started < 5
