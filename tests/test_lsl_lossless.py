"""No sample lost or duplicated: a real 128 ch x 1 kHz LSL outlet, through LSLSource, the
acquisition thread and a wrapping ring buffer, into periodic windows (a counter channel proves
it, as in mne-lsl's tests). This one test streams for ~20 s of real time.
"""

import threading
import time

import numpy as np
import pylsl

from dd_live.sources.lsl import LSLSource
from dd_live.stream import AcquisitionThread, PeriodicWindower, RingBuffer

N_CHANNELS = 128  # channel 0 is the counter
SFREQ = 1000.0
DURATION = 20.0  # seconds streamed
PUSH_INTERVAL = 0.01  # seconds between two pushes of the outlet
CAPACITY = 3000  # 3 s: the buffer wraps ~7 times
WINDOW = 0.5  # length == hop: windows tile the stream, each sample in exactly one
MICROVOLT = 1e-6


def expected_eeg(counter: np.ndarray) -> np.ndarray:
    """``(N_CHANNELS - 1, n_times)`` microvolts that channels 1.. carry for these counter values."""
    channels = np.arange(1, N_CHANNELS)[:, None]
    return 50.0 * np.sin(0.01 * counter[None, :] + channels)


def make_outlet(name: str) -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", N_CHANNELS, SFREQ, pylsl.cf_float32, name)
    channels = info.desc().append_child("channels")
    for ch in range(N_CHANNELS):
        channel = channels.append_child("channel")
        channel.append_child_value("label", "COUNTER" if ch == 0 else f"E{ch}")
        channel.append_child_value("type", "misc" if ch == 0 else "EEG")
        channel.append_child_value("unit", "" if ch == 0 else "microvolts")
    return pylsl.StreamOutlet(info, chunk_size=10)


def push_paced(outlet: pylsl.StreamOutlet, n_total: int, done: threading.Event) -> None:
    """Push ``n_total`` samples paced by the wall clock (samples due = elapsed x rate), each
    stamped ``t0 + counter / SFREQ`` so the timestamps are regular whatever the scheduling."""
    t0 = time.monotonic()
    lsl_t0 = pylsl.local_clock()
    n_sent = 0
    while n_sent < n_total:
        n_due = min(int((time.monotonic() - t0) * SFREQ), n_total) - n_sent
        if n_due > 0:
            counter = np.arange(n_sent, n_sent + n_due, dtype=np.float64)
            chunk = np.vstack([counter[None, :], expected_eeg(counter)]).T.astype(np.float32)
            # liblsl back-dates the earlier samples of a chunk by the nominal rate
            outlet.push_chunk(np.ascontiguousarray(chunk), lsl_t0 + counter[-1] / SFREQ)
            n_sent += n_due
        time.sleep(PUSH_INTERVAL)
    done.set()


class CheckedRingBuffer(RingBuffer):
    """A RingBuffer that checks every chunk written continues the counter."""

    def __init__(self, n_channels: int, capacity: int) -> None:
        super().__init__(n_channels, capacity)
        self.bad_chunks = []

    def write(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        expected = np.arange(self.n_written, self.n_written + data.shape[1])
        if not np.array_equal(data[0], expected):
            self.bad_chunks.append((self.n_written, data[0, :3].tolist()))
        super().write(data, timestamps)


def test_128ch_1khz_nothing_lost_or_duplicated(stream_name):
    outlet = make_outlet(stream_name)
    source = LSLSource(stream_name, timeout=5.0)
    assert source.info.n_channels == N_CHANNELS
    assert source.info.ch_names[0] == "COUNTER"
    assert source.info.units[1] == "V"  # microvolts on the wire, volts delivered
    raw = CheckedRingBuffer(N_CHANNELS, CAPACITY)
    acquisition = AcquisitionThread(source, raw)
    windower = PeriodicWindower(SFREQ, WINDOW, WINDOW)
    n_total = int(DURATION * SFREQ)
    done = threading.Event()
    acquisition.start()  # the inlet is connected before the first sample is pushed
    pusher = threading.Thread(target=push_paced, args=(outlet, n_total, done), daemon=True)
    pusher.start()
    windows = []
    try:
        deadline = time.monotonic() + DURATION + 10.0
        while raw.n_written < n_total and time.monotonic() < deadline:
            windows += windower.poll(raw)
            time.sleep(0.1)
        windows += windower.poll(raw)
    finally:
        acquisition.stop()
        pusher.join(timeout=5.0)
    assert done.is_set()
    assert raw.n_written == n_total, f"{raw.n_written} samples received of {n_total}"
    assert raw.n_overwritten > 0  # the buffer wrapped
    assert raw.bad_chunks == []
    assert windower.n_missed == 0
    assert len(windows) == n_total // int(WINDOW * SFREQ)
    counters = np.concatenate([w.data[0] for w in windows])
    np.testing.assert_array_equal(counters, np.arange(n_total))
    for window in windows[:: len(windows) // 5]:
        np.testing.assert_allclose(
            window.data[1:], expected_eeg(window.data[0]) * MICROVOLT, rtol=1e-6, atol=1e-11
        )
        assert np.all(np.diff(window.timestamps) > 0)
    assert not [e for e in acquisition.events if e.kind in ("gap", "disconnect")]


def test_128ch_1khz_through_a_live_session_with_generator_and_recorder(stream_name, tmp_path):
    """The same stream from another process (tests/lsl_outlet.py, real time), read by a
    threaded LiveSession with default settings, the tiny generator making images and the
    recorder writing: the recording's counter column is 0..N-1, every row intact."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    import mne

    from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, SourceConfig
    from dd_live.recording import read_events, read_timestamps
    from dd_live.session import LiveSession

    n_total = 8000
    phase = {"name": stream_name, "source_id": stream_name, "n_channels": N_CHANNELS,
             "sfreq": SFREQ, "n_samples": n_total, "chunk": 10, "speed": 1.0, "hold": 10.0}
    outlet = subprocess.Popen([sys.executable, str(Path(__file__).with_name("lsl_outlet.py")),
                               json.dumps([phase])], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    config = AppConfig(source=SourceConfig(spec=f"lsl:{stream_name}"),
                       generator=GeneratorConfig(model="tiny", steps=2),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="lossless"))
    session = LiveSession(config)
    events = []
    session.callbacks.event.append(events.append)
    try:
        session.start()
        deadline = time.monotonic() + 60.0
        while session.raw.n_written < n_total and time.monotonic() < deadline:
            time.sleep(0.1)
        folder = session.recording_path
    finally:
        session.stop()
        outlet.stdin.close()
        outlet.wait(timeout=30)
        outlet.stdout.close()
    assert session.n_images > 0  # the generator ran alongside
    assert not [e for e in events if e.kind in ("gap", "discontinuity", "disconnect")]
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    recorded = raw.get_data()
    np.testing.assert_array_equal(recorded[0], np.arange(n_total))
    expected = 20e-6 * np.sin(0.3 * recorded[0][None, :] + np.arange(1, N_CHANNELS)[:, None])
    np.testing.assert_allclose(recorded[1:], expected, rtol=1e-5, atol=1e-11)
    assert read_timestamps(folder).size == n_total
    assert not [e for e in read_events(folder) if e["type"] == "recorder_overrun"]
