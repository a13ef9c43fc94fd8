"""AcquisitionThread driven by step() (and once as a real thread) on a counter-ramp source."""

import logging
import threading
from collections import deque

import numpy as np
import pytest

from dd_live.errors import MontageError, SourceError
from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.stream import AcquisitionThread, RingBuffer, StreamingFilter, design_filter

SFREQ = 100.0
N_CHANNELS = 2


class CounterSource(Source):
    """Channel 0 counts samples, channel 1 is a 10 Hz sine; the test decides what each read
    returns (``feed``), when timestamps jump, when reads raise (``fail``) and when it is
    finished."""

    def __init__(self) -> None:
        super().__init__()
        self.info = StreamInfo("counter", SFREQ, ("count", "sine"), ("misc", "eeg"))
        self.chunks: deque = deque()
        self.n_fed = 0
        self.next_time = 0.0
        self.done = False

    def feed(self, n_times: int, jump: float = 0.0) -> None:
        """Queue ``n_times`` samples for the next read; ``jump`` seconds are skipped first."""
        self.next_time += jump
        index = np.arange(self.n_fed, self.n_fed + n_times)
        times = self.next_time + np.arange(n_times) / SFREQ
        data = np.vstack([index.astype(float), 1e-5 * np.sin(2 * np.pi * 10 * times)])
        self.chunks.append((data, times))
        self.n_fed += n_times
        self.next_time += n_times / SFREQ

    def fail(self, exc: Exception) -> None:
        """The read after the chunks queued so far raises ``exc``."""
        self.chunks.append(exc)

    def _start(self) -> None:
        pass

    def _read(self):
        if self.chunks:
            chunk = self.chunks.popleft()
            if isinstance(chunk, Exception):
                raise chunk
            return chunk
        return empty_chunk(N_CHANNELS)

    def _stop(self) -> None:
        pass

    @property
    def finished(self) -> bool:
        return self.done and not self.chunks


