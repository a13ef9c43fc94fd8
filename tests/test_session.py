"""LiveSession end to end: synthetic source -> stream core -> tiny models -> images -> recorder.

The tiny generator has random weights (its images carry no meaning); everything else is real.
"""

import threading
import time

import mne
import numpy as np
import pytest

from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, WindowConfig
from dd_live.decoding import EEGDecoder
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource

SFREQ = 250.0
N_EEG = 16


def _config(tmp_path=None, **window):
    """Interval windows (a fixed grid the tests can predict) unless ``mode`` says otherwise."""
    config = AppConfig(window=WindowConfig(**{"mode": "interval", "length": 0.44, "hop": 0.5,
                                              **window}),
                       generator=GeneratorConfig(model="tiny", steps=2))
    if tmp_path is not None:
        config = config.replace(record=RecordConfig(enabled=True, root=str(tmp_path), name="t"))
    return config


@pytest.fixture(scope="module")
def decoder():
    return EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=2))


def _source(realtime=False):
    return SyntheticSource(N_EEG, SFREQ, counter=True, realtime=realtime, seed=1)


def _counter(session):
    data, _ = session.raw.latest(session.raw.n_held)
    return data[-1]


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_images_arrive_with_their_window_ranges(decoder):
    session = LiveSession(_config(), source=_source(), decoder=decoder, threaded=False)
    results, announced = [], []
    session.callbacks.image.append(results.append)
    session.callbacks.samples.append(lambda first, n: announced.append((first, n)))
    session.start()
    while len(results) < 4:
        session.step()
    session.stop()
    # every sample announced once, in order
    assert announced[0][0] == 0
    assert all(a + n == b for (a, n), (b, _) in zip(announced, announced[1:]))
    assert sum(n for _, n in announced) == session.raw.n_written
    length, hop = round(0.44 * SFREQ), round(0.5 * SFREQ)
    for k, result in enumerate(results):
        assert result.index == k
        assert result.window_stop - result.window_start == length
        assert result.window_start == k * hop
        counter, timestamps = session.raw.get(result.window_start, result.window_stop)
        np.testing.assert_array_equal(counter[-1], np.arange(result.window_start,
                                                             result.window_stop))
        assert (result.t_first, result.t_last) == (timestamps[0], timestamps[-1])
        assert result.images[0].size[0] > 0
        assert {"encode", "total", "latency"} <= set(result.timings)


class SlowDecoder:
    """The real tiny decoder, made slow on purpose."""

    def __init__(self, decoder, delay):
        self.decoder, self.delay = decoder, delay
        self.n_channels, self.n_times = decoder.n_channels, decoder.n_times
        self.description = "slow"
        self.calls = 0
        self.started = threading.Event()

    def __call__(self, eeg, seed):
        self.calls += 1
        self.started.set()
        time.sleep(self.delay)
        return self.decoder(eeg, seed)

    def __getattr__(self, name):  # interrupt / clear_interrupt: the real decoder's
        return getattr(self.decoder, name)


def test_interval_mode_with_a_slow_generator_drops_windows_but_no_sample_is_lost(decoder):
    slow = SlowDecoder(decoder, delay=0.6)
    session = LiveSession(_config(hop=0.1), source=_source(realtime=True), decoder=slow)
    session.start()
    _wait_for(lambda: session.worker.n_dropped >= 3 and session.n_images >= 1)
    session.stop()
    stats = session.stats()
    assert stats.n_dropped >= 3
    assert stats.n_images >= 1
    counter = _counter(session)
    assert counter[0] == session.raw.first_index
    np.testing.assert_array_equal(np.diff(counter), 1)  # nothing lost, nothing duplicated
    assert session.raw.n_written == counter[-1] + 1


def test_latest_mode_by_default_draws_the_newest_window_whenever_the_generator_is_free(decoder):
    config = AppConfig(generator=GeneratorConfig(model="tiny", steps=2))  # default windows
    assert config.window.mode == "latest"
    session = LiveSession(config, source=_source(), decoder=decoder, threaded=False)
    results, newest = [], []
    session.callbacks.image.append(results.append)
    session.callbacks.image.append(lambda result: newest.append(session.raw.n_written))
    session.start()
    while len(results) < 6:
        session.step()
    session.stop()
    length = round(config.window.length * SFREQ)
    min_hop = round(config.window.min_hop * SFREQ)
    for result, n_written in zip(results, newest):
        assert result.trigger == "latest"
        # the window ends at the newest sample there was when the generator took it
        assert (result.window_start, result.window_stop) == (n_written - length, n_written)
    starts = [r.window_start for r in results]
    assert min(np.diff(starts)) >= min_hop
    assert [r.seed for r in results] == starts  # the default seed policy: seed 0 + first sample
    stats = session.stats()
    assert stats.n_dropped == 0 and stats.n_windows == stats.n_images == 6


