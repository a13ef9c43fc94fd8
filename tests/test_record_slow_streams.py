"""`dd-live record` of streams too slow for the live filter or the model: recorded exactly.

A 10 Hz stream (Nyquist 5 Hz, the band-pass's lower edge) and a file whose only numeric stream
runs at 1 Hz (beside a marker stream) are written as real XDF files, recorded by `dd-live record`
started as a user starts it, and read back from the session folder with MNE: every sample, in
order, with one line and one ``degraded`` event saying why the stream is shown raw.
"""

import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np
import pytest
from test_source_xdf import write_xdf_streams, xdf_stream

from dd_live.recording import read_events, read_timestamps

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _streams(sfreq: float, n_times: int, markers: bool) -> tuple[list, np.ndarray]:
    rng = np.random.default_rng(int(sfreq))
    values = np.vstack([rng.normal(0, 20, n_times), np.arange(n_times)]).astype(np.float32)
    timestamps = 1000.0 + np.arange(n_times) / sfreq
    streams = [xdf_stream("slow", "EEG", timestamps, values, srate=sfreq,
                          labels=("Fz", "COUNTER"))]
    if markers:
        streams.append(xdf_stream("marks", "Markers", [1001.5, 1004.5], ["a", "b"], srate=0))
    return streams, values


@pytest.mark.parametrize(("sfreq", "n_times", "markers"), [(10.0, 120, False), (1.0, 12, True)],
                         ids=["10Hz", "1Hz-beside-markers"])
def test_record_of_a_stream_the_live_filter_cannot_handle_is_sample_exact(
        tmp_path, sfreq, n_times, markers):
    path = tmp_path / f"slow{sfreq:g}.xdf"
    streams, values = _streams(sfreq, n_times, markers)
    write_xdf_streams(path, streams)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "record", "--source", f"file:{path}?speed=0",
         "--duration", "60", "--out", str(out)],
        capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "error" not in proc.stderr
    (why,) = [line for line in proc.stderr.splitlines() if "no online filter" in line]
    assert f"{sfreq:g} Hz stream" in why and "shown raw" in why
    (folder,) = out.iterdir()
    assert proc.stdout.strip() == f"recorded {n_times} samples to {folder}"
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    assert raw.info["sfreq"] == sfreq and raw.n_times == n_times
    # every channel of these files is in µV: the counter comes back as k µV, every k in order
    np.testing.assert_array_equal(np.rint(raw.get_data(picks="COUNTER")[0] * 1e6), values[1])
    np.testing.assert_allclose(raw.get_data(picks="Fz")[0] * 1e6, values[0], rtol=1e-6)
    timestamps = read_timestamps(folder)
    assert timestamps.size == n_times
    np.testing.assert_allclose(np.diff(timestamps), 1 / sfreq, rtol=1e-9)
    (degraded,) = [e for e in read_events(folder) if e["type"] == "degraded"]
    assert degraded["what"] == "filter" and degraded["description"] == why.split(": ", 1)[1]
    if markers:
        assert [e["description"] for e in read_events(folder) if e["type"] == "marker"] == \
            ["a", "b"]


def test_run_with_a_model_on_a_stream_too_slow_for_it_records_raw_and_says_why(tmp_path):
    """`dd-live run` with a model: a 10 Hz stream's 0.44 s windows hold 4 samples, too few for
    the model: no images (one line and an event say why), the signal still recorded exactly."""
    path = tmp_path / "slow10.xdf"
    streams, values = _streams(10.0, 120, markers=False)
    write_xdf_streams(path, streams)
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "run", "--headless", "--model", "tiny", "--source",
         f"file:{path}?speed=0", "--duration", "60", "--record", str(out)],
        capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr
    (why,) = [line for line in proc.stderr.splitlines() if "WARNING" in line and "no images" in line]
    assert "at 10 Hz holds 4 samples" in why
    assert "0 images" in proc.stdout.splitlines()[-2]
    (folder,) = out.iterdir()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    np.testing.assert_array_equal(np.rint(raw.get_data(picks="COUNTER")[0] * 1e6), values[1])
    degraded = {e["what"]: e for e in read_events(folder) if e["type"] == "degraded"}
    assert set(degraded) == {"filter", "images"}
    assert degraded["images"]["description"] == why.split(": ", 1)[1]
