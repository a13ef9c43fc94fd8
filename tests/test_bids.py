"""Sessions as BIDS: ``dd-live export-bids`` writes them with mne-bids, the official validator
(npm ``bids-validator``, run by node) accepts the result, and ``bids:`` sources read through
mne-bids give what the session folder gives: the same samples, markers, gaps, windows, images
and calibration pairs.

Everything is real: a calibration run of the simulated viewer (``dd-live calibrate``), a real
LSL outlet in a subprocess whose stream loses samples and comes back with other channels
(tests/lsl_outlet.py), a FIF file with a flat channel replayed into a LiveSession with a
stand-in for the image model that keeps what the live app feeds it (``ProbeDecoder``: the
model is not what these tests are about; windows, quality and bad-channel verdicts are real).
"""

import csv
import json
import logging
import os
import shutil
import subprocess
import time
from pathlib import Path

import mne
import numpy as np
import pytest
from test_calibration import VIEWER, ProbeDecoder, draw_images
from test_fault_lsl import Outlet, phase
from test_stream_faults import NAMES, SFREQ, write_fif

from dd_live import cli
from dd_live.bids import export_bids
from dd_live.calibration import CalibrationSession, file_sha256, session_epochs
from dd_live.config import AppConfig, RecordConfig, SourceConfig, WindowConfig
from dd_live.errors import ConfigError
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources import open_source
from dd_live.sources.bids import find_bids_runs, read_bids
from dd_live.sources.readers import read_recording
from dd_live.sources.synthetic import synthetic_eeg
from training.data.calibration import CalibrationPairs

logger = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
#: where ``make install`` puts the validator (the Makefile exports BIDS_VALIDATOR)
VALIDATOR = Path(os.environ.get(
    "BIDS_VALIDATOR", REPO / ".venv/node/node_modules/bids-validator/bin/bids-validator"))
N_TRIALS = 20

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models, on a shared 2-core CPU
N_IMAGES = 8


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A calibration session of the simulated viewer, as a user records it, and its export."""
    base = tmp_path_factory.mktemp("calibration")
    images = draw_images(base / "img", N_IMAGES)
    settings = base / "settings.toml"  # not the defaults: a reader must use the recorded ones
    settings.write_text("[filter]\nl_freq = 2.0\n\n[window]\noffset = 0.05\nlength = 0.3\n")
    assert cli.main(["calibrate", "--source", VIEWER, "--images", str(images), "--trials",
                     str(N_TRIALS), "--test-images", "2", "--headless", "--speed", "0",
                     "--out", str(base / "runs"), "--config", str(settings)]) == 0
    (folder,) = (base / "runs").iterdir()
    root = base / "bids"
    assert cli.main(["export-bids", str(folder), "--root", str(root), "--subject", "01",
                     "--session", "01"]) == 0
    return folder, root


def validate(root: Path) -> dict:
    """The official BIDS validator's JSON report of ``root`` (node must be there)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the BIDS validator (an npm package) cannot run")
    if not VALIDATOR.is_file():
        pytest.fail(f"the BIDS validator is not installed ({VALIDATOR} is missing): make install "
                    "installs it with npm (bids-validator 1.15.0 into .venv/node)")
    proc = subprocess.run([node, str(VALIDATOR), str(root), "--json"], capture_output=True,
                          text=True, timeout=120)
    report = json.loads(proc.stdout)
    for warning in report["issues"]["warnings"]:  # reported, not failed
        files = [f["file"]["relativePath"] for f in warning["files"] if f.get("file")][:3]
        logger.warning("bids-validator warning %s: %s %s", warning["key"], warning["reason"],
                       files)
    return report


def errors_of(report: dict) -> list[str]:
    return [f"{e['key']}: {e['reason']} " + ", ".join(
        f["file"]["relativePath"] for f in e["files"] if f.get("file"))
        for e in report["issues"]["errors"]]


def read_tsv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file, delimiter="\t"))


