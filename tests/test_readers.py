"""File readers with real files written here and read back: OpenBCI GUI text files (v5/v6,
Cyton, Cyton+Daisy, Ganglion, dropped packets), a BDF whose header leaves the record count
open, EEGLAB event rounding, trigger channels, unitless microvolt data and damaged files of
every format. Replays go through the app's own path: ``open_source`` -> ``ReplaySource`` ->
``AcquisitionThread`` -> ``RingBuffer``.
"""

import datetime
import logging

import mne
import numpy as np
import pytest

from dd_live.errors import FileFormatError
from dd_live.sources import open_source
from dd_live.sources.readers import read_recording
from dd_live.sources.units import check_amplitude, parse_unit, plausible_scale
from dd_live.stream import AcquisitionThread, RingBuffer

# -- OpenBCI GUI files ----------------------------------------------------------------------
# (board line, n_channels, sfreq, sample-index step): the GUI's header values per board
BOARDS = {
    "cyton": ("OpenBCI_GUI$BoardCytonSerial", 8, 250.0, 1),
    "daisy": ("OpenBCI_GUI$BoardCytonSerialDaisy", 16, 125.0, 2),
    "ganglion": ("OpenBCI_GUI$BoardGanglionBLE", 4, 200.0, 1),
}


def openbci_columns(n_channels: int, version: int) -> list[str]:
    exg = [f"EXG Channel {k}" for k in range(n_channels)]
    accel = [f"Accel Channel {k}" for k in range(3)]
    if version == 6:
        other = ["Not Used", "Digital Channel 0 (D11)", "Digital Channel 1 (D12)",
                 "Digital Channel 2 (D13)", "Digital Channel 3 (D17)", "Not Used",
                 "Digital Channel 4 (D18)", "Analog Channel 0", "Analog Channel 1",
                 "Analog Channel 2"]
        tail = ["Timestamp", "Marker Channel", "Timestamp (Formatted)"]
    else:
        other = ["Other"] * 7 + ["Analog Channel 0", "Analog Channel 1", "Analog Channel 2"]
        tail = ["Timestamp", "Timestamp (Formatted)"]
    return ["Sample Index", *exg, *accel, *other, *tail]


def write_openbci(path, board: str, exg_uv, sample_index, unix_s, markers=None, version=6,
                  separator=", ", unix_ms=False):
    """The OpenBCI GUI's "OpenBCI-RAW-*.txt" layout. ``exg_uv`` ``(n_channels, n_times)``;
    returns the EXG values as written (3 decimals, like the GUI)."""
    board_line, n_channels, sfreq, _ = BOARDS[board]
    lines = [
        "%OpenBCI Raw EXG Data",
        f"%Number of channels = {n_channels}",
        f"%Sample Rate = {sfreq:g} Hz",
        f"%Board = {board_line}",
        ", ".join(openbci_columns(n_channels, version)),
    ]
    rng = np.random.default_rng(5)
    written = np.round(exg_uv, 3)
    for k in range(exg_uv.shape[1]):
        stamp = datetime.datetime.fromtimestamp(unix_s[k], datetime.UTC)
        cells = [f"{sample_index[k]:.1f}", *(f"{v:.3f}" for v in written[:, k])]
        cells += [f"{v:.3f}" for v in rng.normal(0, 0.05, 3)]  # accelerometer
        cells += ["0.0"] * 10  # digital / analog / not used
        cells.append(f"{unix_s[k] * 1000:.0f}" if unix_ms else f"{unix_s[k]:.6f}")
        if version == 6:
            cells.append(f"{markers[k]:.1f}" if markers is not None else "0.0")
        cells.append(stamp.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3])
        lines.append(separator.join(cells))
    path.write_text("\n".join(lines) + "\n")
    return written


