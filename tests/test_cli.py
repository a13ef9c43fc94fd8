"""The command line: sys-info, devices, errors as one line, exit codes."""

import subprocess
import sys

import mne
import numpy as np

from dd_live.cli import main
from dd_live.sources import LSLSource


def test_sys_info_names_every_component(capsys):
    assert main(["sys-info"]) == 0
    out = capsys.readouterr().out
    for name in ("python", "torch", "diffusers", "PySide6-Essentials", "pylsl", "liblsl",
                 "brainflow", "mne", "no CUDA device"):
        assert name in out


def test_bad_source_spec_is_one_line_on_stderr_and_nonzero():
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "run", "--headless", "--duration", "1",
         "--source", "bogus:thing"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("dd-live: error:")
    assert "bogus:thing" in lines[0]


def test_bad_config_file_exit_code(tmp_path, capsys):
    path = tmp_path / "c.toml"
    path.write_text("[window]\nmode = 'every'\n")
    assert main(["run", "--headless", "--config", str(path)]) == 2
    assert "mode must be one of" in capsys.readouterr().err


def test_stream_a_file_as_lsl_and_see_it_in_devices(tmp_path, stream_name):
    """`dd-live stream FILE` publishes a recording; `dd-live devices` and LSLSource find it."""
    info = mne.create_info(["Fz", "Cz", "Pz"], 250.0, "eeg")
    data = np.random.default_rng(0).normal(0, 10e-6, (3, 2500))
    path = tmp_path / "rec_raw.fif"
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    player = subprocess.Popen(
        [sys.executable, "-m", "dd_live", "stream", str(path), "--name", stream_name,
         "--duration", "20"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        source = LSLSource(stream_name, timeout=15.0).start()
        assert source.info.ch_names == ("Fz", "Cz", "Pz")
        devices = subprocess.run([sys.executable, "-m", "dd_live", "devices"],
                                 capture_output=True, text=True, timeout=60)
        assert devices.returncode == 0
        assert f"lsl:{stream_name}" in devices.stdout
        assert "brainflow:-1" in devices.stdout  # the synthetic board is always listed
        received = 0
        for _ in range(500):
            chunk, _ = source.read()
            received += chunk.shape[1]
            if received >= 100:
                break
        source.stop()
        assert received >= 100
    finally:
        player.terminate()
        player.wait(10)


def test_record_then_replay_a_session_folder(tmp_path, capsys):
    """`dd-live record` writes a session folder; `dd-live replay` runs it through the models with
    the settings it was recorded with, without recording it again."""
    assert main(["record", "--source", "synthetic:focus", "--duration", "1.5",
                 "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", verbose="error")
    assert raw.n_times > 250
    assert main(["replay", str(folder), "--headless", "--speed", "0", "--model", "tiny",
                 "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert f"{raw.n_times} samples" in out
    assert list(tmp_path.iterdir()) == [folder]  # not recorded a second time
