"""LSLSource against real pylsl outlets: discovery errors, loss and recovery, markers, and the
LSLPlayer streaming a recorded file."""

import gc
import time

import mne
import numpy as np
import pylsl
import pytest

from dd_live.errors import StreamNotFoundError
from dd_live.sources.discovery import list_lsl_streams
from dd_live.sources.lsl import LSLSource
from dd_live.sources.player import LSLPlayer
from dd_live.sources.replay import ReplaySource

SFREQ = 250.0
N_CHANNELS = 4  # channel 0 counts samples


def make_outlet(name: str, unit: str = "microvolts") -> pylsl.StreamOutlet:
    info = pylsl.StreamInfo(name, "EEG", N_CHANNELS, SFREQ, pylsl.cf_double64, name)
    channels = info.desc().append_child("channels")
    for ch in range(N_CHANNELS):
        channel = channels.append_child("channel")
        channel.append_child_value("label", f"C{ch}")
        channel.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


def push(outlet: pylsl.StreamOutlet, first: int, n_times: int, t0: float) -> None:
    """Samples ``first..first+n_times-1``, value = counter on every channel, regular stamps."""
    counter = np.arange(first, first + n_times, dtype=np.float64)
    chunk = np.repeat(counter[:, None], N_CHANNELS, axis=1)
    outlet.push_chunk(chunk, t0 + counter[-1] / SFREQ)


def read_until(source: LSLSource, condition, timeout: float = 10.0):
    """Read until ``condition(chunks, events)``; returns (data, timestamps, events)."""
    chunks, stamps, events = [], [], []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data, ts = source.read()
        chunks.append(data)
        stamps.append(ts)
        events += source.pop_events()
        if condition(np.concatenate(chunks, axis=1), events):
            break
    return np.concatenate(chunks, axis=1), np.concatenate(stamps), events


def test_stream_not_found_lists_streams_seen(stream_name):
    other = make_outlet(f"{stream_name}-other")
    assert other.have_consumers() is False
    with pytest.raises(
        StreamNotFoundError,
        match=rf"name='{stream_name}'.*streams seen: .*{stream_name}-other.*4 ch @ 250 Hz",
    ):
        LSLSource(stream_name, timeout=0.5)


def test_microvolts_are_scaled_and_labels_read(stream_name):
    outlet = make_outlet(stream_name)
    source = LSLSource(stream_name, timeout=5.0)
    assert source.info.ch_names == ("C0", "C1", "C2", "C3")
    assert source.info.units == ("V",) * N_CHANNELS
    assert any(s["name"] == stream_name for s in list_lsl_streams(0.5))
    with source:
        t0 = pylsl.local_clock()
        push(outlet, 0, 50, t0)
        data, stamps, _ = read_until(source, lambda d, e: d.shape[1] >= 50)
    np.testing.assert_allclose(data[0], np.arange(50) * 1e-6)
    np.testing.assert_allclose(stamps - stamps[0], np.arange(50) / SFREQ, atol=1e-6)
    assert abs(stamps[-1] - (t0 + 49 / SFREQ)) < 0.01  # corrected onto the local clock


def test_lost_outlet_disconnect_gap_reconnect(stream_name):
    outlet = make_outlet(stream_name, unit="volts")
    source = LSLSource(stream_name, timeout=5.0, watchdog=5.0)
    with source:
        t0 = pylsl.local_clock()
        push(outlet, 0, 100, t0)
        data, _, _ = read_until(source, lambda d, e: d.shape[1] >= 100)
        np.testing.assert_array_equal(data[0], np.arange(100))

        del outlet
        gc.collect()
        _, _, events = read_until(source, lambda d, e: any(x.kind == "disconnect" for x in e))
        assert [e.kind for e in events] == ["disconnect"]

        outlet = make_outlet(stream_name, unit="volts")  # the same source_id comes back
        next_sample = 150

        def resumed(data, events):
            nonlocal next_sample
            push(outlet, next_sample, 10, t0)
            next_sample += 10
            return data.shape[1] > 0

        data, _, events = read_until(source, resumed)
    first = int(data[0, 0])
    assert first >= 150
    np.testing.assert_array_equal(data[0], np.arange(first, first + data.shape[1]))
    kinds = [e.kind for e in events]
    assert kinds == ["gap", "reconnect"]
    gap = events[0]
    assert gap.extra["n_missing"] == first - 100
    assert gap.duration == pytest.approx((first - 100) / SFREQ, abs=2e-3)
    assert source.n_reconnects == 1