# -- the calibration session ------------------------------------------------------------------
def test_export_of_a_calibration_session_passes_the_bids_validator(calibration):
    folder, root = calibration
    report = validate(root)
    assert errors_of(report) == []
    assert report["summary"]["subjects"] == ["01"] and report["summary"]["tasks"] == [
        "calibration"]

    eeg = root / "sub-01" / "ses-01" / "eeg"
    base = "sub-01_ses-01_task-calibration_run-1"
    sidecar = json.loads((eeg / f"{base}_eeg.json").read_text())
    assert sidecar["Manufacturer"] == "dd-live"
    assert sidecar["ManufacturersModelName"] == "simulated viewer (synthetic EEG)"
    mains = [e for e in read_events(folder) if e["type"] == "mains"]
    assert mains and sidecar["PowerLineFrequency"] == mains[-1]["freq"] == 50.0  # as measured
    assert sidecar["SamplingFrequency"] == 250.0 and sidecar["EEGReference"] == "n/a"
    description = json.loads((root / "dataset_description.json").read_text())
    assert description["GeneratedBy"][0]["Name"] == "dd-live"
    assert [r["participant_id"] for r in read_tsv(root / "participants.tsv")] == ["sub-01"]
    # every trial: its marker, its image under stimuli/ (the shown file, byte for byte)
    session = CalibrationSession.open(folder)
    shown = [r for r in read_tsv(eeg / f"{base}_events.tsv") if r["stim_file"] != "n/a"]
    assert len(shown) == len(session.rows) == N_TRIALS
    for row, trial in zip(shown, session.rows):
        assert int(row["sample"]) == trial["onset_sample"]
        assert row["trial_type"] == f"image:{trial['image_id']}" and row["kind"] == "marker"
        assert row["split"] == trial["split"] and row["sha256"] == trial["sha256"]
        assert file_sha256(root / "stimuli" / row["stim_file"]) == trial["sha256"]
    # the samples as recorded: the data file is copied, never converted
    assert (eeg / f"{base}_eeg.eeg").read_bytes() == (folder / "eeg.eeg").read_bytes()
    channels = read_tsv(eeg / f"{base}_channels.tsv")
    assert {c["type"] for c in channels} == {"EEG"} and {c["status"] for c in channels} == {
        "good"}


def test_bids_source_gives_the_windows_and_pairs_of_the_session_folder(calibration):
    folder, root = calibration
    spec = "bids:" + str(root) + "?subject=01&task=calibration"
    recording, original = read_bids(spec), read_recording(folder)
    np.testing.assert_array_equal(recording.data, original.data)  # bit for bit, in volts
    assert recording.annotations == original.annotations and recording.events == original.events
    assert (recording.sfreq, recording.ch_names, recording.ch_types) == (
        original.sfreq, original.ch_names, original.ch_types)

    # a run stands in for its session folder: its files as kept, its data file as a path
    (run,) = find_bids_runs(spec)
    for name in ("config.toml", "events.jsonl", "timestamps.f64", "stimuli.tsv"):
        assert (run / name).read_bytes() == (folder / name).read_bytes()
    assert read_recording(run).ch_names == original.ch_names  # os.fspath: the data file

    config = AppConfig.from_toml(folder / "config.toml")
    onsets = [row["onset_sample"] for row in CalibrationSession.open(folder).rows]
    restored = CalibrationSession.open(spec)  # the stimulus table from events.tsv + stimuli/
    restored.check_images()
    assert [r["onset_sample"] for r in restored.rows] == onsets
    ours, kept = session_epochs(recording, onsets, config, 8, 128)
    theirs, kept_there = session_epochs(original, onsets, config, 8, 128)
    assert len(kept) == N_TRIALS
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(kept, kept_there)

    # what every training script reads: the same epochs, labels and images
    for split in ("train", "test"):
        bids = CalibrationPairs(spec, split, n_times=128, image_size=16)
        folder_pairs = CalibrationPairs(folder, split, n_times=128, image_size=16)
        np.testing.assert_array_equal(bids.eeg, folder_pairs.eeg)
        assert bids.labels == folder_pairs.labels and bids.image_keys == folder_pairs.image_keys
        for image_id in bids.image_ids:
            np.testing.assert_array_equal(np.asarray(bids.load_image(image_id)),
                                          np.asarray(folder_pairs.load_image(image_id)))


