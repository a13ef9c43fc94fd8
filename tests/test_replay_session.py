"""A recorded session folder replays into the same windows and, with the same seed, the same images."""

import numpy as np

from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, WindowConfig
from dd_live.decoding import EEGDecoder
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource, open_source


def _run(config, source, decoder, n_images):
    session = LiveSession(config, source=source, decoder=decoder, threaded=False)
    results = []
    session.callbacks.image.append(results.append)
    session.start()
    while len(results) < n_images and not session.source.finished:
        session.step()
    session.stop()
    return session, results


def test_replay_yields_the_same_windows_and_images(tmp_path):
    config = AppConfig(window=WindowConfig(length=0.44, hop=0.5),
                       generator=GeneratorConfig(model="tiny", steps=2, seed=7),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="orig"))
    decoder = EEGDecoder.from_config(config.generator)
    source = SyntheticSource(8, 250.0, counter=True, realtime=False, seed=3)
    original, first = _run(config, source, decoder, n_images=4)

    replay_config = AppConfig.from_toml(original.recording_path / "config.toml").replace(
        record={"enabled": False})
    replayed, second = _run(replay_config, open_source(f"file:{original.recording_path}?speed=0"),
                            decoder, n_images=4)
    assert [(r.window_start, r.window_stop) for r in first] == \
        [(r.window_start, r.window_stop) for r in second]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
        # the same samples: the counter channel of both windows is identical
        orig, _ = original.raw.get(a.window_start, a.window_stop)
        again, _ = replayed.raw.get(b.window_start, b.window_stop)
        np.testing.assert_array_equal(orig[-1], again[-1])
        np.testing.assert_allclose(orig[:-1], again[:-1], atol=1e-11)  # float32 µV on disk