def replay(spec: str):
    """Everything a replay delivers through the acquisition thread, with default settings."""
    source = open_source(spec, speed=0)
    raw = RingBuffer(source.info.n_channels, 20_000)
    acquisition = AcquisitionThread(source, raw, strict=True)
    source.start()
    while acquisition.state != "stopped":
        acquisition.step()
    source.stop()
    data, stamps = raw.get(0, raw.n_written)
    return source, data, stamps, list(acquisition.events)


def test_openbci_v6_cyton_sample_exact_with_dropped_packets_and_markers(tmp_path, caplog):
    n_sent = 1200
    sfreq = 250.0
    rng = np.random.default_rng(0)
    exg = rng.normal(0, 15, (8, n_sent)) + rng.normal(0, 3000, (8, 1))  # µV, DC offsets
    index = np.arange(n_sent) % 256
    unix = 1.7e9 + np.arange(n_sent) / sfreq + rng.uniform(0, 0.012, n_sent)  # bursty
    markers = np.zeros(n_sent)
    markers[[50, 300, 900]] = [1, 2, 7]
    # dropped packets: 3 in the middle, 4 across the index wrap (254, 255, 0, 1), and a
    # stretch longer than one wrap (300 samples) that only the time stamps can size
    dropped = [*range(100, 103), *range(510, 514), *range(700, 1000)]
    kept = np.setdiff1d(np.arange(n_sent), dropped)
    path = tmp_path / "OpenBCI-RAW-2026-12-01_10-00-00.txt"
    written = write_openbci(path, "cyton", exg[:, kept], index[kept], unix[kept], markers[kept])

    with caplog.at_level(logging.WARNING):
        source, data, _, events = replay(f"file:{path}")
    assert source.info.sfreq == sfreq and source.info.n_channels == 8
    assert source.info.ch_types == ("eeg",) * 8
    assert data.shape == (8, kept.size)
    # sample-exact: the µV values written, in volts
    np.testing.assert_array_equal(data, written * 1e-6)
    gaps = [(e.sample_index, e.extra["n_missing"]) for e in events if e.kind == "gap"]
    resumed_at = [int(np.searchsorted(kept, first)) for first in (103, 514, 1000)]
    assert gaps == list(zip(resumed_at, [3, 4, 300], strict=True))
    assert "dropped packet" in caplog.text
    placed = [(e.sample_index, e.description) for e in events if e.kind == "marker"]
    assert placed == [(50, "1"), (int(np.searchsorted(kept, 300)), "2")]  # 900 was dropped


def test_openbci_file_through_a_recording_session(tmp_path):
    """The user's path: a LiveSession replaying the file records the dropped packets as a gap
    (with the time they took) and the markers at their samples, and the samples themselves."""
    from dd_live.config import AppConfig, RecordConfig
    from dd_live.recording import read_events, read_timestamps
    from dd_live.session import LiveSession

    rng = np.random.default_rng(9)
    n_sent = 1200
    exg = rng.normal(0, 15, (8, n_sent))
    markers = np.zeros(n_sent)
    markers[[50, 600]] = [1, 2]
    kept = np.setdiff1d(np.arange(n_sent), range(300, 303))
    path = tmp_path / "OpenBCI-RAW.txt"
    written = write_openbci(path, "cyton", exg[:, kept], kept % 256, 1.7e9 + kept / 250,
                            markers[kept])
    config = AppConfig(record=RecordConfig(enabled=True, root=str(tmp_path), name="obci"))
    session = LiveSession(config, source=open_source(f"file:{path}?speed=0"), generate=False,
                          threaded=False)
    session.start()
    while not (session.source.finished and session.acquisition.state == "stopped"):
        session.step()
    session.stop()
    folder = session.recording_path
    events = [(e["type"], e["sample"], e.get("n_missing"), e["description"])
              for e in read_events(folder) if e["type"] in ("gap", "marker")]
    assert events == [("marker", 50, None, "1"),
                      ("gap", 300, 3, "3 sample(s) dropped (sample index 43 -> 47)"),
                      ("marker", 597, None, "2")]
    stamps = read_timestamps(folder)
    assert stamps.shape == (kept.size,)
    np.testing.assert_allclose(np.diff(stamps)[[298, 299, 300]], [1 / 250, 4 / 250, 1 / 250])
    recorded = mne.io.read_raw_brainvision(folder / "eeg.vhdr", verbose="error").get_data()
    np.testing.assert_allclose(recorded, written * 1e-6, rtol=0, atol=1e-11)  # float32 µV
    # the session folder replays with its gap where the live session had it
    _, replayed, replay_stamps, replay_events = replay(str(folder))
    assert [(e.kind, e.sample_index, e.extra.get("n_missing")) for e in replay_events
            if e.kind in ("gap", "marker")] == [("marker", 50, None), ("gap", 300, 3),
                                                ("marker", 597, None)]
    np.testing.assert_allclose(np.diff(replay_stamps), np.diff(stamps), rtol=1e-9)
    np.testing.assert_array_equal(replayed, recorded)


