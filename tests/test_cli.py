"""The command line: sys-info, devices, errors as one line, exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import mne
import numpy as np

from dd_live import cli
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


SMALL_SYNTHETIC = "synthetic?n_channels=4&sfreq=250"


def test_a_display_that_cannot_open_runs_headless_with_the_reason():
    """DISPLAY points at no X server and Qt is left to pick its xcb plugin: Qt would abort the
    process (SIGABRT); dd-live checks first, says why and how to fix it, and runs headless."""
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env["DISPLAY"] = ":99"
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "run", "--source", SMALL_SYNTHETIC, "--model", "none",
         "--duration", "1"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    reason = [ln for ln in proc.stderr.splitlines() if "the window cannot open" in ln]
    assert len(reason) == 1, proc.stderr
    assert "running headless" in reason[0]
    assert "':99'" in reason[0] or "sudo apt-get install" in reason[0], reason[0]
    assert "samples" in proc.stdout  # the headless summary line


def test_window_problem_names_the_missing_libraries_and_the_install_commands(monkeypatch):
    """When Qt fails and ldd finds libraries missing, the line says which, and how to install
    them on Debian/Ubuntu and Fedora."""
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(cli, "_missing_qt_libraries",
                        lambda: ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"])
    problem = cli.window_problem()
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in problem
    assert "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1" in problem
    assert "sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms" in problem
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert cli.window_problem() is None


def test_record_once_does_not_record_every_later_run(tmp_path, monkeypatch):
    """Settings obey the command line: a window run with --record, then one without, leave
    exactly one session folder (the window remembered the record box before)."""
    from PySide6 import QtCore, QtWidgets

    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    home = tmp_path / "config"
    for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
        QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, str(home))
    try:
        runs = tmp_path / "runs"
        common = ["run", "--source", SMALL_SYNTHETIC, "--model", "none", "--duration", "1"]
        assert main([*common, "--record", str(runs)]) == 0
        assert len(list(runs.iterdir())) == 1
        assert list(home.rglob("*.conf")) or list(home.rglob("*.ini"))  # the window remembered
        assert main(common) == 0
        assert len(list(runs.iterdir())) == 1
    finally:
        default = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
            QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, default)


def test_settings_precedence_command_line_config_file_model_folder(tmp_path):
    """command line > --config file > the model folder's dd_live.json > defaults, key by key."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "dd_live.json").write_text(json.dumps(
        {"description": "x", "generator": {"steps": 6, "seed": 5, "scheduler": "ddim"},
         "window": {"hop": 0.25}}))
    config_file = tmp_path / "c.toml"
    config_file.write_text("[generator]\nsteps = 4\nseed = 20\n[window]\nlength = 0.5\n")
    args = cli.build_parser().parse_args(
        ["run", "--model", str(model), "--config", str(config_file), "--seed", "9"])
    config = cli._config_from_args(args)
    assert config.generator.seed == 9  # command line
    assert config.generator.steps == 4  # config file over the model folder
    assert config.generator.scheduler == "ddim"  # model folder over the default
    assert (config.window.hop, config.window.length) == (0.25, 0.5)
    assert config.generator.guidance_scale == 1.0  # default


def test_record_without_a_folder_records_under_the_configured_root(tmp_path):
    """``--record`` alone records under ``[record] root`` (runs/ by default); ``--record DIR``
    under DIR, over the config file."""
    parse = cli.build_parser().parse_args
    config = cli._config_from_args(parse(["run", "--model", "tiny", "--record"]))
    assert config.record.enabled and config.record.root == "runs"
    config_file = tmp_path / "c.toml"
    config_file.write_text('[record]\nroot = "elsewhere"\n')
    config = cli._config_from_args(parse(["run", "--config", str(config_file), "--record"]))
    assert config.record.enabled and config.record.root == "elsewhere"
    config = cli._config_from_args(parse(["run", "--config", str(config_file), "--record",
                                          str(tmp_path / "here")]))
    assert config.record.root == str(tmp_path / "here")
    assert not cli._config_from_args(parse(["run", "--model", "tiny"])).record.enabled


