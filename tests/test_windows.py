"""Periodic and marker windows: exact ranges, hop across wrap-around, data = buffer content.
The trigger policies (dd_live.triggers): latest, recorded, and where a held source may stop."""

import numpy as np
import pytest

from dd_live.config import WindowConfig
from dd_live.errors import ConfigError
from dd_live.stream import MarkerWindower, PeriodicWindower, RingBuffer, Window
from dd_live.triggers import (
    IntervalTrigger,
    LatestTrigger,
    MarkerTrigger,
    RecordedTrigger,
    RecordedWindow,
    make_trigger,
)

SFREQ = 250.0
N_CHANNELS = 2
CAPACITY = 300  # 1.2 s: wraps every few windows


def write_ramp(buffer: RingBuffer, n: int) -> None:
    """Channel 0 holds each sample's absolute index; timestamps are index / SFREQ."""
    index = np.arange(buffer.n_written, buffer.n_written + n, dtype=float)
    buffer.write(np.vstack([index, -index]), index / SFREQ)


def assert_window_is_buffer_content(window: Window) -> None:
    index = np.arange(window.start, window.stop, dtype=float)
    np.testing.assert_array_equal(window.data, np.vstack([index, -index]))
    np.testing.assert_array_equal(window.timestamps, index / SFREQ)


def test_periodic_windows_cover_expected_ranges_across_wrap_around():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    windower = PeriodicWindower(SFREQ, length=0.44, hop=0.5)
    assert (windower.n_length, windower.n_hop) == (110, 125)
    windows = []
    rng = np.random.default_rng(3)
    for _ in range(300):
        write_ramp(buffer, int(rng.integers(0, 40)))
        windows.extend(windower.poll(buffer))
    assert buffer.n_overwritten > 10 * CAPACITY
    n_expected = (buffer.n_written - 110) // 125 + 1
    assert [(w.start, w.stop) for w in windows] == [
        (k * 125, k * 125 + 110) for k in range(n_expected)
    ]
    assert windower.n_missed == 0
    for window in windows:
        assert window.trigger == "periodic" and window.sfreq == SFREQ
        assert window.duration == pytest.approx(0.44)
        assert_window_is_buffer_content(window)


def test_periodic_windows_overwritten_before_poll_are_skipped_and_counted():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    windower = PeriodicWindower(SFREQ, length=0.44, hop=0.5)
    write_ramp(buffer, 1000)  # held: 700..999
    windows = windower.poll(buffer)
    # windows start at 0,125,...,875; the first kept one starts at >= 700 and ends by 1000
    assert [w.start for w in windows] == [750, 875]
    assert windower.n_missed == 6  # 0 .. 625
    assert windower.next_start == 750 + 125 * len(windows)
    for window in windows:
        assert_window_is_buffer_content(window)
    assert "missed" in repr(windower)


def test_marker_windows_start_at_marker_plus_offset():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    windower = MarkerWindower(SFREQ, length=0.44, offset=0.02, match={"cat", "dog"})
    assert windower.n_offset == 5
    write_ramp(buffer, 100)
    assert windower.add_marker(40, "cat")
    assert not windower.add_marker(60, "noise")  # not matched
    assert windower.add_marker(90, "dog")
    assert windower.poll(buffer) == []  # 45 + 110 = 155 samples not there yet
    write_ramp(buffer, 60)
    (cat,) = windower.poll(buffer)
    assert (cat.start, cat.stop, cat.description, cat.trigger) == (45, 155, "cat", "marker")
    assert_window_is_buffer_content(cat)
    write_ramp(buffer, 100)
    (dog,) = windower.poll(buffer)
    assert (dog.start, dog.stop) == (95, 205)
    assert_window_is_buffer_content(dog)
    assert windower.n_pending == 0


def test_marker_regex_and_overwritten_markers():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    windower = MarkerWindower(SFREQ, match=r"stim/\d+")
    assert windower.add_marker(10, "stim/3")
    assert not windower.add_marker(10, "stim/x")
    write_ramp(buffer, 1000)  # the marker's samples are long gone
    assert windower.poll(buffer) == []
    assert windower.n_missed == 1