def test_latest_mode_with_a_slow_generator_drops_nothing_and_skips_to_the_newest(decoder):
    slow = SlowDecoder(decoder, delay=0.3)
    config = AppConfig(generator=GeneratorConfig(model="tiny", steps=2))
    session = LiveSession(config, source=_source(realtime=True), decoder=slow)
    results = []
    session.callbacks.image.append(results.append)
    session.start()
    _wait_for(lambda: len(results) >= 4)
    session.stop()
    stats = session.stats()
    assert stats.n_dropped == 0  # nothing is dropped by construction
    assert stats.n_windows - stats.n_images <= 1  # at most the one being made at stop()
    # each image was drawn from the newest window once the previous image was done, so
    # windows are about one generation (0.3 s here: > 50 samples) apart, not min_hop
    gaps = np.diff([r.window_start for r in results])
    assert gaps.min() > 50
    counter = _counter(session)
    np.testing.assert_array_equal(np.diff(counter), 1)  # and no sample lost


def test_a_generator_that_raises_is_reported_and_the_session_goes_on(decoder):
    calls = {"n": 0}

    def flaky(eeg, seed):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return decoder(eeg, seed)

    flaky.n_channels, flaky.n_times = decoder.n_channels, decoder.n_times
    flaky.clear_interrupt = decoder.clear_interrupt  # the session re-arms it for each window
    session = LiveSession(_config(), source=_source(), decoder=flaky, threaded=False)
    errors, results = [], []
    session.callbacks.error.append(lambda part, exc: errors.append((part, str(exc))))
    session.callbacks.image.append(results.append)
    session.start()
    while len(results) < 2:
        session.step()
    session.stop()
    assert errors == [("generation", "CUDA out of memory (simulated)")]
    assert session.stats().n_failed == 1


def test_shutdown_mid_generation_leaves_a_complete_session_folder(decoder, tmp_path):
    gate = threading.Event()

    class Blocking(SlowDecoder):
        def __call__(self, eeg, seed):
            self.started.set()
            gate.wait(10)
            return self.decoder(eeg, seed)

    blocking = Blocking(decoder, 0)
    session = LiveSession(_config(tmp_path), source=_source(realtime=True), decoder=blocking)
    session.start()
    assert blocking.started.wait(30)  # a generation is running now
    threading.Timer(0.3, gate.set).start()  # it ends while stop() waits for it
    session.stop()
    folder = session.recording_path
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    assert raw.n_times == session.raw.n_written
    np.testing.assert_array_equal(raw.get_data()[-1], np.arange(raw.n_times))
    events = read_events(folder)  # every line complete; the interrupted image is not one
    assert [e for e in events if e["type"] == "image"] == []
    assert session.state == "stopped" and not session.worker.running


def test_recording_started_mid_session_indexes_its_own_file(decoder, tmp_path):
    session = LiveSession(_config(), source=_source(), decoder=decoder, threaded=False)
    session.start()
    session.run_for(1.0)
    offset = session.raw.n_written
    folder = session.start_recording(tmp_path, "mid")
    session.run_for(2.0)
    assert session.stop_recording() == folder
    session.run_for(0.5)  # acquisition goes on without the recorder
    session.stop()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(raw.get_data()[-1], offset + np.arange(raw.n_times))
    images = [e for e in read_events(folder) if e["type"] == "image"]
    assert images
    for event in images:  # file-relative: the counter at "start" is offset + start
        assert raw.get_data()[-1][event["start"]] == offset + event["start"]
        assert event["stop"] - event["start"] == round(0.44 * SFREQ)


def test_fixed_quality_threshold_rejects_artefacts_and_ignores_the_counter(decoder):
    """The counter channel (huge peak-to-peak) is not EEG: only EEG rows are judged."""
    config = _config().replace(quality={"mode": "fixed", "max_ptp": 1.0})  # 1 V: never on EEG
    session = LiveSession(config, source=_source(), decoder=decoder, threaded=False)
    rejected, results = [], []
    session.callbacks.window_rejected.append(lambda w, reasons: rejected.append(reasons))
    session.callbacks.image.append(results.append)
    session.start()
    while len(results) < 2:
        session.step()
    assert rejected == []
    session.quality = type(session.quality)(SFREQ, mode="fixed", max_ptp=1e-6)  # 1 µV: always
    n_before = session.n_rejected
    while session.n_rejected < n_before + 2:
        session.step()
    session.stop()
    assert "peak-to-peak" in " ".join(rejected[-1])


def test_default_torch_threads_leave_one_core_to_acquisition_and_the_window():
    import os

    import torch

    from dd_live.config import GeneratorConfig, resolve_threads
    from dd_live.decoding import set_torch_threads

    cores = len(os.sched_getaffinity(0))
    assert GeneratorConfig().threads == 0  # automatic
    assert resolve_threads(0) == max(1, cores - 1)
    assert resolve_threads(3) == 3  # a number the user sets wins
    before = torch.get_num_threads()
    try:
        assert set_torch_threads(0) == torch.get_num_threads() == max(1, cores - 1)
    finally:
        torch.set_num_threads(before)


def test_stop_after_a_failed_start_reports_no_error(tmp_path, caplog):
    """A source that cannot be opened fails start() with its reason; the stop() that follows
    (a window closing, a with-block) reports nothing more: no second, misleading error."""
    config = AppConfig().replace(source={"spec": f"file:{tmp_path / 'missing.fif'}"})
    session = LiveSession(config, generate=False, threaded=False)
    errors = []
    session.callbacks.error.append(lambda part, exc: errors.append((part, exc)))
    with pytest.raises(Exception, match="missing.fif"):
        session.start()
    session.stop()
    assert session.state == "stopped"
    assert errors == []
    assert "stopping the source failed" not in caplog.text
