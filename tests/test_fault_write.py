"""Fault suite: write failures are one clear stop, never a flood, and the files stay consistent.

The failure is real: the writing process runs with ``RLIMIT_FSIZE`` (and ``SIGXFSZ`` ignored),
so the kernel refuses writes past the limit with ``EFBIG`` exactly as a full disk refuses them
with ``ENOSPC``. Each case runs in a subprocess so the limit never touches the test runner.
"""

import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import mne
import numpy as np
from PIL import Image

from dd_live.recording import read_events, read_timestamps

N_EEG = 64  # the synthetic source's EEG channels; a COUNTER channel comes after them
FILE_LIMIT = 200_000  # bytes: eeg.eeg reaches it after ~770 samples of 65 channels


def _limit_file_size(limit):
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def _env():
    return {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


def _check_consistent(folder: Path, n_channels: int) -> int:
    """eeg.eeg holds exactly one frame per timestamp and the counter runs 0..n-1 without a
    hole; returns the number of samples saved."""
    timestamps = read_timestamps(folder)
    n_frames, rest = divmod((folder / "eeg.eeg").stat().st_size, 4 * n_channels)
    assert rest == 0, "eeg.eeg ends in a partial frame"
    assert n_frames == timestamps.size
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(raw.get_data(picks="COUNTER")[0], np.arange(n_frames))
    assert np.all(np.diff(timestamps) > 0)
    read_events(folder)  # readable line by line
    return n_frames


def test_dd_live_record_stops_with_one_message_and_a_nonzero_exit(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "record", "--source",
         f"synthetic?n_channels={N_EEG}&sfreq=1000&counter=1", "--duration", "20",
         "--out", str(tmp_path), "--name", "full"],
        capture_output=True, text=True, timeout=120, env=_env(),
        preexec_fn=_limit_file_size(FILE_LIMIT))
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    messages = [line for line in proc.stderr.splitlines() if "recording stopped" in line]
    assert len(messages) == 1, proc.stderr  # one message, not one per chunk
    (folder,) = tmp_path.iterdir()
    assert f"writing {folder / 'eeg.eeg'} failed (File too large)" in messages[0]
    assert " free there" in messages[0]
    assert "recorded" not in proc.stdout  # no success line
    n_saved = _check_consistent(folder, N_EEG + 1)
    assert n_saved * (N_EEG + 1) * 4 > FILE_LIMIT - 20 * (N_EEG + 1) * 4  # filled to the limit


SESSION_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    from dd_live.config import AppConfig, GeneratorConfig, RecordConfig
    from dd_live.decoding import EEGDecoder
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    root, limit = sys.argv[1], int(sys.argv[2])
    config = AppConfig(generator=GeneratorConfig(model="tiny", steps=2),
                       record=RecordConfig(enabled=True, root=root, name="s"))
    decoder = EEGDecoder.from_config(config.generator)
    session = LiveSession(config, source=SyntheticSource(2, 250.0, counter=True, realtime=False),
                          decoder=decoder, threaded=False)
    states, errors = [], []
    session.callbacks.state.append(lambda part, state, msg: states.append([part, state, msg]))
    session.callbacks.error.append(lambda part, exc: errors.append([part, str(exc)]))
    session.start()
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # the disk is "full" from now on
    n_images_at_failure = None
    while session.n_images < 6:
        session.step()
        if session.recording_error and n_images_at_failure is None:
            n_images_at_failure = session.n_images
    folder = str(session.recording_path or sorted(__import__("pathlib").Path(root).iterdir())[0])
    session.stop()
    print(json.dumps({"states": states, "errors": errors, "folder": folder,
                      "n_images": session.n_images, "at_failure": n_images_at_failure,
                      "error": session.recording_error, "recorder": session.recorder is None}))
""")


def test_live_session_goes_on_without_recording_and_no_png_is_half_written(tmp_path):
    """The first image's PNG is larger than the file-size limit: its write fails. The folder
    keeps a consistent EEG file and no 0-byte or temporary PNG; the session says so once and
    goes on making images."""
    proc = subprocess.run(
        [sys.executable, "-c", SESSION_SCRIPT, str(tmp_path), "2048"],
        capture_output=True, text=True, timeout=300, env=_env(),
        preexec_fn=_limit_file_size(resource.RLIM_INFINITY))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    folder = Path(out["folder"])
    failed = [s for s in out["states"] if s[0] == "recorder"]
    assert len(failed) == 1 and failed[0][1] == "failed"
    assert failed[0][2] == out["error"]
    assert f"writing {folder / 'images' / '0000.png'} failed (File too large)" in out["error"]
    assert [e[0] for e in out["errors"]] == ["recorder"]
    assert out["n_images"] == 6 and out["at_failure"] <= 1  # images went on after the failure
    assert out["recorder"]  # the session dropped the failed recorder
    assert list((folder / "images").iterdir()) == []  # no 0-byte PNG, no temporary file
    _check_consistent(folder, 3)
    events = read_events(folder)
    assert not [e for e in events if e["type"] == "image"]  # no event for an image not saved


def test_an_image_that_fits_is_whole_and_named_once_renamed(tmp_path):
    """Saved through a temporary name: after a successful write only NNNN.png is there."""
    from dd_live.recording import SessionRecorder
    from dd_live.session import GeneratedImage
    from dd_live.sources.base import StreamInfo

    info = StreamInfo("t", 250.0, ("Cz",), ("eeg",))
    rec = SessionRecorder(tmp_path / "s", info).start(threaded=False)
    rec.add_image(GeneratedImage(0, [Image.new("RGB", (8, 8), (1, 2, 3))], 0, 10, 0.0, 0.04,
                                 "interval", 0, {}))
    rec.close()
    assert sorted(p.name for p in (rec.folder / "images").iterdir()) == ["0000.png"]
    assert Image.open(rec.folder / "images" / "0000.png").getpixel((0, 0)) == (1, 2, 3)
    assert json.loads((rec.folder / "events.jsonl").read_text())["images"] == ["images/0000.png"]
