"""A recorded session folder replays into the same windows and the same images (trigger
``recorded``), at full speed, without dropping a window: the replay waits for the generator.

The tiny generator has random weights (its images carry no meaning); everything else is real:
the synthetic headset, the session, the recorder's folder on disk, the file replay.
"""

import threading
import time

import numpy as np
from PIL import Image

from dd_live.cli import main
from dd_live.config import AppConfig, GeneratorConfig, RecordConfig
from dd_live.decoding import EEGDecoder
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource, open_source

N_IMAGES = 5
#: Signal between two images of the original session: the windows spread over more seconds of
#: signal than the replay's ring buffer holds, so a replay that ran ahead would lose them.
SIGNAL_BETWEEN_IMAGES = 2.5
REPLAY_BUFFER = 2.0  # s, the smallest [buffer] seconds


def _record_original(tmp_path):
    """A live session in the default (latest) trigger mode, recorded; windows far apart."""
    config = AppConfig(generator=GeneratorConfig(model="tiny", steps=2, seed=7),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="orig"))
    decoder = EEGDecoder.from_config(config.generator)
    source = SyntheticSource(8, 250.0, counter=True, realtime=False, seed=3, chunk_duration=0.1)
    session = LiveSession(config, source=source, decoder=decoder, threaded=False)
    results = []
    session.callbacks.image.append(results.append)
    session.start()
    while len(results) < N_IMAGES:
        session.pause_generation()
        session.run_for(SIGNAL_BETWEEN_IMAGES)
        session.resume_generation()
        n = len(results)
        while len(results) == n:
            session.step()
    session.pause_generation()
    session.run_for(0.5)
    session.stop()
    return session, results, decoder


class GatedDecoder:
    """The real decoder; its first window waits until the test opens the gate."""

    def __init__(self, decoder):
        self.decoder = decoder
        self.n_channels, self.n_times = decoder.n_channels, decoder.n_times
        self.gate, self.waiting = threading.Event(), threading.Event()

    def __call__(self, eeg, seed):
        self.waiting.set()
        self.gate.wait(30)
        return self.decoder(eeg, seed)

    def __getattr__(self, name):
        return getattr(self.decoder, name)


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_full_speed_replay_recuts_the_recorded_windows_and_waits_for_the_generator(tmp_path):
    original, first, decoder = _record_original(tmp_path)
    folder = original.recording_path
    assert first[0].trigger == "latest"
    assert np.diff([r.window_start for r in first]).min() > REPLAY_BUFFER * 250  # far apart

    config = AppConfig.from_toml(folder / "config.toml").replace(
        record={"enabled": False}, window={"mode": "recorded"}, buffer={"seconds": REPLAY_BUFFER})
    source = open_source(f"file:{folder}?speed=0")
    gated = GatedDecoder(decoder)
    replayed = LiveSession(config, source=source, decoder=gated)  # threaded, as the app runs
    second = []
    replayed.callbacks.image.append(second.append)
    replayed.start()
    try:
        assert gated.waiting.wait(30)  # the first window is with the generator, which waits
        # ... and so does the replay (back-pressure), once the next window is complete
        _wait_for(lambda: source.held and replayed.raw.n_written == first[1].window_stop)
        time.sleep(0.2)  # (a replay that did not wait would race through the file now)
        assert source.held and replayed.raw.n_written == first[1].window_stop
        gated.gate.set()
        _wait_for(lambda: replayed.finished)  # the end of the file and the last image
    finally:
        replayed.stop()
    assert [(r.window_start, r.window_stop, r.seed) for r in first] == \
        [(r.window_start, r.window_stop, r.seed) for r in second]
    assert replayed.stats().n_dropped == 0 and replayed.trigger.n_missed == 0
    for a, b in zip(first, second):  # the same seed on the same samples: the same picture
        np.testing.assert_array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))


def test_dd_live_replay_of_a_session_folder_makes_the_same_images_and_ends(tmp_path):
    _, first, _ = _record_original(tmp_path / "orig")
    original = next((tmp_path / "orig").iterdir())
    out = tmp_path / "again"
    # full speed, headless, no --duration: it ends at the end of the file, after the last image
    assert main(["replay", str(original), "--speed", "0", "--headless", "--record", str(out)]) == 0
    again = next(out.iterdir())
    images = [e for e in read_events(again) if e["type"] == "image"]
    assert [(e["start"], e["stop"], e["seed"]) for e in images] == \
        [(r.window_start, r.window_stop, r.seed) for r in first]
    for event, result in zip(images, first):
        assert event["trigger"] == "recorded"
        np.testing.assert_array_equal(np.asarray(Image.open(again / event["images"][0])),
                                      np.asarray(result.images[0]))