@pytest.mark.parametrize("separator", [", ", "\t"])
def test_openbci_v5_without_marker_column(separator, tmp_path):
    rng = np.random.default_rng(1)
    exg = rng.normal(0, 20, (8, 500))
    path = tmp_path / "OpenBCI-RAW-v5.txt"
    kept = np.r_[0:200, 460:500]  # 260 samples lost: more than one wrap of the index
    written = write_openbci(
        path, "cyton", exg[:, kept], kept % 256, 1.7e9 + kept / 250, version=5,
        separator=separator, unix_ms=True,  # older GUIs write Unix milliseconds
    )
    recording = read_recording(path)
    np.testing.assert_array_equal(recording.data, written * 1e-6)
    assert recording.annotations == () and recording.gaps == [(200, 260)]


@pytest.mark.parametrize("with_unix_ms", [True, False])
def test_openbci_gui_v4_without_column_names(with_unix_ms, tmp_path):
    """GUI v4 and older: "%OpenBCI Raw EEG Data", no channel count, no column-name row."""
    rng = np.random.default_rng(10)
    kept = np.r_[0:120, 125:300]
    exg = np.round(rng.normal(0, 20, (8, kept.size)), 2)
    lines = ["%OpenBCI Raw EEG Data", "%", "%Sample Rate = 250.0 Hz",
             "%First Column = SampleIndex", "%Last Column = Timestamp",
             "%Other Columns = EEG data in microvolts followed by Accel Data (in G) "
             "interleaved with Aux Data"]
    for column, k in enumerate(kept):
        cells = [str(k % 256), *(f"{v:.2f}" for v in exg[:, column]), "0.000", "0.000", "0.000",
                 f"18:51:{16 + k // 250:02d}.{(k % 250) * 4:03d}"]
        if with_unix_ms:
            cells.append(str(1555082076000 + k * 4))
        lines.append(", ".join(cells))
    path = tmp_path / "OpenBCI-RAW-v4.txt"
    path.write_text("\n".join(lines) + "\n")
    recording = read_recording(path)
    assert recording.sfreq == 250.0 and recording.ch_names == tuple(f"EXG{k}" for k in range(1, 9))
    np.testing.assert_array_equal(recording.data, exg * 1e-6)
    assert recording.gaps == [(120, 5)]