def test_replay_of_a_bids_run_feeds_the_model_what_its_session_folder_does(calibration,
                                                                        tmp_path):
    """A real LiveSession (the session's own settings: windows at the image markers) replays
    the BIDS run and the session folder; the model (a probe standing in for it) gets the same
    inputs, and the quality check rejects the same windows."""
    folder, root = calibration
    outputs = []
    for spec in (f"file:{folder}?speed=0", f"bids:{root}?subject=01&run=1&speed=0"):
        config = AppConfig.from_toml(folder / "config.toml").replace(
            source={"spec": spec}, record={"enabled": False}, window={"marker_images": ""})
        probe = ProbeDecoder()
        session = LiveSession(config, decoder=probe, threaded=False)
        rejected = []
        session.callbacks.window_rejected.append(
            lambda window, why, rejected=rejected: rejected.append((window.start, why)))
        session.start()
        while not session.source.finished:
            session.step()
        for _ in range(50):
            session.step()
        session.stop()
        outputs.append((probe.inputs, rejected))
    (from_folder, rejected_there), (from_bids, rejected_here) = outputs
    assert len(from_bids) + len(rejected_here) == N_TRIALS  # a window at every image onset
    assert rejected_here == rejected_there
    np.testing.assert_array_equal(np.stack(from_bids), np.stack(from_folder))

    # as a user runs it: dd-live replay takes the settings the session was recorded with
    assert cli.main(["replay", f"bids:{root}?subject=01", "--headless", "--speed", "0",
                     "--record", str(tmp_path)]) == 0
    (again,) = tmp_path.iterdir()
    assert read_recording(again).annotations == read_recording(folder).annotations
    np.testing.assert_array_equal(read_recording(again).data, read_recording(folder).data)


def test_finetune_and_pretrain_read_a_bids_data_set(calibration, tmp_path):
    """The training scripts take ``bids:`` data: a personal model trained on the BIDS run, the
    gallery of its shown images, its evaluation, and pretraining windows through the live
    preprocessing."""
    from training import evaluate, finetune, pretrain

    folder, root = calibration
    spec = f"bids:{root}?subject=01"
    out = tmp_path / "ft"
    finetune.main(["--preset", "tiny", "--data", spec, "--output-dir", str(out),
                   "--image-size", "16", "--epochs", "1", "--vae-epochs", "0",
                   "--align-epochs", "1", "--batch-size", "4"])
    gallery = sorted(p.name for p in (out / "model" / "gallery").iterdir())
    shown = {row["sha256"][:16] for row in CalibrationSession.open(folder).rows}
    assert gallery == sorted(f"{digest}.png" for digest in shown)
    results = evaluate.main(["--model", str(out / "model"), "--data", spec, "--metric",
                             "retrieval", "--output-dir", str(tmp_path / "ev")])
    assert results["data"] == spec and results["retrieval"]["n_way"] == 2  # the 2 test images

    pre = tmp_path / "pre"
    pretrain.main(["--preset", "tiny", "--data", spec, "--output-dir", str(pre), "--epochs", "1",
                   "--live-preprocessing"])
    manifest = json.loads((pre / "corpus" / "manifest.json").read_text())
    assert [p["fingerprint"]["source"] for p in manifest["parts"]] == [
        str(run) for run in find_bids_runs(spec)]
    assert manifest["parts"][0]["n_windows"] > 0