def test_window_validation_and_bad_lengths():
    with pytest.raises(ValueError, match=r"data must be \(n_channels, 3\)"):
        Window(0, 3, np.zeros((2, 4)), np.zeros(3), SFREQ, "periodic")
    with pytest.raises(ConfigError, match="is 0 samples at 250 Hz; it must be at least 1"):
        PeriodicWindower(SFREQ, length=0.001)


def test_latest_trigger_takes_the_newest_complete_window_at_least_min_hop_apart():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    trigger = LatestTrigger(SFREQ, length=0.44, min_hop=0.1)  # 110 samples, hop >= 25
    assert trigger.waits_for_generator and not trigger.fixed_windows
    write_ramp(buffer, 100)
    assert trigger.poll(buffer) == []  # not one whole window yet
    assert trigger.next_stop() == 110
    write_ramp(buffer, 100)
    (first,) = trigger.poll(buffer)
    assert (first.start, first.stop, first.trigger) == (90, 200, "latest")
    assert_window_is_buffer_content(first)
    assert trigger.poll(buffer) == []  # nothing new
    write_ramp(buffer, 24)
    assert trigger.poll(buffer) == []  # 24 new samples < min_hop
    assert trigger.next_stop() == 90 + 25 + 110
    write_ramp(buffer, 400)  # the buffer wrapped: still the newest window, none "missed"
    (second,) = trigger.poll(buffer)
    assert (second.start, second.stop) == (624 - 110, 624)
    assert_window_is_buffer_content(second)
    assert trigger.n_windows == 2 and trigger.n_missed == 0


def test_recorded_trigger_hands_out_the_recorded_windows_one_at_a_time_with_their_seeds():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    recorded = [RecordedWindow(130, 240, seed=7, index=1), RecordedWindow(20, 130, seed=5, index=0),
                RecordedWindow(500, 610, seed=9, index=2), RecordedWindow(5, 115, index=9)]
    trigger = RecordedTrigger(SFREQ, recorded, offset=10)  # the replay starts at file sample 10
    assert trigger.n_pending == 3  # the window before the replay's first sample is left out
    assert trigger.next_stop() == 120
    write_ramp(buffer, 250)
    (first,) = trigger.poll(buffer)  # both are complete: one per poll, in order
    assert (first.start, first.stop, first.seed, first.trigger) == (10, 120, 5, "recorded")
    (second,) = trigger.poll(buffer)
    assert (second.start, second.stop, second.seed) == (120, 230, 7)
    assert_window_is_buffer_content(second)
    assert trigger.poll(buffer) == [] and trigger.next_stop() == 600
    write_ramp(buffer, 700)  # 950 written, capacity 300: [490, 600) was overwritten
    assert trigger.poll(buffer) == []
    assert trigger.n_missed == 1 and trigger.next_stop() is None


def test_fixed_grid_triggers_say_where_a_held_source_may_stop():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    interval = IntervalTrigger(SFREQ, length=0.44, hop=0.5)
    assert interval.next_stop() == 110
    write_ramp(buffer, 110)
    assert [w.start for w in interval.poll(buffer)] == [0]
    assert interval.next_stop() == 125 + 110
    marker = MarkerTrigger(SFREQ, length=0.44, offset=0.02, match="stim")
    assert marker.next_stop() is None  # no marker yet: nothing to wait for
    marker.add_marker(40, "stim")
    marker.add_marker(50, "other")  # not matched
    assert marker.next_stop() == 45 + 110


def test_make_trigger_builds_each_mode_and_recorded_needs_a_session_folder():
    assert isinstance(make_trigger(WindowConfig(), SFREQ), LatestTrigger)  # the default
    assert isinstance(make_trigger(WindowConfig(mode="interval"), SFREQ), IntervalTrigger)
    assert isinstance(make_trigger(WindowConfig(mode="marker"), SFREQ), MarkerTrigger)
    with pytest.raises(ConfigError, match="dd-live replay SESSION_FOLDER"):
        make_trigger(WindowConfig(mode="recorded"), SFREQ, source=None)
    with pytest.raises(ConfigError, match="min_hop"):
        WindowConfig(min_hop=0)
