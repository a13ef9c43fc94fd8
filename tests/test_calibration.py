"""dd-live calibrate: schedule, stimulus table, markers, aborts, and the one preprocessing path.

Everything runs for real: the simulated viewer (``synthetic?viewer=1``) in simulated time
(``--speed 0``), the real SessionRecorder files read back (MNE for the BrainVision markers), the
real LiveSession replaying the recorded folder. The only stand-in is ``ProbeDecoder`` in the
parity test: it takes the place of the image model to capture exactly what the live app would
feed it (the model itself is not what that test is about).
"""

import csv
import json

import mne
import numpy as np
import pytest
from PIL import Image, ImageDraw

from dd_live import cli
from dd_live.calibration import (
    CALIBRATION_FILE,
    MARKER_PREFIX,
    STIMULI_FILE,
    CalibrationConfig,
    CalibrationRun,
    CalibrationSession,
    HeadlessPresenter,
    calibrate,
    find_images,
    make_schedule,
    make_stimuli,
)
from dd_live.config import AppConfig
from dd_live.decoding import DecodedImages
from dd_live.errors import ConfigError
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource, open_source
from dd_live.sources.readers import read_recording
from dd_live.sources.replay import ReplaySource
from training.data.calibration import CalibrationPairs

VIEWER = "synthetic?viewer=1&n_channels=8"


