"""BrainFlow's synthetic (-1) and playback (-3) boards are real boards: run them for real."""

import time

import numpy as np
import pytest

from dd_live.errors import ConfigError, SourceError
from dd_live.sources.brainflow import BrainFlowSource, resolve_board_id
from dd_live.sources.discovery import list_brainflow_boards
from dd_live.stream import AcquisitionThread, RingBuffer

SFREQ = 250


def acquire(source, seconds: float) -> RingBuffer:
    """Run source -> AcquisitionThread.step() -> RingBuffer for ``seconds``."""
    raw = RingBuffer(source.info.n_channels, int(10 * source.info.sfreq))
    acquisition = AcquisitionThread(source, raw, strict=True)
    source.start()
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
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
    raw = acquire(source, 1.2)
    data, stamps = raw.latest(raw.n_held)
    assert 0.8 * SFREQ < raw.n_written < 1.6 * SFREQ
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
    raw = acquire(source, 1.0)
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