# -- a stream that loses samples and changes its layout ---------------------------------------
def test_gaps_and_layout_segments_become_runs_with_their_gaps(stream_name, tmp_path):
    """A real LSL stream (a sample counter on channel 0) loses 100 samples, then comes back with
    4 instead of 8 channels: the session writes two segment folders; exported (in any order)
    they are runs 1 and 2, the gap is an events.tsv row, and the bids: source replays it as a
    gap of 100 samples, as the folder does."""
    first = phase(stream_name, n_samples=1500, skip=[[600, 100]], pause_after=0.5)
    second = phase(stream_name, n_channels=4, first=2000, n_samples=800)
    outlet = Outlet([first, second])
    config = AppConfig(source=SourceConfig(spec=f"lsl:{stream_name}"),
                       record=RecordConfig(enabled=True, root=str(tmp_path / "runs"), name="s"))
    session = LiveSession(config, generate=False, threaded=False)
    try:
        session.start()
        released, deadline = False, time.monotonic() + 60
        while time.monotonic() < deadline and not (
                session.raw.n_channels == 4 and session.raw.n_written >= 700):
            session.step()
            if not released and session.raw.n_written >= 1400:
                outlet.release()
                released = True
    finally:
        session.stop()
        outlet.close()
    segments = sorted((tmp_path / "runs").iterdir())
    assert len(segments) == 2
    root = tmp_path / "bids"
    exported = export_bids(segments[::-1], root, "02", task="lsl")
    assert [e.folder for e in exported] == segments  # each segment after the one it continues
    assert [e.run.run for e in exported] == ["1", "2"]
    assert errors_of(validate(root)) == []

    runs = find_bids_runs(f"bids:{root}?subject=02&task=lsl")
    assert [r.path.name for r in runs] == [e.run.path.name for e in exported]
    for run, folder in zip(runs, segments):
        recording, original = run.read(), read_recording(folder)
        np.testing.assert_array_equal(recording.data, original.data)
        assert recording.gaps == original.gaps
        assert recording.ch_names == original.ch_names
    first_run = runs[0].read()
    assert first_run.gaps == [(600, 100)]
    np.testing.assert_array_equal(first_run.data[0], np.r_[0:600, 700:first_run.n_times + 100])
    assert first_run.ch_types[0] == "misc"  # the counter, as the stream declared it
    channels = read_tsv(runs[0].sidecar("channels", ".tsv"))
    assert [c["type"] for c in channels] == ["MISC"] + ["EEG"] * 7
    rows = read_tsv(runs[0].sidecar("events", ".tsv"))
    (gap,) = [r for r in rows if r["kind"] == "gap"]
    assert (gap["sample"], gap["n_missing"]) == ("600", "100")
    assert [r["kind"] for r in read_tsv(runs[1].sidecar("events", ".tsv"))][0] == "segment_start"
    sidecar = json.loads(runs[0].sidecar("eeg", ".json").read_text())
    assert sidecar["ManufacturersModelName"] == f"LSL stream {stream_name}"
    assert sidecar["Manufacturer"] == "n/a"
    # the replay advances its clock over the gap, as the folder's replay does
    for spec in (str(runs[0]) + "&speed=0", f"file:{segments[0]}?speed=0"):
        source = open_source(spec, chunk_duration=10.0)
        source.start()
        _, stamps = source.read()
        source.stop()
        steps = np.round(np.diff(stamps) * 500.0).astype(int)
        assert steps.tolist() == [1] * 599 + [101] + [1] * (len(steps) - 600)


def test_bad_channels_are_status_bad_with_the_reason(tmp_path):
    n_times = int(8 * SFREQ)
    data = synthetic_eeg(None, len(NAMES), SFREQ, n_times, seed=5)
    data[3, int(2 * SFREQ):] = 0.187  # C4 rails at the amplifier's limit and stays there
    path = write_fif(tmp_path / "flat_raw.fif", data)
    config = AppConfig(window=WindowConfig(mode="interval", length=0.44, hop=0.5),
                       source=SourceConfig(spec=f"file:{path}?speed=0"),
                       record=RecordConfig(enabled=True, root=str(tmp_path / "runs"), name="f"))
    session = LiveSession(config, decoder=ProbeDecoder(), threaded=False)
    session.start()
    while not session.source.finished:
        session.step()
    session.stop()
    assert session.bad_channels == ("C4",)
    (folder,) = (tmp_path / "runs").iterdir()
    root = tmp_path / "bids"
    (exported,) = export_bids([folder], root, "03", line_freq=60.0, reference="Cz")
    channels = {c["name"]: c for c in read_tsv(exported.run.sidecar("channels", ".tsv"))}
    assert channels["C4"]["status"] == "bad"
    assert "marked bad at" in channels["C4"]["status_description"]
    assert "flat" in channels["C4"]["status_description"]
    assert {c["status"] for name, c in channels.items() if name != "C4"} == {"good"}
    raw = __import__("mne_bids").read_raw_bids(exported.run.bids_path, verbose="error")
    assert raw.info["bads"] == ["C4"]
    rows = read_tsv(exported.run.sidecar("events", ".tsv"))
    assert [r["channel"] for r in rows if r["kind"] == "bad_channel"] == ["C4"]
    sidecar = json.loads(exported.run.sidecar("eeg", ".json").read_text())
    assert (sidecar["PowerLineFrequency"], sidecar["EEGReference"]) == (60.0, "Cz")  # the user's
    assert "replay of" in sidecar["ManufacturersModelName"]
    assert errors_of(validate(root)) == []


# -- bad input -------------------------------------------------------------------------------
def one_line_error(argv, capsys) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("dd-live: error:"), (code, err)
    return err[0]