def draw_images(folder, n, seed=0, size=32):
    """``n`` images of a coloured shape on a coloured ground, written as PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        ground, colour = (tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(2))
        image = Image.new("RGB", (size, size), ground)
        x, y = (int(v) for v in rng.integers(0, size * 5 // 8, 2))
        r = int(rng.integers(size // 5, size // 2))
        shape = ImageDraw.Draw(image).ellipse if rng.random() < 0.5 else ImageDraw.Draw(image).rectangle
        shape([x, y, x + r, y + r], fill=colour)
        image.save(folder / f"{i:03d}.png")
    return folder


def read_table(folder):
    with (folder / STIMULI_FILE).open(newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


def app_config(tmp_path):
    return AppConfig().replace(source={"spec": VIEWER}, record={"root": str(tmp_path / "runs")})


def test_schedule_splits_by_image_repeats_tests_and_is_randomised(tmp_path):
    files = find_images(draw_images(tmp_path / "img", 12))
    config = CalibrationConfig(test_images=3, test_repeats=4, seed=1)
    stimuli = make_stimuli(files, config)
    assert sum(s.split == "test" for s in stimuli) == 3
    trials = make_schedule(stimuli, config)
    assert len(trials) == 9 + 3 * 4  # one block
    shown = [t.stimulus.image_id for t in trials]
    for s in stimuli:
        assert shown.count(s.image_id) == (4 if s.split == "test" else 1)
    # randomised: not in file order, and another seed gives another order
    assert shown != [s.image_id for s in stimuli for _ in range(4 if s.split == "test" else 1)]
    other = make_schedule(stimuli, CalibrationConfig(test_images=3, test_repeats=4, seed=2))
    assert [t.stimulus.image_id for t in other] != shown
    slow = make_schedule(stimuli, CalibrationConfig(design="slow", n_trials=50, seed=1))
    assert len(slow) == 50 and len({t.blank for t in slow}) > 1  # jittered blanks
    assert all(0.4 <= t.blank <= 0.8 and t.on == 1.0 for t in slow)
    with pytest.raises(ConfigError, match="keep at least one for training"):
        make_stimuli(files, CalibrationConfig(test_images=12))
    with pytest.raises(ConfigError, match="design must be one of"):
        CalibrationConfig(design="blocked")


def test_table_events_markers_and_the_eeg_agree_sample_for_sample(tmp_path):
    images = draw_images(tmp_path / "img", 10)
    source = open_source(VIEWER, realtime=False)
    run = calibrate(images, CalibrationConfig(test_images=2, test_repeats=3, seed=3),
                    app_config(tmp_path), headless=True, speed=0, source=source)
    folder = run.folder
    rows = read_table(folder)
    assert len(rows) == run.n_presented == 8 + 2 * 3 and not run.aborted
    assert list(rows[0]) == ["trial", "image_id", "file", "sha256", "onset_sample", "onset_time",
                             "split"]
    onsets = [int(r["onset_sample"]) for r in rows]
    # ground truth: where the simulated viewer's responses really start in the signal
    assert onsets == [sample for sample, _ in source.presented]
    assert [r["image_id"] for r in rows] == [label for _, label in source.presented]
    # rsvp: 100 ms + 100 ms at 250 Hz = 50 samples apart, after a 2 s lead-in
    assert onsets[0] == 500 and np.all(np.diff(onsets) == 50)
    markers = [e for e in read_events(folder) if e["type"] == "marker"]
    assert [(m["sample"], m["description"]) for m in markers] == [
        (int(r["onset_sample"]), MARKER_PREFIX + r["image_id"]) for r in rows]
    # the markers are in the BrainVision file too, at the same samples, for MNE users
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=False, verbose="error")
    annotations = [(round(a["onset"] * raw.info["sfreq"]), a["description"].removeprefix("Comment/"))
                   for a in raw.annotations if MARKER_PREFIX in a["description"]]
    assert annotations == [(m["sample"], m["description"]) for m in markers]
    # the stamp is the timestamp of that sample, and every row names the right file and split
    timestamps = np.fromfile(folder / "timestamps.f64")
    for row in rows:
        assert float(row["onset_time"]) == pytest.approx(timestamps[int(row["onset_sample"])])
    summary = json.loads((folder / CALIBRATION_FILE).read_text())
    split = {i["image_id"]: i["split"] for i in summary["images"]}
    assert all(split[r["image_id"]] == r["split"] for r in rows)
    assert summary["n_placed"] == len(rows) and summary["aborted"] is False


def test_an_aborted_calibration_is_valid_training_data(tmp_path):
    images = draw_images(tmp_path / "img", 10)
    run = calibrate(images, CalibrationConfig(test_images=2, test_repeats=3, seed=4),
                    app_config(tmp_path), headless=True, speed=0, max_trials=7)
    assert run.aborted and run.n_presented == 7 and len(run.rows) == 7
    folder = run.folder
    assert json.loads((folder / CALIBRATION_FILE).read_text())["aborted"] is True
    session = CalibrationSession.open(folder)
    assert len(session.rows) == 7
    pairs = CalibrationPairs(folder, "all", n_times=64, image_size=16)
    # the images whose 0.02 + 0.44 s window runs past the end of the recording are left out
    n_samples = len(np.fromfile(folder / "timestamps.f64"))
    complete = [r for r in session.rows if r["onset_sample"] + 5 + 110 <= n_samples]
    assert 0 < len(complete) < 7
    assert len(pairs) == len(complete) and pairs[0]["eeg"].shape == (8, 64)
    assert np.isfinite(pairs.eeg).all() and np.allclose(pairs.eeg.std(axis=2), 1, atol=1e-3)
    loaded = [pairs.image_keys[label] for label in pairs.labels]
    assert loaded == [r["sha256"] for r in complete]


class ProbeDecoder:
    """Stands in for the image model: keeps each window's model input (nothing is generated)."""

    n_channels, n_times = 8, 64

    def __init__(self):
        self.inputs = []

    def __call__(self, eeg, seed):
        self.inputs.append(np.array(eeg, copy=True))
        return DecodedImages(images=[], seeds=[], timings={})


def test_live_and_training_preprocessing_are_identical(tmp_path):
    images = draw_images(tmp_path / "img", 8)
    run = calibrate(images, CalibrationConfig(design="slow", n_trials=12, test_images=2, seed=5),
                    app_config(tmp_path), headless=True, speed=0)
    folder = run.folder
    # live: the app replays the recorded raw samples, cutting windows at the image markers
    config = AppConfig.from_toml(folder / "config.toml").replace(quality={"mode": "off"},
                                                                record={"enabled": False})
    assert config.window.mode == "marker"
    probe = replay_model_inputs(config, folder, 12)
    # training: the calibration loader on the same folder
    pairs = CalibrationPairs(folder, "all", n_channels=8, n_times=64, image_size=16,
                             app_config=config)
    assert len(probe.inputs) == len(pairs) == 12
    np.testing.assert_array_equal(np.stack(probe.inputs), pairs.eeg)


