"""BrainFlow's synthetic (-1) and playback (-3) boards are real boards: run them for real."""

import time

import numpy as np
import pytest

from dd_live.errors import ConfigError, SourceError
from dd_live.sources.brainflow import BrainFlowSource, resolve_board_id
from dd_live.sources.discovery import list_brainflow_boards
from dd_live.stream import AcquisitionThread, RingBuffer

SFREQ = 250


def acquire(source, n_times: int, timeout: float = 20.0) -> RingBuffer:
    """Run source -> AcquisitionThread.step() -> RingBuffer until ``n_times`` samples arrived
    (the board streams in real time; ``timeout`` only bounds the wait, nothing is timed)."""
    raw = RingBuffer(source.info.n_channels, int(10 * source.info.sfreq))
    acquisition = AcquisitionThread(source, raw, strict=True)
    source.start()
    try:
        deadline = time.monotonic() + timeout
        while raw.n_written < n_times:
            assert time.monotonic() < deadline, f"{raw.n_written} of {n_times} samples arrived"
            acquisition.step()
    finally:
        acquisition.stop()
    return raw


def test_board_names_resolve():
    assert resolve_board_id("synthetic") == -1
    assert resolve_board_id("Cyton") == 0
    assert resolve_board_id("CYTON_BOARD") == 0
    assert resolve_board_id("-1") == -1
    with pytest.raises(ConfigError, match="unknown BrainFlow board id 999.*dd-live devices"):
        resolve_board_id(999)
    with pytest.raises(ConfigError, match="unknown BrainFlow board name 'nosuch'.*dd-live devices"):
        BrainFlowSource("nosuch")


def test_synthetic_board_through_acquisition():
    source = BrainFlowSource("synthetic")
    assert source.info.n_channels == 16 and source.info.sfreq == SFREQ
    assert source.info.ch_names[0] == "Fz"
    raw = acquire(source, SFREQ)
    data, stamps = raw.latest(raw.n_held)
    assert raw.n_held == raw.n_written >= SFREQ
    assert np.all(np.diff(stamps) > 0)
    assert abs(stamps[0] - time.time()) < 10  # the board's (Unix) clock
    assert 1e-6 < np.abs(data).max() < 1e-2  # volts, not microvolts
    assert not source.running


def test_playback_board_replays_a_brainflow_file(tmp_path):
    from brainflow.board_shim import BoardShim, BrainFlowInputParams
    from brainflow.data_filter import DataFilter

    board = BoardShim(-1, BrainFlowInputParams())
    board.prepare_session()
    board.start_stream()
    time.sleep(1.0)
    recorded = board.get_board_data()  # (n_rows, n_times), microvolts
    board.stop_stream()
    board.release_session()
    path = tmp_path / "session.csv"
    DataFilter.write_file(recorded, str(path), "w")

    source = BrainFlowSource(-3, {"file": str(path), "master_board": "synthetic"})
    assert source.info.sfreq == SFREQ and source.info.n_channels == 16
    raw = acquire(source, 50)
    data, _ = raw.get(raw.first_index, raw.first_index + 50)
    eeg_rows = BoardShim.get_eeg_channels(-1)
    # the playback board starts from the file's first sample; the CSV keeps 6 decimals of µV,
    # so values near zero need an absolute tolerance (1e-6 µV = 1e-12 V) beside the relative one
    np.testing.assert_allclose(data, recorded[eeg_rows, :50] * 1e-6, rtol=1e-5, atol=1e-11)


def test_board_not_connected_names_the_port():
    source = BrainFlowSource("cyton", {"serial_port": "/dev/ttyDDLIVE-NONE"})
    with pytest.raises(SourceError, match="serial port '/dev/ttyDDLIVE-NONE'.*dongle"):
        source.start()
    assert not source.running


def test_bad_params():
    with pytest.raises(ConfigError, match="unknown BrainFlow parameter 'port'.*serial_port"):
        BrainFlowSource("synthetic", {"port": "/dev/ttyUSB0"})
    with pytest.raises(ConfigError, match="playback board .* needs params file"):
        BrainFlowSource(-3)


def test_list_boards():
    boards = {b["id"]: b for b in list_brainflow_boards()}
    assert boards[-1]["name"] == "SYNTHETIC_BOARD"
    assert boards[-1]["n_eeg"] == 16 and boards[-1]["sfreq"] == SFREQ
    assert boards[0]["name"] == "CYTON_BOARD"


def test_playback_jitter_is_no_gap_and_a_real_gap_is_counted(tmp_path):
    """A BrainFlow file whose timestamps jitter by ±20 ms (bursts, as a dongle delivers them)
    and where 300 samples are missing (the one-byte package counter wraps in between): one gap
    of exactly 300 samples, no other, and the filter restarts only there."""
    from brainflow.board_shim import BoardShim
    from brainflow.data_filter import DataFilter

    from dd_live.stream import StreamingFilter, design_filter

    n_rows = BoardShim.get_num_rows(-1)
    index = np.r_[0:450, 750:800]  # samples 450..749 were lost
    recorded = np.zeros((n_rows, index.size))
    recorded[BoardShim.get_package_num_channel(-1)] = index % 256
    eeg_rows = BoardShim.get_eeg_channels(-1)
    recorded[eeg_rows] = 10.0 * np.sin(index / 10.0)  # µV
    burst_jitter = np.random.default_rng(0).uniform(-0.02, 0.02, index.size // 10 + 1)
    recorded[BoardShim.get_timestamp_channel(-1)] = (
        1.7e9 + index / SFREQ + np.repeat(burst_jitter, 10)[: index.size])
    path = tmp_path / "jitter.csv"
    DataFilter.write_file(recorded, str(path), "w")

    source = BrainFlowSource(-3, {"file": str(path), "master_board": "synthetic"},
                             config="old_timestamps;loopback_false")
    raw = RingBuffer(16, 2000)
    filtered = RingBuffer(16, 2000)
    filt = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), 16)
    events = []
    acquisition = AcquisitionThread(source, raw, filtered, filt, on_events=events.extend,
                                    strict=True)
    source.start()
    try:
        deadline = time.monotonic() + 15
        while raw.n_written < index.size and time.monotonic() < deadline:
            acquisition.step()
    finally:
        acquisition.stop()
    assert raw.n_written == index.size
    data, stamps = raw.get(0, index.size)
    np.testing.assert_allclose(data[0], 1e-5 * np.sin(index / 10.0), rtol=1e-5, atol=1e-11)
    gaps = [e for e in events if e.kind in ("gap", "discontinuity")]
    assert [(g.kind, g.sample_index, g.extra["n_missing"]) for g in gaps] == [("gap", 450, 300)]
    assert gaps[0].extra["found_by"] == "package counter"
    assert acquisition.n_filter_resets == 1
    steps = np.diff(stamps) * SFREQ
    assert steps[449] == pytest.approx(301, abs=1)  # the gap is 300 samples long
    others = np.delete(steps, 449)
    assert others.min() > 0.9 and others.max() < 1.1  # the ±20 ms jitter is gone
