"""Seeking during a ``recorded`` replay: the schedule of recorded windows follows the jump.

The replay bar seeks a :class:`~dd_live.sources.replay.ReplaySource` while the session cuts the
windows a session folder's events.jsonl lists. After a seek, stream sample ``n`` is no longer
file sample ``offset + n``; the trigger resynchronises on the source's segments, so every
window is still cut from the file samples it was recorded from (checked with the synthetic
headset's COUNTER channel, which numbers the samples) and carries its recorded seed.

The tiny generator has random weights (its images carry no meaning); the synthetic headset,
the session, the recorder's folder on disk and the file replay are real.
"""

import threading

import numpy as np
from test_replay_session import _record_original, _wait_for

from dd_live.config import AppConfig
from dd_live.session import LiveSession
from dd_live.sources import open_source, read_recording
from dd_live.triggers import read_recorded_windows

SFREQ = 250.0
LEAD = 50  # samples: seek to this much before a recorded window's first sample


class SteppedDecoder:
    """The real decoder; each call waits until the test releases one."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.n_channels, self.n_times = decoder.n_channels, decoder.n_times
        self.release = threading.Semaphore(0)
        self.n_calls = 0

    def __call__(self, eeg, seed):
        self.n_calls += 1
        assert self.release.acquire(timeout=60)
        return self.decoder(eeg, seed)

    def __getattr__(self, name):
        return getattr(self.decoder, name)


def test_seek_during_a_recorded_replay_cuts_each_window_from_its_recorded_samples(tmp_path):
    original, first, decoder = _record_original(tmp_path)
    folder = original.recording_path
    recorded = sorted(read_recorded_windows(folder), key=lambda w: w.start)
    assert len(recorded) == 5
    counter = read_recording(folder).data[list(read_recording(folder).ch_names).index("COUNTER")]

    config = AppConfig.from_toml(folder / "config.toml").replace(
        record={"enabled": False}, window={"mode": "recorded"})
    source = open_source(f"file:{folder}?speed=0")
    stepped = SteppedDecoder(decoder)
    replayed = LiveSession(config, source=source, decoder=stepped)  # threaded, as the app runs
    results = []
    replayed.callbacks.image.append(results.append)

    def held_at(n_written):
        _wait_for(lambda: source.held and replayed.raw.n_written == n_written)

    replayed.start()
    try:
        _wait_for(lambda: stepped.n_calls == 1)  # window 0 is with the generator
        held_at(recorded[1].stop)  # the replay waits at the end of window 1
        # forward, past window 2: window 1 (complete) still comes, then 3 and 4
        source.seek((recorded[3].start - LEAD) / SFREQ)
        stepped.release.release()  # image 0
        stepped.release.release()  # image 1
        _wait_for(lambda: len(results) == 2 and stepped.n_calls == 3)  # window 3 waits
        stop_4 = recorded[1].stop + LEAD + (recorded[4].stop - recorded[3].start)
        held_at(stop_4)  # the replay waits at the end of window 4
        # backward, to before window 2: window 4 (complete) comes, then 2, 3 and 4 again
        source.seek((recorded[2].start - LEAD) / SFREQ)
        for _ in range(5):
            stepped.release.release()
        _wait_for(lambda: replayed.finished)
    finally:
        replayed.stop()

    expected = [recorded[k] for k in (0, 1, 3, 4, 2, 3, 4)]
    assert [r.seed for r in results] == [w.seed for w in expected]
    assert replayed.stats().n_dropped == 0 and replayed.trigger.n_missed == 0
    for result, window in zip(results, expected):
        data, _ = replayed.raw.get(result.window_start, result.window_stop)
        seen = data[list(replayed.info.ch_names).index("COUNTER")]
        np.testing.assert_array_equal(seen, counter[window.start:window.stop])