@pytest.mark.parametrize("board", ["daisy", "ganglion"])
def test_openbci_other_boards(board, tmp_path):
    _, n_channels, sfreq, step = BOARDS[board]
    rng = np.random.default_rng(2)
    exg = rng.normal(0, 20, (n_channels, 400))
    # BrainFlow's package numbers: a Daisy pair carries the even Cyton counter (0, 2, ...,
    # 254); a Ganglion packet two samples under one id (0, 0, 1, 1, ...)
    index = (np.arange(400) * step) % 256 if board == "daisy" else (np.arange(400) // 2) % 200
    path = tmp_path / f"OpenBCI-RAW-{board}.csv"  # renamed .csv files are recognised too
    written = write_openbci(path, board, exg, index, 1.7e9 + np.arange(400) / sfreq)
    recording = read_recording(path)
    assert recording.sfreq == sfreq and recording.data.shape == (n_channels, 400)
    np.testing.assert_array_equal(recording.data, written * 1e-6)
    assert recording.events == ()  # no false drops from the index's steps and wraps


def test_openbci_daisy_drop_in_steps_of_two(tmp_path):
    index = (np.arange(300) * 2) % 256
    kept = np.r_[0:40, 45:300]
    path = tmp_path / "daisy.txt"
    write_openbci(path, "daisy", np.zeros((16, kept.size)), index[kept],
                  1.7e9 + kept / 125.0)
    assert read_recording(path).gaps == [(40, 5)]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda text: text.replace("channels = 8", "channels = 16"),
         "header says 16 channels but the column row has 8 EXG columns"),
        (lambda text: text.replace(", 0.0, 0.0, 0.0, 0.0, 0.0", "", 1),
         "line 6 has 20 values, the column row 25: truncated or damaged"),
        (lambda text: text.replace("-", "x", 40), "is not a number"),
        (lambda text: text.replace("%Sample Rate = 250 Hz\n", ""), "Sample Rate"),
        (lambda text: text.replace("= 250 Hz", "= 0 Hz"), "says 8 channels at 0 Hz"),
    ],
)
def test_openbci_damaged(damage, message, tmp_path):
    """Damage anywhere but at the very end is refused, one line saying where."""
    path = tmp_path / "rec.txt"
    exg = np.random.default_rng(3).normal(0, 20, (8, 50)) - 100
    write_openbci(path, "cyton", exg, np.arange(50), 1.7e9 + np.arange(50) / 250)
    path.write_text(damage(path.read_text()))
    with pytest.raises(FileFormatError, match=message) as error:
        read_recording(path)
    assert "\n" not in str(error.value) and "rec.txt" in str(error.value)


def test_openbci_cut_short_keeps_the_complete_lines(tmp_path, caplog):
    path = tmp_path / "crashed.txt"
    exg = np.random.default_rng(4).normal(0, 20, (8, 60))
    written = write_openbci(path, "cyton", exg, np.arange(60), 1.7e9 + np.arange(60) / 250)
    text = path.read_text()
    path.write_text(text[: text.rindex(",", 0, len(text) - 100)])  # inside the last line
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    assert "crashed.txt: its last line is cut short" in caplog.text
    np.testing.assert_array_equal(recording.data, written[:, :59] * 1e-6)


# -- EDF / BDF ------------------------------------------------------------------------------
def write_edf(path, data, sfreq, unit="uV", ch_names=None):
    """An EDF or BDF (by suffix) written with edfio, 1-s records; ``data`` in ``unit``,
    within ±1000."""
    import edfio

    ch_names = ch_names or [f"EEG{k}" for k in range(data.shape[0])]
    bdf = path.suffix == ".bdf"
    signal, container = (edfio.BdfSignal, edfio.Bdf) if bdf else (edfio.EdfSignal, edfio.Edf)
    signals = [
        signal(row, sfreq, label=name, physical_dimension=unit, physical_range=(-1000, 1000))
        for row, name in zip(data, ch_names, strict=True)
    ]
    container(signals, data_record_duration=1.0).write(path)
    return path


def set_record_count(path, text: str) -> None:
    content = bytearray(path.read_bytes())
    content[236:244] = text.ljust(8).encode()
    path.write_bytes(bytes(content))