def test_player_streams_a_file_with_markers(stream_name, tmp_path):
    n_times = 500
    data = np.vstack(
        [np.random.default_rng(0).standard_normal((2, n_times)) * 1e-5, np.arange(n_times)[None]]
    )
    info = mne.create_info(["Cz", "Pz", "COUNTER"], SFREQ, ["eeg", "eeg", "misc"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations([0.8, 1.2], [0.0, 0.0], ["cue", "image/7"]))
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")

    player = LSLPlayer(ReplaySource(path, speed=8.0), name=stream_name, channel_format="double64")
    player.open()
    source = LSLSource(stream_name, markers=f"{stream_name}-markers", timeout=5.0)
    assert source.info.ch_names == ("Cz", "Pz", "COUNTER")
    assert source.info.ch_types == ("eeg", "eeg", "misc")
    with source:
        for _ in range(10_000):
            player.step()
            if player.source.finished:
                break
        received, stamps, events = read_until(source, lambda d, e: d.shape[1] >= n_times)
    player.stop()
    assert player.n_markers == 2
    np.testing.assert_array_equal(received[2], np.arange(n_times))
    np.testing.assert_allclose(received[:2], data[:2], rtol=1e-6)  # FIF keeps float32
    markers = [e for e in events if e.kind == "marker"]
    assert [m.description for m in markers] == ["cue", "image/7"]
    # each marker sits at its sample (0.8 s and 1.2 s into the file)
    for marker, onset in zip(markers, (200, 300)):
        assert abs(marker.timestamp - stamps[onset]) < 0.01


def test_quotes_in_names_neither_break_nor_widen_the_query(stream_name):
    """Names go into LSL's XPath query as quoted literals: a name holding both kinds of quotes
    is found, and a name that spells out another clause does not match other streams."""
    tricky = f"{stream_name} it's \"quoted\""
    outlets = [make_outlet(tricky), make_outlet(f"{stream_name}-other")]
    source = LSLSource(tricky, timeout=5.0)
    assert source.info.name == tricky and source.info.source_id == tricky
    assert LSLSource(source_id=tricky, timeout=5.0).info.name == tricky
    with pytest.raises(StreamNotFoundError, match="no LSL stream matching"):
        LSLSource(f"nothing' or name='{stream_name}-other", timeout=0.5)
    del outlets


def test_unitless_eeg_in_microvolt_numbers_is_scaled_with_a_warning(stream_name, caplog):
    """EEG channels sent without a unit, with numbers only plausible as microvolts (RMS ~20):
    delivered in volts, with a warning that says so."""
    info = pylsl.StreamInfo(stream_name, "EEG", 2, SFREQ, pylsl.cf_double64, stream_name)
    channels = info.desc().append_child("channels")
    for label in ("Cz", "Pz"):
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        channel.append_child_value("type", "EEG")
    outlet = pylsl.StreamOutlet(info)
    source = LSLSource(stream_name, timeout=5.0)
    assert source.info.units == ("V", "V")
    values = 20.0 * np.sin(np.arange(100)[None, :] * 0.3 + np.arange(2)[:, None])
    with source, caplog.at_level("WARNING"):
        outlet.push_chunk(np.ascontiguousarray(values.T), pylsl.local_clock())
        data, _, _ = read_until(source, lambda d, e: d.shape[1] >= 100)
    np.testing.assert_allclose(data, values * 1e-6, rtol=1e-9)
    assert "no unit" in caplog.text and "read as microvolts" in caplog.text
