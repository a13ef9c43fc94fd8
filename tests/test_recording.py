"""Session folders: MNE opens them at any moment, with every sample and marker written so far."""

import json

import mne
import numpy as np
import pytest
from PIL import Image

from dd_live.config import AppConfig
from dd_live.recording import SessionRecorder, read_events, read_timestamps
from dd_live.session import GeneratedImage
from dd_live.sources.base import StreamInfo

INFO = StreamInfo("test", 250.0, ("Fz", "Cz", "COUNTER"), ("eeg", "eeg", "misc"), ("V", "V", ""))


def _chunk(start, n, rng):
    eeg = rng.normal(0, 20e-6, (2, n))
    counter = np.arange(start, start + n, dtype=float)[None]
    return np.vstack([eeg, counter]), np.arange(start, start + n) / INFO.sfreq


def test_folder_is_valid_before_close_and_complete_after(tmp_path):
    rng = np.random.default_rng(0)
    rec = SessionRecorder.create(tmp_path, "unit", INFO, AppConfig()).start(threaded=False)
    assert rec.folder.name.endswith("_unit")
    data, ts = _chunk(0, 600, rng)
    rec.add_samples(data, ts)
    rec.add_event({"type": "marker", "sample": 100, "description": "stim, 1"})
    rec.step()
    # as after a crash: nothing closed, the files still read
    raw = mne.io.read_raw_brainvision(rec.folder / "eeg.vhdr", preload=True, verbose="error")
    assert raw.n_times == 600
    assert raw.get_channel_types() == ["eeg", "eeg", "misc"]
    np.testing.assert_array_equal(raw.get_data()[2], np.arange(600))
    np.testing.assert_allclose(raw.get_data()[:2], data[:2], atol=1e-11)  # float32 in µV
    assert list(raw.annotations.description) == ["Comment/stim, 1"]
    assert raw.annotations.onset[0] == pytest.approx(100 / INFO.sfreq)

    more, more_ts = _chunk(600, 400, rng)
    rec.add_samples(more, more_ts)
    rec.close()
    raw = mne.io.read_raw_brainvision(rec.folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(raw.get_data()[2], np.arange(1000))
    np.testing.assert_array_equal(read_timestamps(rec.folder), np.arange(1000) / INFO.sfreq)
    assert AppConfig.from_toml(rec.folder / "config.toml") == AppConfig()
    session = json.loads((rec.folder / "session.json").read_text())
    assert session["info"]["ch_names"] == ["Fz", "Cz", "COUNTER"]


def test_control_characters_cannot_forge_brainvision_lines(tmp_path):
    """A newline in a marker or a channel label would start a new header line (here: a forged
    marker and a forged channel); in the BrainVision files it becomes a space, events.jsonl keeps
    the text as it was."""
    info = StreamInfo("test", 250.0, ("Fz\nCh9=Evil,,1,µV", "Cz"), ("eeg", "eeg"), ("V", "V\r\n"))
    rec = SessionRecorder.create(tmp_path, "ctl", info, AppConfig()).start(threaded=False)
    rec.add_samples(np.zeros((2, 300)), np.arange(300) / info.sfreq)
    forged = "go\nMk3=Comment,forged,5,1,0\r\ttab\x00"
    rec.add_event({"type": "marker", "sample": 100, "description": forged})
    rec.step()
    rec.close()
    vmrk = (rec.folder / "eeg.vmrk").read_text(encoding="utf-8")
    vhdr = (rec.folder / "eeg.vhdr").read_text(encoding="utf-8")
    assert not any(line.startswith("Mk3=") for line in vmrk.splitlines())
    assert not any(line.startswith("Ch9=") for line in vhdr.splitlines())
    raw = mne.io.read_raw_brainvision(rec.folder / "eeg.vhdr", verbose="error")
    assert raw.ch_names == ["Fz Ch9=Evil,,1,µV", "Cz"]
    assert list(raw.annotations.description) == ["Comment/go Mk3=Comment,forged,5,1,0  tab "]
    assert raw.annotations.onset[0] == pytest.approx(100 / info.sfreq)
    (event,) = [e for e in read_events(rec.folder) if e["type"] == "marker"]
    assert event["description"] == forged


def test_images_and_events_on_the_writer_thread(tmp_path):
    rec = SessionRecorder(tmp_path / "s", INFO).start(threaded=True)
    image = Image.new("RGB", (8, 8), (255, 0, 0))
    result = GeneratedImage(index=0, images=[image], window_start=10, window_stop=120,
                            t_first=0.04, t_last=0.476, trigger="interval", seed=3,
                            timings={"total": 0.1})
    rec.add_image(result)
    rec.add_event({"type": "window_dropped", "start": 0, "stop": 110})
    rec.close()
    events = read_events(rec.folder)
    assert [e["type"] for e in events] == ["image", "window_dropped"]
    assert events[0]["start"] == 10 and events[0]["stop"] == 120
    assert events[0]["images"] == ["images/0000.png"]
    assert Image.open(rec.folder / "images" / "0000.png").getpixel((0, 0)) == (255, 0, 0)
    rec.close()  # twice is fine


def test_data_after_close_is_refused_with_a_warning(tmp_path, caplog):
    rec = SessionRecorder(tmp_path / "s", INFO)
    rec.close()
    rec.add_event({"type": "marker"})
    assert "recorder is closed" in caplog.text