def test_bdf_with_open_record_count(tmp_path):
    sfreq, n_times = 256.0, 256 * 4
    data = np.random.default_rng(4).normal(0, 20, (4, n_times))  # µV
    path = write_edf(tmp_path / "open.bdf", data, sfreq)
    set_record_count(path, "-1")
    recording = read_recording(path)
    assert recording.n_times == n_times
    step = 2000 / (2**24 - 1) * 1e-6  # one 24-bit step of the ±1000 µV range, in volts
    np.testing.assert_allclose(recording.data, data * 1e-6, rtol=0, atol=step)
    # a last record cut short is a truncated file, said so
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FileFormatError, match="open.bdf: .*not whole records.*truncated"):
        read_recording(path)


def test_unitless_microvolt_edf_is_scaled_with_a_warning(tmp_path, caplog):
    data = np.random.default_rng(5).normal(0, 25, (3, 1000))  # µV numbers, no unit
    path = write_edf(tmp_path / "nounit.edf", data, 250.0, unit="")
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    assert "nounit.edf (no unit on any channel)" in caplog.text
    assert "read as microvolts" in caplog.text
    np.testing.assert_allclose(recording.data, data * 1e-6, rtol=0, atol=2000 / 65535 * 1e-6)


def test_unit_helpers():
    assert parse_unit("microvolts") == parse_unit("µV") == parse_unit("uV") == 1e-6
    assert parse_unit("0") == 1.0 and parse_unit("-6") == 1e-6 and parse_unit("-3") == 1e-3
    assert parse_unit("") is None and parse_unit("none") is None and parse_unit("K") is None
    eeg_uv = np.random.default_rng(6).normal(0, 38.4, (4, 500))
    assert plausible_scale(eeg_uv, "x") == 1e-6
    assert plausible_scale(eeg_uv * 1e-6, "x") == 1.0
    assert "38" in check_amplitude(eeg_uv, "x") and check_amplitude(eeg_uv * 1e-6, "x") is None


# -- EEGLAB events and trigger channels -----------------------------------------------------
def test_eeglab_event_at_mne_rounded_sample(tmp_path):
    sfreq = 250.0
    data = np.vstack([np.random.default_rng(7).normal(0, 20e-6, (2, 1000)), np.arange(1000)])
    raw = mne.io.RawArray(data, mne.create_info(["Fz", "Cz", "COUNTER"], sfreq,
                                                ["eeg", "eeg", "misc"]), verbose="error")
    # EEGLAB latencies may be fractional: 250.3 and 600.7 samples from the start
    raw.set_annotations(mne.Annotations([250.3 / sfreq, 600.7 / sfreq], [0, 0], ["a", "b"]))
    path = tmp_path / "frac.set"
    mne.export.export_raw(path, raw, verbose="error")
    expected, _ = mne.events_from_annotations(
        mne.io.read_raw_eeglab(path, verbose="error"), verbose="error"
    )
    _, data_out, _, events = replay(str(path))
    markers = [e for e in events if e.kind == "marker"]
    assert [m.sample_index for m in markers] == list(expected[:, 0]) == [250, 601]
    # and the sample there is the one MNE's event points at (the counter says which)
    assert [data_out[2, m.sample_index] for m in markers] == [250.0, 601.0]


def test_trigger_channel_becomes_markers(tmp_path):
    sfreq = 250.0
    stim = np.zeros(1000)
    stim[[0, 1, 2]] = 3  # from the first sample on
    stim[200:210] = 5
    stim[210:215] = 6  # a rise without a return to zero
    stim[700] = 1  # one sample long
    data = np.vstack([np.random.default_rng(8).normal(0, 20e-6, (2, 1000)), stim])
    info = mne.create_info(["Fz", "Cz", "STI 014"], sfreq, ["eeg", "eeg", "stim"])
    raw = mne.io.RawArray(data, info, verbose="error")
    path = tmp_path / "trig_raw.fif"
    raw.save(path, verbose="error")
    expected = mne.find_events(mne.io.read_raw_fif(path, verbose="error"), shortest_event=1,
                               initial_event=True, verbose="error")
    _, _, _, events = replay(str(path))
    markers = [(e.sample_index, e.description) for e in events if e.kind == "marker"]
    assert markers == [(int(s), str(v)) for s, _, v in expected]
    assert markers == [(0, "3"), (200, "5"), (210, "6"), (700, "1")]