def test_default_model_demo_for_synthetic_none_for_real_sources(capsys):
    parse = cli.build_parser().parse_args
    assert Path(cli._config_from_args(parse(["run"])).generator.model).name == "demo"
    assert cli._config_from_args(parse(["run", "--source", "lsl:EEG"])).generator.model == "none"
    assert cli._config_from_args(parse(["run", "--model", "tiny"])).generator.model == "tiny"


def test_an_unknown_source_lists_the_accepted_forms():
    proc = subprocess.run(
        [sys.executable, "-m", "dd_live", "run", "--headless", "--duration", "1", "--model",
         "none", "--source", "foo"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    err = proc.stderr
    assert err.startswith("dd-live: error:") and len(err.strip().splitlines()) == 1, err
    for form in ("synthetic", "brainflow:BOARD", "lsl:NAME", "file:PATH"):
        assert form in err


def test_devices_lists_board_types_only_when_asked(capsys):
    """`dd-live devices` shows what is there (LSL, USB serial ports); the 67 board types only
    with --all-boards. A USB id of a known dongle maps to the boards that use it (no dongle is
    plugged in here: the matching is checked on the OpenBCI dongle's id)."""
    from dd_live.sources.discovery import format_serial_port, match_dongle

    assert main(["devices", "--timeout", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "USB serial ports now" in out and "brainflow:-1" in out
    assert "CYTON_DAISY_WIFI_BOARD" not in out and "--all-boards" in out
    assert main(["devices", "--timeout", "0.2", "--all-boards"]) == 0
    assert "CYTON_DAISY_WIFI_BOARD" in capsys.readouterr().out
    dongle, boards = match_dongle(0x0403, 0x6015)
    assert [b["name"] for b in boards] == ["CYTON_BOARD", "CYTON_DAISY_BOARD"]
    line = format_serial_port({"device": "/dev/ttyUSB0", "description": "FT231X USB UART",
                               "vid": 0x0403, "pid": 0x6015, "dongle": dongle, "boards": boards})
    assert "brainflow:cyton?serial_port=/dev/ttyUSB0" in line and "0403:6015" in line
    assert match_dongle(0x1234, 0x5678) == ("", [])


def test_an_lsl_streams_own_marker_stream_is_found_and_named(stream_name, capsys):
    """A marker stream named NAME-markers next to the EEG stream NAME is read without
    ?markers=: `dd-live run --headless` names it at start; its markers arrive as events."""
    import pylsl

    from dd_live.sources import open_source

    eeg = pylsl.StreamOutlet(pylsl.StreamInfo(stream_name, "EEG", 2, 250, "float32", stream_name))
    marks = pylsl.StreamOutlet(pylsl.StreamInfo(f"{stream_name}-markers", "Markers", 1, 0,
                                                "string", f"{stream_name}-m"))
    other = pylsl.StreamOutlet(pylsl.StreamInfo("unrelated-markers", "Markers", 1, 0, "string",
                                                "someone-else"))
    source = open_source(f"lsl:{stream_name}?timeout=10").start()
    try:
        assert source.marker_stream_name == f"{stream_name}-markers"
        events = []
        for _ in range(300):
            marks.push_sample(["stimulus"])
            eeg.push_chunk(np.zeros((10, 2), np.float32).tolist())
            source.read()
            events += source.pop_events()
            if any(e.kind == "marker" for e in events):
                break
        assert [e.description for e in events if e.kind == "marker"][0] == "stimulus"
    finally:
        source.stop()
    assert open_source(f"lsl:{stream_name}?timeout=10&markers=none").start().marker_stream_name \
        is None
    assert main(["run", "--headless", "--source", f"lsl:{stream_name}?timeout=10",
                 "--duration", "0.5"]) == 0
    out = capsys.readouterr()
    assert f"markers: read from the LSL stream '{stream_name}-markers'" in out.out
    assert "no model chosen" in out.err  # a real source without --model: a viewer
    del eeg, marks, other