def test_bad_input_is_one_line_and_nothing_recorded_is_lost(calibration, tmp_path, capsys):
    folder, root = calibration
    assert "is not a dd-live session folder" in one_line_error(
        ["export-bids", str(tmp_path), "--root", str(tmp_path / "b"), "--subject", "01"], capsys)
    (tmp_path / "notes.txt").write_text("mine")
    message = one_line_error(["export-bids", str(folder), "--root", str(tmp_path),
                              "--subject", "01"], capsys)
    assert "is no BIDS data set" in message and "new or empty folder" in message
    assert (tmp_path / "notes.txt").read_text() == "mine"
    assert "no BIDS label" in one_line_error(
        ["export-bids", str(folder), "--root", str(tmp_path / "b"), "--subject", "s_1"], capsys)

    # the same session again: refused, the data set untouched; --overwrite writes the same run
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    message = one_line_error(["export-bids", str(folder), "--root", str(copy), "--subject", "01",
                              "--session", "01"], capsys)
    assert "already in" in message and "--overwrite" in message
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert cli.main(["export-bids", str(folder), "--root", str(copy), "--subject", "01",
                     "--session", "01", "--overwrite"]) == 0
    assert "written again" in capsys.readouterr().out
    assert [r.run for r in find_bids_runs(f"bids:{copy}")] == ["1"]
    # another session of the same subject and task: the next run, the first one kept
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    session_json = json.loads((other / "session.json").read_text())
    session_json["created"] = "2030-01-01T00:00:00"
    (other / "session.json").write_text(json.dumps(session_json))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    message = one_line_error(["export-bids", str(other), str(folder), "--root", str(copy),
                              "--subject", "01", "--session", "01"], capsys)
    assert "already in" in message  # checked before anything is written: other is not in yet
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
    assert cli.main(["export-bids", str(other), "--root", str(copy), "--subject", "01",
                     "--session", "01"]) == 0
    assert "[1/1]" in capsys.readouterr().out
    assert [r.run for r in find_bids_runs(f"bids:{copy}")] == ["1", "2"]
    assert errors_of(validate(copy)) == []

    # bids: specs that select nothing, or more than one recording where one is needed
    message = one_line_error(["replay", f"bids:{copy}?subject=07", "--headless"], capsys)
    assert "no EEG recording matches" in message and "subject=01" in message
    message = one_line_error(["replay", f"bids:{copy}", "--headless"], capsys)
    assert "selects 2 recordings" in message and "run=" in message
    message = one_line_error(["replay", f"bids:{copy}?subjet=01", "--headless"], capsys)
    assert "unknown parameter 'subjet'" in message
    message = one_line_error(["replay", f"bids:{tmp_path / 'none'}", "--headless"], capsys)
    assert "no BIDS data set" in message
    with pytest.raises(ConfigError, match="no BIDS data set"):
        CalibrationPairs(f"bids:{folder}", "train", n_times=128, image_size=16)


def test_a_run_without_images_is_no_calibration_data(tmp_path):
    data = synthetic_eeg(None, len(NAMES), SFREQ, int(3 * SFREQ), seed=1)
    path = write_fif(tmp_path / "plain_raw.fif", data)
    assert cli.main(["record", "--source", f"file:{path}?speed=0", "--duration", "30",
                     "--out", str(tmp_path / "runs")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    (exported,) = export_bids([folder], tmp_path / "bids", "04")
    assert exported.run.task == "recording" and exported.n_stimuli == 0
    with pytest.raises(ConfigError, match="shows images"):
        CalibrationPairs(f"bids:{tmp_path / 'bids'}", "train", n_times=128, image_size=16)
    np.testing.assert_array_equal(read_bids(str(exported.run)).data, read_recording(folder).data)
    assert mne.io.read_raw_brainvision(exported.run.path, verbose="error").n_times == data.shape[1]


def test_the_board_a_session_read_is_named_in_the_sidecar(tmp_path):
    """BrainFlow's real synthetic board (-1), recorded for a second as a user records."""
    assert cli.main(["record", "--source", "brainflow:-1", "--duration", "1",
                     "--out", str(tmp_path / "runs"), "--name", "board"]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    (exported,) = export_bids([folder], tmp_path / "bids", "05")
    sidecar = json.loads(exported.run.sidecar("eeg", ".json").read_text())
    assert sidecar["Manufacturer"] == "BrainFlow"
    assert sidecar["ManufacturersModelName"] == "SYNTHETIC_BOARD (BrainFlow board)"
    assert exported.run.task == "board"  # the session's name
    np.testing.assert_array_equal(read_bids(str(exported.run)).data, read_recording(folder).data)
