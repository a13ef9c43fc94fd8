"""Files written by MNE, edfio (EDF), pybv (BrainVision), eeglabio (EEGLAB) and BrainFlow are
replayed through ReplaySource -> AcquisitionThread -> RingBuffer and come out sample-identical
(a counter channel proves completeness)."""

import mne
import numpy as np
import pybv
import pytest

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.replay import ReplaySource, read_recording
from dd_live.stream import AcquisitionThread, RingBuffer

SFREQ = 250.0
N_TIMES = 1000  # 4 s
CH_NAMES = ["Fz", "Cz", "Pz", "Oz", "COUNTER"]
ANNOTATIONS = ([1.0, 2.5], [0.0, 0.5], ["stim/a", "b"])
EEG_SCALE = 20e-6
# (writer, file name, max error on EEG in volts): 16-bit EDF keeps ~range/65535
FORMATS = {
    "fif": ("a_raw.fif", 1e-11),
    "edf": ("a.edf", 5 * EEG_SCALE * 10 / 65535),
    "brainvision": ("a.vhdr", 1e-11),
    "eeglab": ("a.set", 1e-11),
}


@pytest.fixture
def original() -> np.ndarray:
    """``(5, N_TIMES)``: 4 EEG channels (volts) and a sample counter."""
    eeg = np.random.default_rng(0).standard_normal((4, N_TIMES)) * EEG_SCALE
    return np.vstack([eeg, np.arange(N_TIMES)[None]])