class FakeClock:
    """A clock the test moves by hand (so stall tests never sleep)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(source=None, **kwargs):
    source = source or CounterSource().start()
    raw = RingBuffer(N_CHANNELS, 1000)
    filtered = RingBuffer(N_CHANNELS, 1000)
    filt = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), N_CHANNELS)
    events = []
    acq = AcquisitionThread(source, raw, filtered, filt, on_events=events.extend, **kwargs)
    return source, acq, events


def test_steps_write_raw_and_filtered_and_count():
    source, acq, _ = make()
    assert acq.state == "idle"
    for n in (10, 0, 1, 37):
        source.feed(n)
        assert acq.step() == n
    assert acq.state == "running" and acq.n_samples == 48
    data, times = acq.raw.latest(48)
    np.testing.assert_array_equal(data[0], np.arange(48))
    np.testing.assert_allclose(times, np.arange(48) / SFREQ)
    # filtered = the same filter run offline on the whole signal
    offline = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), N_CHANNELS)(data)
    np.testing.assert_allclose(acq.filtered.latest(48)[0], offline, rtol=0, atol=1e-12)


def test_gap_makes_an_event_and_restarts_the_filter():
    source, acq, events = make()
    source.feed(50)
    acq.step()
    source.feed(30, jump=0.5)  # 0.5 s (50 samples) missing before this chunk
    acq.step()
    gaps = [e for e in events if e.kind == "gap"]
    assert len(gaps) == 1
    gap = gaps[0]
    assert gap.sample_index == 50
    assert gap.duration == pytest.approx(0.5)
    assert gap.extra["n_missing"] == 50
    assert gap.timestamp == pytest.approx(1.0)
    assert "missing" in gap.description
    # the filter restarted at the gap: samples after it equal a fresh filter on them alone
    raw_after, _ = acq.raw.get(50, 80)
    fresh = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), N_CHANNELS)(raw_after)
    np.testing.assert_allclose(acq.filtered.get(50, 80)[0], fresh, rtol=0, atol=1e-15)


def test_gap_inside_a_chunk_splits_it():
    source, acq, events = make()
    source.feed(20)
    source.feed(20, jump=1.0)
    # deliver both as one chunk
    (d1, t1), (d2, t2) = source.chunks.popleft(), source.chunks.popleft()
    source.chunks.append((np.hstack([d1, d2]), np.r_[t1, t2]))
    acq.step()
    (gap,) = [e for e in events if e.kind == "gap"]
    assert gap.sample_index == 20 and gap.duration == pytest.approx(1.0)
    fresh = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), N_CHANNELS)(d2)
    np.testing.assert_allclose(acq.filtered.get(20, 40)[0], fresh, rtol=0, atol=1e-15)


def test_timestamps_going_back_are_a_discontinuity():
    source, acq, events = make()
    source.feed(20)
    acq.step()
    source.feed(20, jump=-1.0)
    acq.step()
    (event,) = [e for e in events if e.kind == "discontinuity"]
    assert event.sample_index == 20 and "went back by" in event.description


def test_no_data_for_stall_timeout_is_a_stall_then_resume():
    clock = FakeClock()
    states = []
    source, acq, events = make(
        stall_timeout=2.0, clock=clock, on_state=lambda *change: states.append(change)
    )
    source.feed(10)
    acq.step()
    clock.now = 1.9
    acq.step()
    assert acq.state == "running"
    clock.now = 2.5
    acq.step()
    assert acq.state == "stalled"
    (stall,) = [e for e in events if e.kind == "stall"]
    assert stall.sample_index == 10 and "no data for 2.5 s" in stall.description
    # the hint is what the source knows about itself: no battery talk for a generic source
    assert stall.description.endswith(CounterSource().stall_hint)
    assert "battery" not in stall.description
    assert states[-1] == ("stalled", "no data for 2.5 s")
    clock.now = 10.0
    source.feed(5)
    acq.step()
    assert acq.state == "running"
    assert [e.kind for e in events][-1] == "resume"
    assert states == [
        ("running", "receiving data"),
        ("stalled", "no data for 2.5 s"),
        ("running", "receiving data"),
    ]


def test_source_error_is_logged_signalled_and_survived(caplog):
    errors = []
    source, acq, events = make(on_error=errors.append)
    source.feed(10)
    acq.step()
    source.fail(SourceError("headset unplugged"))
    with caplog.at_level(logging.ERROR, logger="dd_live"):
        assert acq.step() == 0
    assert acq.state == "error"
    assert isinstance(acq.error, SourceError) and errors == [acq.error]
    record = caplog.records[-1]
    assert "will keep trying" in record.getMessage() and record.exc_info is not None
    assert events[-1].kind == "error" and "headset unplugged" in events[-1].description
    source.feed(5)
    assert acq.step() == 5
    assert acq.state == "running" and events[-1].kind == "resume"


def test_strict_mode_reraises():
    source, acq, _ = make(strict=True)
    source.fail(SourceError("boom"))
    with pytest.raises(SourceError, match="boom"):
        acq.step()


def test_markers_get_the_index_of_the_first_sample_at_or_after_them():
    source, acq, events = make()
    source.feed(30)  # timestamps 0.00 .. 0.29
    source._push_event(SourceEvent("marker", 0.105, "cat"))  # between samples 10 and 11
    source._push_event(SourceEvent("marker", 0.5, "dog"))  # samples not there yet
    source._push_event(SourceEvent("reconnect", 0.2, "back"))
    acq.step()
    placed = {e.description: e for e in events}
    assert placed["cat"].sample_index == 11 and placed["cat"].kind == "marker"
    assert placed["back"].sample_index == 20
    assert "dog" not in placed
    source.feed(30)  # up to 0.59
    acq.step()
    assert {e.description: e for e in events}["dog"].sample_index == 50


def test_finished_source_stops_with_an_end_event():
    source, acq, events = make()
    source.feed(10)
    source.done = True
    acq.step()
    assert acq.state == "running"
    assert acq.step() == 0
    assert acq.state == "stopped"
    assert events[-1].kind == "end" and events[-1].sample_index == 10
    assert acq.step() == 0  # stays stopped


def test_channel_count_mismatch_says_how_to_fix():
    source = CounterSource()
    with pytest.raises(
        MontageError, match=r"raw ring buffer has 3 channels but source 'counter' delivers 2"
    ):
        AcquisitionThread(source, RingBuffer(3, 100))


def test_real_thread_survives_errors_and_stops(caplog):
    source = CounterSource()
    states, errors, kinds = [], [], []
    resumed = threading.Event()

    def on_events(events):
        kinds.extend(e.kind for e in events)
        if "resume" in kinds:
            resumed.set()
        raise RuntimeError("a broken callback")  # logged, never fatal

    raw = RingBuffer(N_CHANNELS, 1000)
    acq = AcquisitionThread(
        source,
        raw,
        on_state=lambda state, message: states.append(state),
        on_error=errors.append,
        on_events=on_events,
    )
    source.feed(20)
    source.fail(SourceError("flaky link"))
    source.feed(20)
    with caplog.at_level(logging.ERROR, logger="dd_live"):
        acq.start()
        assert resumed.wait(timeout=10), f"no resume after the error; events {kinds}"
        assert acq.alive and acq.state == "running"
        acq.stop(timeout=5)
    assert not acq.alive and not source.running
    assert raw.n_written == 40
    assert kinds[:2] == ["error", "resume"]
    assert [type(e) for e in errors] == [SourceError]
    assert states == ["running", "error", "running", "stopped"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("will keep trying" in m for m in messages)
    assert any("callback" in m and "raised" in m for m in messages)


def test_a_chunk_of_the_wrong_shape_is_an_error_with_the_shapes():
    source, acq, events = make()
    source.chunks.append((np.zeros((3, 5)), np.arange(5) / SFREQ))
    assert acq.step() == 0
    assert acq.state == "error" and isinstance(acq.error, MontageError)
    assert "delivered a chunk of shape (3, 5), expected (2, 5)" in str(acq.error)
    assert list(acq.events) == events and events[-1].kind == "error"


def test_a_marker_after_a_backward_seek_lands_on_the_replayed_samples():
    """Seeking a replay back makes its timestamps go back: a marker replayed after the seek
    belongs to the new samples, not to the older samples still in the buffer that carry the
    same time stamp (those were what the marker's sample index named before the fix)."""
    from dd_live.sources.readers import Recording
    from dd_live.sources.replay import ReplaySource

    n_times = 1000
    data = np.zeros((2, n_times))
    data[0] = np.arange(n_times)  # row 0 numbers the file's samples
    recording = Recording(data, SFREQ, ("count", "Cz"), ("misc", "eeg"), ("", "V"),
                          ((3.0, 0.0, "stim"),), "seek", "seek")
    source = ReplaySource(recording, speed=float("inf"), chunk_duration=0.1)
    raw = RingBuffer(2, 3000)
    events = []
    acquisition = AcquisitionThread(source, raw, on_events=events.extend, strict=True)
    source.start()
    while raw.n_written < 500:  # file samples 0..499: the marker at 300 passes once
        acquisition.step()
    source.seek(2.0)  # back to file sample 200: stream sample 500 is file sample 200
    while raw.n_written < 800:
        acquisition.step()
    markers = [event for event in events if event.kind == "marker"]
    assert [event.sample_index for event in markers] == [300, 600]
    for event in markers:  # each lands on file sample 300
        assert raw.get(event.sample_index, event.sample_index + 1)[0][0, 0] == 300
    assert any(event.kind == "discontinuity" for event in events)