def replay_model_inputs(config: AppConfig, path, n_windows: int) -> ProbeDecoder:
    """What a real LiveSession replaying ``path`` at full speed feeds the model, window by
    window, until the file ends and ``n_windows`` came."""
    probe = ProbeDecoder()
    session = LiveSession(config, source=ReplaySource(path, speed=0), decoder=probe, threaded=False)
    session.start()
    for _ in range(100_000):
        session.step()
        if session.source.finished and len(probe.inputs) >= n_windows:
            break
    session.stop()
    return probe


class DropoutViewer(SyntheticSource):
    """The simulated viewer whose headset drops out: NaN on one channel over samples
    ``[start, stop)``, as a device reports a lost electrode."""

    def __init__(self, start: int, stop: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.dropout = (start, stop)
        self.n_read = 0

    def _read(self):
        data, stamps = super()._read()
        index = self.n_read + np.arange(data.shape[1])
        self.n_read += data.shape[1]
        data[2, (index >= self.dropout[0]) & (index < self.dropout[1])] = np.nan
        return data, stamps


def test_windows_over_a_recorded_dropout_are_skipped_as_live(tmp_path, caplog):
    images = draw_images(tmp_path / "img", 10)
    source = DropoutViewer(600, 700, n_channels=8, realtime=False, viewer=True)
    run = calibrate(images, CalibrationConfig(test_images=2, test_repeats=3, seed=3),
                    app_config(tmp_path), headless=True, speed=0, source=source)
    folder = run.folder
    recording = read_recording(folder)
    assert np.isnan(recording.data[2, 600:700]).all()  # the dropout is in the session's EEG
    rows = CalibrationSession.open(folder).rows
    # the 0.02 s + 0.44 s windows (samples onset+5 ... onset+115) that overlap it
    hit = [r for r in rows if r["onset_sample"] + 5 < 700 and r["onset_sample"] + 115 > 600]
    complete = [r for r in rows if r["onset_sample"] + 115 <= recording.n_times]
    assert len(hit) == 4 and len(complete) == len(rows) == 14  # a finished run: every window whole
    config = AppConfig.from_toml(folder / "config.toml").replace(quality={"mode": "off"},
                                                                record={"enabled": False})
    with caplog.at_level("INFO"):
        pairs = CalibrationPairs(folder, "all", n_channels=8, n_times=64, image_size=16,
                                 app_config=config)
    assert "4 of 14 windows hold NaN/Inf samples" in caplog.text
    assert [pairs.image_keys[label] for label in pairs.labels] == [
        r["sha256"] for r in complete if r not in hit]
    assert np.isfinite(pairs.eeg).all()
    # the live app rejects the same windows and feeds the model the same arrays for the rest
    probe = ProbeDecoder()
    session = LiveSession(config, source=ReplaySource(folder, speed=0), decoder=probe, threaded=False)
    session.start()
    for _ in range(100_000):
        session.step()
        if session.source.finished and len(probe.inputs) + session.n_rejected >= 14:
            break
    session.stop()
    assert session.n_rejected == 4
    np.testing.assert_array_equal(np.stack(probe.inputs), pairs.eeg)


def test_cli_calibrate_writes_a_session_folder(tmp_path, capsys):
    images = draw_images(tmp_path / "img", 6)
    code = cli.main(["calibrate", "--source", VIEWER, "--images", str(images), "--headless",
                     "--speed", "0", "--trials", "9", "--out", str(tmp_path / "runs"),
                     "--copy-images"])
    assert code == 0
    (folder,) = (tmp_path / "runs").iterdir()
    assert len(read_table(folder)) == 9 and "9 of 9 images placed" in capsys.readouterr().out
    copies = list((folder / "stimuli").iterdir())
    assert len(copies) == 6  # referenced by content hash
    assert cli.main(["calibrate", "--images", str(tmp_path / "nothing"), "--headless", "--speed",
                     "0", "--out", str(tmp_path / "runs")]) != 0
    assert "does not exist" in capsys.readouterr().err
    assert cli.main(["calibrate", "--source", "brainflow:-1", "--images", str(images), "--headless",
                     "--speed", "0", "--out", str(tmp_path / "runs")]) != 0
    assert "--speed 0" in capsys.readouterr().err


def test_a_real_board_gets_lsl_markers_that_match_the_table(tmp_path):
    """BrainFlow's synthetic board (-1) in real time: each onset is also an LSL marker
    ``image:<id>`` (for LabRecorder), stamped on the LSL clock, in the table's order."""
    import pylsl

    images = draw_images(tmp_path / "img", 4)
    config = CalibrationConfig(n_trials=6, test_images=1, lead_in=0.5, seed=0)
    stimuli = make_stimuli(find_images(images), config)
    app = AppConfig().replace(source={"spec": "brainflow:-1"}, record={"root": str(tmp_path / "runs")})
    run = CalibrationRun(config, stimuli, app).start()
    try:
        (info,) = pylsl.resolve_byprop("source_id", run.marker_source_id, minimum=1, timeout=5)
        inlet = pylsl.StreamInlet(info)
        inlet.open_stream(timeout=5)
        t0 = pylsl.local_clock()
        HeadlessPresenter(run).present(make_schedule(stimuli, config))
    finally:
        run.stop()
    markers, stamps = [], []
    while len(markers) < 6:
        sample, stamp = inlet.pull_sample(timeout=5)
        assert sample is not None, f"only {len(markers)} markers arrived"
        markers.append(sample[0])
        stamps.append(stamp)
    rows = read_table(run.folder)
    assert markers == [MARKER_PREFIX + r["image_id"] for r in rows]
    assert t0 < stamps[0] and np.all(np.diff(stamps) > 0.15)  # 200 ms apart, on the LSL clock
    events = [e for e in read_events(run.folder) if e["type"] == "marker"]
    assert [e["sample"] for e in events] == [int(r["onset_sample"]) for r in rows]
    n_samples = len(np.fromfile(run.folder / "timestamps.f64"))
    assert all(0 < int(r["onset_sample"]) < n_samples for r in rows)


def test_a_finished_rsvp_calibration_records_the_last_images_whole_window(tmp_path):
    # rsvp trials last 0.2 s but a window needs 0.02 + 0.44 s: the recording must go on past the
    # last blank, or a finished run's last images have no window to train on
    images = draw_images(tmp_path / "img", 10)
    run = calibrate(images, CalibrationConfig(test_images=2, test_repeats=3, seed=6),
                    app_config(tmp_path), headless=True, speed=0)
    assert not run.aborted and len(run.rows) == 8 + 2 * 3
    n_samples = len(np.fromfile(run.folder / "timestamps.f64"))
    assert max(r["onset_sample"] for r in run.rows) + 5 + 110 <= n_samples
    pairs = CalibrationPairs(run.folder, "all", n_times=64, image_size=16)
    assert len(pairs) == len(run.rows)


def test_cli_calibrate_records_where_the_config_file_says_unless_out_is_given(tmp_path, capsys):
    images = draw_images(tmp_path / "img", 4)
    config = tmp_path / "dd-live.toml"
    config.write_text(f'[record]\nroot = "{(tmp_path / "from-config").as_posix()}"\n')
    argv = ["calibrate", "--source", VIEWER, "--images", str(images), "--headless", "--speed", "0",
            "--trials", "3", "--config", str(config)]
    assert cli.main(argv) == 0
    assert len(list((tmp_path / "from-config").iterdir())) == 1
    assert cli.main([*argv, "--out", str(tmp_path / "from-cli")]) == 0  # the command line wins
    assert len(list((tmp_path / "from-cli").iterdir())) == 1
    assert len(list((tmp_path / "from-config").iterdir())) == 1
