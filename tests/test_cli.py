"""The command line: sys-info, devices, errors as one line, exit codes."""

import subprocess
import sys

from dd_live.cli import main


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