def write(kind: str, data: np.ndarray, folder) -> str:
    name = FORMATS[kind][0]
    path = folder / name
    if kind == "brainvision":
        # volts keep the counter exact; pybv warns that µV is the more portable unit
        with pytest.warns(UserWarning, match="unsupported voltage units: V"):
            pybv.write_brainvision(
                data=data,
                sfreq=SFREQ,
                ch_names=CH_NAMES,
                fname_base="a",
                folder_out=folder,
                unit="V",
            )
        return path
    info = mne.create_info(CH_NAMES, SFREQ, ["eeg"] * 4 + ["misc"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations(*ANNOTATIONS))
    if kind == "fif":
        raw.save(path, verbose="error")
    else:
        mne.export.export_raw(path, raw, verbose="error")
    return path


def replay_all(source: ReplaySource) -> tuple[RingBuffer, AcquisitionThread]:
    raw = RingBuffer(source.info.n_channels, 10 * N_TIMES)
    acquisition = AcquisitionThread(source, raw, strict=True)
    source.start()
    for _ in range(10 * N_TIMES):
        acquisition.step()
        if acquisition.state == "stopped":
            break
    return raw, acquisition


@pytest.mark.parametrize("kind", list(FORMATS))
def test_formats_replay_sample_identical(kind, original, tmp_path):
    path = write(kind, original, tmp_path)
    source = ReplaySource(path, speed=0)
    assert source.info.sfreq == SFREQ
    assert list(source.info.ch_names) == CH_NAMES
    raw, acquisition = replay_all(source)
    assert source.finished
    assert raw.n_written == N_TIMES
    data, stamps = raw.get(0, N_TIMES)
    # EDF stores 16-bit integers: the counter comes back within a fraction of one step
    np.testing.assert_array_equal(np.round(data[-1]), np.arange(N_TIMES))
    np.testing.assert_allclose(data[:4], original[:4], rtol=0, atol=FORMATS[kind][1])
    np.testing.assert_allclose(np.diff(stamps), 1 / SFREQ, rtol=1e-6)
    kinds = [e.kind for e in acquisition.events]
    assert "end" in kinds
    if kind != "brainvision":  # written without annotations
        markers = [e for e in acquisition.events if e.kind == "marker"]
        assert [m.description for m in markers] == ANNOTATIONS[2]
        assert [m.sample_index for m in markers] == [250, 625]


def test_brainflow_csv(tmp_path):
    from brainflow.board_shim import BoardShim
    from brainflow.data_filter import DataFilter

    n_rows = BoardShim.get_num_rows(-1)
    table = np.random.default_rng(1).standard_normal((n_rows, 300)) * 20  # microvolts
    table[BoardShim.get_timestamp_channel(-1)] = 1e9 + np.arange(300) / SFREQ
    path = tmp_path / "rec.csv"
    DataFilter.write_file(table, str(path), "w")
    with pytest.raises(ConfigError, match="BrainFlow CSV.*board=-1"):
        ReplaySource(path)
    source = ReplaySource(path, speed=0, board=-1)
    assert source.info.n_channels == 16 and source.info.ch_names[0] == "Fz"
    raw, _ = replay_all(source)
    data, _ = raw.get(0, 300)
    # BrainFlow writes 6 decimals of microvolts
    expected = table[BoardShim.get_eeg_channels(-1)] * 1e-6
    np.testing.assert_allclose(data, expected, rtol=0, atol=1e-12)


def test_session_folder_picks_raw_fif(original, tmp_path):
    write("fif", original, tmp_path)
    (tmp_path / "a_raw.fif").rename(tmp_path / "raw.fif")
    (tmp_path / "events.jsonl").write_text("{}\n")
    recording = read_recording(tmp_path)
    assert recording.name == "raw.fif" and recording.n_times == N_TIMES


def test_paced_seek_pause_loop(original, tmp_path, manual_clock):
    path = write("fif", original, tmp_path)
    clock = manual_clock  # moved by hand: pacing is checked exactly, nothing waits
    source = ReplaySource(path, speed=4.0, loop=True, chunk_duration=0.02, start=3.5,
                          clock=clock, sleep=clock.sleep)
    assert source.position == pytest.approx(3.5)
    counters = []
    with source:
        t0 = clock.now
        for _ in range(20):  # 20 x 1/64 s x 4 x 250 Hz = 312.5 samples due; wraps at 125
            clock.now += 1 / 64
            data, _ = source.read()
            counters.append(data[-1])
        counters = np.concatenate(counters)
        assert len(counters) == int((clock.now - t0) * 4 * SFREQ) == 312  # drift-free, exact
        expected = np.r_[np.arange(875, N_TIMES), np.arange(len(counters) - 125)]
        np.testing.assert_array_equal(counters, expected)
        source.pause()
        clock.now += 1.0
        assert source.read()[0].shape == (5, 0)  # paused: nothing, however long
        source.seek(2.0)
        source.resume()
        clock.now += 1 / 64
        data, _ = source.read()
        assert data[-1, 0] == 500 and data.shape[1] == int(4 * SFREQ / 64)
    assert not source.finished


def test_speed_limits(original, tmp_path):
    path = write("fif", original, tmp_path)
    with pytest.raises(ConfigError, match="speed must be between 0.25 and 8"):
        ReplaySource(path, speed=20)


def test_missing_file(tmp_path):
    with pytest.raises(FileFormatError, match=r"no such file or folder: .*nothere\.edf"):
        ReplaySource(tmp_path / "nothere.edf")


def test_unsupported_extension(tmp_path):
    path = tmp_path / "notes.docx"
    path.write_text("hello")
    with pytest.raises(FileFormatError, match=r"unsupported extension '\.docx'.*\.edf.*\.fif"):
        ReplaySource(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.edf"
    path.touch()
    with pytest.raises(FileFormatError, match="empty.edf is empty"):
        ReplaySource(path)


@pytest.mark.parametrize("kind", ["fif", "edf"])
def test_truncated_file(kind, original, tmp_path):
    path = write(kind, original, tmp_path)
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    fmt = {"fif": "FIF", "edf": "EDF"}[kind]
    with pytest.raises(FileFormatError, match=f"{path.name} could not be read as {fmt}: "):
        ReplaySource(path)


def test_garbled_file(tmp_path):
    path = tmp_path / "garbled.vhdr"
    path.write_bytes(np.random.default_rng(2).bytes(3000))
    with pytest.raises(FileFormatError, match="garbled.vhdr could not be read as BrainVision: "):
        ReplaySource(path)
