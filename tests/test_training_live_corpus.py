"""Pretraining on MNE-readable raw files preprocessed the live way (--live-preprocessing).

A small FIF is written here (4 EEG channels with alpha and noise, a stim channel) and read back
by ``training.pretrain``: its windows must be exactly what the live app feeds a model from the
same file (a real LiveSession replaying it, windows cut at annotations placed at the same
samples), not the offline band-pass windows.
"""

import json

import mne
import numpy as np
import pytest

from dd_live import calibration
from dd_live.config import AppConfig
from dd_live.errors import ConfigError
from dd_live.model import EEGEncoder, load
from tests.test_calibration import replay_model_inputs
from training import pretrain
from training.data.corpus import EEGCorpus, Preprocessing, build_corpus, live_preprocessing

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SFREQ = 250.0
N_SAMPLES = 2500  # 10 s
LENGTH = 110  # samples of the default 0.44 s window at 250 Hz
TINY_SHAPE = (8, 64)  # the tiny encoder's (n_channels, n_times)


def write_fif(path, annotate: bool = False):
    """4 EEG channels (10 Hz alpha + noise + 50 Hz hum, volts) and a stim channel; with
    ``annotate`` an annotation ``win`` at each consecutive window start (0, 110, 220, ...)."""
    rng = np.random.default_rng(0)
    t = np.arange(N_SAMPLES) / SFREQ
    eeg = (10e-6 * np.sin(2 * np.pi * 10 * t + rng.uniform(0, 6, (4, 1)))
           + 5e-6 * rng.standard_normal((4, N_SAMPLES)) + 3e-6 * np.sin(2 * np.pi * 50 * t))
    data = np.vstack([eeg, np.zeros((1, N_SAMPLES))])
    info = mne.create_info(["O1", "Oz", "O2", "Pz", "STI"], SFREQ, ["eeg"] * 4 + ["stim"])
    raw = mne.io.RawArray(data, info, verbose="error")
    if annotate:
        onsets = np.arange(0, N_SAMPLES, LENGTH) / SFREQ
        raw.set_annotations(mne.Annotations(onsets, 0.0, ["win"] * len(onsets)))
    raw.save(path, verbose="error")
    return path


def test_pretrain_live_preprocessing_gives_the_live_apps_windows(tmp_path):
    (tmp_path / "raw").mkdir()
    fif = write_fif(tmp_path / "raw" / "rec_raw.fif", annotate=True)
    out = tmp_path / "pre"
    pretrain.main(["--preset", "tiny", "--data", str(tmp_path / "raw"), "--output-dir", str(out),
                   "--epochs", "1", "--live-preprocessing"])
    assert isinstance(load(out / "encoder"), EEGEncoder)
    manifest = json.loads((out / "corpus" / "manifest.json").read_text())
    assert json.loads(manifest["preprocessing"]["live"])["window"]["length"] == 0.44
    corpus = EEGCorpus(out / "corpus")
    # windows [k*110 + 5, k*110 + 115) inside the 2500 samples: k = 0 ... 21
    assert len(corpus) == 22 and corpus[0]["eeg"].shape == TINY_SHAPE
    cached = np.stack([corpus[i]["eeg"].numpy() for i in range(len(corpus))])

    # the live app on the same file: a real session replaying it, a window after each annotation
    config = AppConfig().replace(window={"mode": "marker", "marker_match": "win"},
                                 quality={"mode": "off"}, record={"enabled": False})
    probe = replay_model_inputs(config, fif, 22)
    assert len(probe.inputs) == 22
    np.testing.assert_array_equal(np.stack(probe.inputs), cached)

    # not the offline path: its band-pass and per-recording standardisation differ
    offline = build_corpus([fif], tmp_path / "offline", Preprocessing(*TINY_SHAPE))
    assert not np.allclose(offline[0]["eeg"].numpy(), cached[0], atol=1e-3)


def test_live_corpus_cache_follows_the_live_settings(tmp_path, monkeypatch):
    fif = write_fif(tmp_path / "rec_raw.fif")
    app = AppConfig()
    first = build_corpus([fif], tmp_path / "cache", live_preprocessing(app, *TINY_SHAPE), app)
    assert len(first) == 22
    # windows are cut during the replay: a buffer of 0.5 s (not the file's 10 s) gives the same
    monkeypatch.setattr(calibration, "REPLAY_BUFFER", 0.5)
    bounded = build_corpus([fif], tmp_path / "bounded", live_preprocessing(app, *TINY_SHAPE), app)
    np.testing.assert_array_equal(np.stack([bounded[i]["eeg"] for i in range(22)]),
                                  np.stack([first[i]["eeg"] for i in range(22)]))
    longer = app.replace(window={"length": 1.0})  # 250 samples: windows k*250+5 ... k*250+255
    second = build_corpus([fif], tmp_path / "cache", live_preprocessing(longer, *TINY_SHAPE), longer)
    assert len(second) == 9
    with pytest.raises(ConfigError, match="does not describe app_config"):
        build_corpus([fif], tmp_path / "cache", live_preprocessing(app, *TINY_SHAPE), longer)
    with pytest.raises(ConfigError, match="add --live-preprocessing"):
        pretrain.main(["--preset", "tiny", "--data", str(fif), "--output-dir", str(tmp_path / "x"),
                       "--live-config", str(tmp_path / "dd-live.toml")])
