"""Fault suite, LSL: real pylsl outlets in subprocesses (tests/lsl_outlet.py) read by a real
LiveSession with default settings (tiny models: random weights, real code paths).

- ±20 ms jitter on the pushed chunk stamps, no sample missing: no gap, no filter restart.
- Samples really missing: one gap of the right length (counted exactly by a counter channel).
- The stream comes back with 64 instead of 128 channels: the recording segment is closed and a
  new one started; no row mixes two samples (checked through the counter and channel values).
- A same-name stream with a new source id is picked up with ``reconnect = "name"``.
"""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import mne
import numpy as np
import pytest

from dd_live.cli import main
from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, SourceConfig
from dd_live.decoding import EEGDecoder
from dd_live.recording import read_events, read_timestamps
from dd_live.session import LiveSession

OUTLET = Path(__file__).with_name("lsl_outlet.py")


@pytest.fixture(scope="module")
def decoder():
    decoder = EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=2))
    decoder.warmup()  # the first call is slow; the outlets should not wait for it
    return decoder


class Outlet:
    """tests/lsl_outlet.py in a subprocess; closed (and waited for) by ``close()``."""

    def __init__(self, phases: list[dict]) -> None:
        self.proc = subprocess.Popen([sys.executable, str(OUTLET), json.dumps(phases)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def release(self) -> None:
        """The reader holds the current phase's samples: its outlet may go now."""
        self.proc.stdin.write("next\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        assert self.proc.returncode == 0


def phase(name, **kw):
    return {"name": name, "source_id": name, "n_channels": 8, "sfreq": 500.0, "first": 0,
            "n_samples": 1500, "chunk": 10, "speed": 8.0, **kw}


def run_session(config, decoder, until, timeout=60.0, release=None, threaded=False):
    """A non-threaded LiveSession stepped until ``until(session)``; returns it (stopped) and the
    events and states it reported. ``release=(outlet, n)``: the first outlet goes as soon as
    the session holds its ``n`` samples."""
    session = LiveSession(config, decoder=decoder, threaded=threaded)
    events, states = [], []
    session.callbacks.event.append(events.append)
    session.callbacks.state.append(lambda *s: states.append(s))
    session.start()
    deadline = time.monotonic() + timeout
    try:
        while not until(session) and time.monotonic() < deadline:
            if threaded:
                time.sleep(0.02)
            else:
                session.step()
            if release is not None and session.raw.n_written >= release[1]:
                release[0].release()
                release = None
    finally:
        session.stop()
    return session, events, states


def lsl_config(name, tmp_path=None, **source):
    config = AppConfig(source=SourceConfig(spec=f"lsl:{name}", **source),
                       generator=GeneratorConfig(model="tiny", steps=2))
    if tmp_path is not None:
        config = config.replace(record=RecordConfig(enabled=True, root=str(tmp_path), name="s"))
    return config


def check_rows(data: np.ndarray, counter: np.ndarray) -> None:
    """Every channel of every row belongs to that row's sample (``20 sin(0.3 n + c)`` µV)."""
    n_channels = data.shape[0]
    expected = 20e-6 * np.sin(0.3 * counter[None, :] + np.arange(n_channels)[:, None])
    np.testing.assert_allclose(data[1:], expected[1:], rtol=1e-5, atol=1e-11)


@pytest.mark.parametrize("counter_label", ["CH0", "COUNTER"])
def test_jitter_of_20_ms_is_no_gap_and_no_filter_restart(stream_name, decoder, counter_label):
    """Chunk stamps off by up to ±20 ms, nothing missing. Without a counter the dejittered clock
    decides; with one (labelled COUNTER) the counter does."""
    n_samples = 2000
    outlet = Outlet([phase(stream_name, n_samples=n_samples, jitter=0.02,
                           counter_label=counter_label)])
    try:
        session, events, _ = run_session(lsl_config(stream_name), decoder,
                                         lambda s: s.raw is not None and
                                         s.raw.n_written >= n_samples)
    finally:
        outlet.close()
    data, stamps = session.raw.get(0, n_samples)
    np.testing.assert_array_equal(data[0], np.arange(n_samples))
    assert not [e for e in events if e.kind in ("gap", "discontinuity", "disconnect")]
    assert session.acquisition.n_filter_resets == 0
    steps = np.diff(stamps) * 500.0
    assert steps.min() > 0.9 and steps.max() < 1.1  # the jitter is gone from the stamps
    assert session.n_images > 0


@pytest.mark.parametrize(("counter_label", "exact"), [("COUNTER", True), ("CH0", False)])
def test_samples_missing_are_one_gap_of_the_right_length(stream_name, decoder, counter_label,
                                                         exact):
    """300 samples (0.6 s) never sent, with ±20 ms jitter on the rest."""
    outlet = Outlet([phase(stream_name, n_samples=2000, jitter=0.02, skip=[[1000, 300]],
                           counter_label=counter_label)])
    try:
        session, events, _ = run_session(lsl_config(stream_name), decoder,
                                         lambda s: s.raw is not None and s.raw.n_written >= 1700)
    finally:
        outlet.close()
    gaps = [e for e in events if e.kind in ("gap", "discontinuity")]
    assert [g.kind for g in gaps] == ["gap"]
    assert gaps[0].sample_index == 1000
    if exact:
        assert gaps[0].extra == {"n_missing": 300, "found_by": "sample counter"}
    else:
        assert gaps[0].extra["n_missing"] == pytest.approx(300, abs=15)  # 1 period = 2 ms
    assert session.acquisition.n_filter_resets == 1


@pytest.mark.parametrize("threaded", [False, True])
def test_reconnect_with_64_instead_of_128_channels_starts_a_new_segment(stream_name, decoder,
                                                                        tmp_path, threaded):
    """Stepped, and on the session's own threads as the app runs it."""
    first = phase(stream_name, n_channels=128, n_samples=1000, pause_after=0.5)
    second = phase(stream_name, n_channels=64, first=1500, n_samples=1000)
    outlet = Outlet([first, second])
    try:
        session, events, states = run_session(
            lsl_config(stream_name, tmp_path), decoder,
            lambda s: s.raw is not None and s.raw.n_channels == 64 and s.raw.n_written >= 900,
            release=(outlet, 1000), threaded=threaded)
    finally:
        outlet.close()
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 2
    layout = [e for e in events if e.kind == "layout"]
    assert len(layout) == 1 and "128 -> 64 channels" in layout[0].description
    assert any(s[:2] == ("session", "running") and "new segment" in s[2] for s in states)
    old, new = (mne.io.read_raw_brainvision(f / "eeg.vhdr", preload=True, verbose="error")
                for f in folders)
    assert (old.info["nchan"], new.info["nchan"]) == (128, 64)
    old_counter = old.get_data()[0]
    np.testing.assert_array_equal(old_counter, np.arange(old.n_times))
    assert old.n_times == 1000  # every sample of the first layout, none of the second
    check_rows(old.get_data(), old_counter)
    new_counter = new.get_data()[0]
    assert new_counter[0] >= 1500  # the second outlet's own samples only, none stale
    np.testing.assert_array_equal(new_counter, np.arange(new_counter[0],
                                                         new_counter[0] + new.n_times))
    check_rows(new.get_data(), new_counter)
    for folder, n in zip(folders, (old.n_times, new.n_times)):
        assert read_timestamps(folder).size == n
    old_events = read_events(folders[0])
    assert [e["type"] for e in old_events if e["type"] in ("layout", "segment_end")] == [
        "layout", "segment_end"]
    new_events = read_events(folders[1])
    assert new_events[0]["type"] == "segment_start"
    assert new_events[0]["previous"] == str(folders[0])
    for events_, n in ((old_events, old.n_times), (new_events, new.n_times)):
        for image in (e for e in events_ if e["type"] == "image"):  # each in its own file
            assert 0 <= image["start"] < image["stop"] <= n
    assert session.n_images > 0


def test_layout_change_can_stop_the_session(stream_name, decoder, tmp_path):
    first = phase(stream_name, n_channels=16, n_samples=600, pause_after=0.5)
    second = phase(stream_name, n_channels=8, first=900, n_samples=600)
    outlet = Outlet([first, second])
    try:
        session, _, states = run_session(
            lsl_config(stream_name, tmp_path, on_layout_change="stop"), decoder,
            lambda s: s.state == "ended", release=(outlet, 600))
    finally:
        outlet.close()
    assert any(s[1] == "ended" and "16 -> 8 channels" in s[2] for s in states)
    (folder,) = tmp_path.iterdir()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(raw.get_data()[0], np.arange(600))


def test_same_name_new_source_id_is_picked_up_by_name(stream_name, decoder):
    first = phase(stream_name, n_samples=600, pause_after=0.5)
    second = phase(stream_name, source_id=f"{stream_name}-restarted", first=1000,
                   n_samples=600)
    outlet = Outlet([first, second])
    try:
        session, events, _ = run_session(
            lsl_config(stream_name, reconnect="name"), decoder,
            lambda s: s.raw is not None and s.raw.n_written >= 1100, release=(outlet, 600))
    finally:
        outlet.close()
    kinds = [e.kind for e in events if e.kind in ("disconnect", "gap", "reconnect")]
    assert kinds == ["disconnect", "gap", "reconnect"]
    assert session.source.info.source_id == f"{stream_name}-restarted"
    data, _ = session.raw.get(600, 1100)
    assert data[0, 0] >= 1000
    np.testing.assert_array_equal(data[0], np.arange(data[0, 0], data[0, 0] + 500))
    assert "battery" not in session.source.stall_hint


PLAYER_SCRIPT = """
import sys
from mne_lsl.player import PlayerLSL

player = PlayerLSL(sys.argv[1], chunk_size=25, name=sys.argv[2], source_id=sys.argv[2],
                   annotations=True)
player.start()
print("ready", flush=True)
sys.stdin.read()
player.stop()
"""


def test_mne_lsl_player_units_and_one_hot_annotations(stream_name, tmp_path):
    """mne-lsl's PlayerLSL (in a subprocess) sends units as powers of ten ("0": volts) and its
    annotations as one-hot vectors (one channel per description, the value the duration or
    -1): EEG stays EEG at the right scale, the annotations arrive as labelled markers."""
    from dd_live.sources.lsl import LSLSource

    sfreq, n_times = 250.0, 500
    rng = np.random.default_rng(3)
    eeg = rng.standard_normal((2, n_times)) * 20e-6
    data = np.vstack([eeg, np.zeros((1, n_times)), np.arange(n_times)[None]])
    info = mne.create_info(["Cz", "Pz", "STI", "COUNTER"], sfreq, ["eeg", "eeg", "stim", "misc"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([0.4, 1.0], [0.0, 0.5], ["cue", "image/7"]))
    path = tmp_path / "player_raw.fif"
    raw.save(path, verbose="error")
    proc = subprocess.Popen([sys.executable, "-c", PLAYER_SCRIPT, str(path), stream_name],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert any(line.strip() == "ready" for line in iter(proc.stdout.readline, ""))
        source = LSLSource(stream_name, markers=f"{stream_name}-annotations", timeout=10.0)
        assert source.info.ch_types == ("eeg", "eeg", "stim", "misc")
        assert source.info.units == ("V", "V", "", "")
        chunks, stamps, markers = [], [], []
        with source:
            deadline = time.monotonic() + 20
            while (sum(c.shape[1] for c in chunks) < 1.2 * n_times
                   or len({m.description for m in markers}) < 2) and time.monotonic() < deadline:
                chunk, ts = source.read()
                chunks.append(chunk)
                stamps.append(ts)
                markers += [e for e in source.pop_events() if e.kind == "marker"]
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    received, stamps = np.concatenate(chunks, axis=1), np.concatenate(stamps)
    counter = received[3].astype(int)
    np.testing.assert_allclose(received[:2], eeg[:, counter], rtol=1e-6)  # volts, as in the file
    labels = {m.description: m for m in markers}
    assert set(labels) == {"cue", "image/7"}
    assert labels["cue"].duration == 0.0 and labels["image/7"].duration == pytest.approx(0.5)
    onsets = {"cue": 100, "image/7": 250}
    checked = [m for m in markers if m.timestamp <= stamps[-1]]  # its sample was read
    assert {m.description for m in checked} == set(onsets)
    for marker in checked:  # each at its sample (the player loops: the nearest repetition)
        at = np.flatnonzero(counter == onsets[marker.description])
        assert at.size, f"sample {onsets[marker.description]} was not received"
        assert np.min(np.abs(marker.timestamp - stamps[at])) < 0.02


def test_a_new_layout_the_model_cannot_read_ends_the_session_with_why(stream_name, decoder,
                                                                      tmp_path):
    """Back with only its counter channel (no EEG): the first segment is closed whole and the
    session ends saying why, instead of running on half-rebuilt."""
    first = phase(stream_name, n_channels=8, n_samples=600, pause_after=0.5)
    second = phase(stream_name, n_channels=1, first=900, n_samples=600)
    outlet = Outlet([first, second])
    try:
        session, _, states = run_session(lsl_config(stream_name, tmp_path), decoder,
                                         lambda s: s.state == "ended", release=(outlet, 600))
    finally:
        outlet.close()
    (ended,) = [s for s in states if s[1] == "ended"]
    assert "8 -> 1 channels" in ended[2] and "cannot go on" in ended[2]
    (folder,) = tmp_path.iterdir()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(raw.get_data()[0], np.arange(600))


def test_dd_live_record_counts_every_segment(stream_name, tmp_path, capsys):
    """`dd-live record` of a stream that came back with another layout: its last line counts
    the samples of every segment and names each folder (read back from the files)."""
    first = phase(stream_name, n_channels=16, n_samples=600, hold=20.0, pause_after=0.3)
    second = phase(stream_name, n_channels=8, first=900, n_samples=600, hold=20.0)
    outlet = Outlet([first, second])
    done = threading.Event()

    def release_when_recorded() -> None:  # the first outlet goes once its samples are on disk
        while not done.is_set():
            if any(f.stat().st_size >= 600 * 16 * 4 for f in tmp_path.glob("*/eeg.eeg")):
                outlet.release()
                return
            time.sleep(0.05)

    releaser = threading.Thread(target=release_when_recorded, daemon=True)
    releaser.start()
    try:
        assert main(["record", "--source", f"lsl:{stream_name}", "--duration", "5",
                     "--out", str(tmp_path)]) == 0
    finally:
        done.set()
        releaser.join()
        outlet.close()
    folders = sorted(tmp_path.iterdir())
    assert len(folders) == 2
    counts = [mne.io.read_raw_brainvision(f / "eeg.vhdr", verbose="error").n_times
              for f in folders]
    assert counts[0] == 600 and counts[1] > 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last == (f"recorded {sum(counts)} samples in 2 segments (the stream changed layout): "
                    f"{folders[0]} ({counts[0]}), {folders[1]} ({counts[1]})")