def test_bdf_status_channel_becomes_markers(tmp_path):
    """A BioSemi Status channel: trigger codes in the low 16 bits, system flags above."""
    import edfio

    status = np.zeros(768)
    status[100:110] = 4
    status[300:305] = 9
    status[500:] += 2**16  # a system bit turning on is no trigger
    signals = [
        edfio.BdfSignal(np.random.default_rng(0).normal(0, 20, 768), 256.0, label="Fz",
                        physical_dimension="uV", physical_range=(-1000, 1000)),
        edfio.BdfSignal(status, 256.0, label="Status", physical_dimension="Boolean",
                        physical_range=(-8388608, 8388607)),
    ]
    path = tmp_path / "biosemi.bdf"
    edfio.Bdf(signals, data_record_duration=1.0).write(path)
    _, _, _, events = replay(str(path))
    assert [(e.sample_index, e.description) for e in events if e.kind == "marker"] == \
        [(100, "4"), (300, "9")]


# -- damaged files of every format ------------------------------------------------------------
def _garble(path, seed=9):
    content = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    content[: min(len(content), 400)] = rng.bytes(min(len(content), 400))
    path.write_bytes(bytes(content))


def _fif(folder):
    raw = mne.io.RawArray(np.zeros((2, 500)), mne.create_info(2, 250.0, "eeg"), verbose="error")
    raw.save(folder / "x_raw.fif", verbose="error")
    return folder / "x_raw.fif"


def _export(suffix):
    def make(folder):
        raw = mne.io.RawArray(np.random.default_rng(0).normal(0, 1e-5, (2, 500)),
                              mne.create_info(2, 250.0, "eeg"), verbose="error")
        path = folder / f"x{suffix}"
        mne.export.export_raw(path, raw, verbose="error")
        return path

    return make


def _openbci(folder):
    path = folder / "x.txt"
    write_openbci(path, "cyton", np.zeros((8, 20)), np.arange(20), 1.7e9 + np.arange(20) / 250)
    return path


def _brainflow_csv(folder):
    path = folder / "x.csv"
    path.write_text("\n".join("\t".join(["1.0"] * 32) for _ in range(20)))
    return path


def _random_bytes(suffix):
    def make(folder):
        path = folder / f"x{suffix}"
        path.write_bytes(np.random.default_rng(1).bytes(5000))
        return path

    return make


DAMAGED = {
    "gdf": (_random_bytes(".gdf"), "x.gdf could not be read as GDF"),
    "cnt": (_random_bytes(".cnt"), "x.cnt could not be read as Neuroscan CNT"),
    "fif": (_fif, "x_raw.fif could not be read as FIF"),
    "edf": (_export(".edf"), "x.edf"),
    "bdf": (lambda folder: write_edf(folder / "x.bdf", np.zeros((2, 512)), 256.0), "x.bdf"),
    "eeglab": (_export(".set"), "x.set could not be read as EEGLAB"),
    "openbci": (_openbci, "x.txt"),
    "brainflow-csv": (_brainflow_csv, "x.csv"),
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_file_is_one_line_naming_it(kind, tmp_path):
    make, message = DAMAGED[kind]
    path = make(tmp_path)
    if kind not in ("gdf", "cnt"):  # no writer for these: random bytes only
        read_recording(path, board=-1 if kind == "brainflow-csv" else None)  # intact: fine
    _garble(path)
    with pytest.raises(FileFormatError, match=message) as error:
        read_recording(path, board=-1 if kind == "brainflow-csv" else None)
    assert "\n" not in str(error.value)
