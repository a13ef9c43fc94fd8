"""The training commands as a user runs them (``python -m training.<stage>`` in a subprocess, from
the repository root): a bad input ends with its one-line message and status 1, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("stage", "argv", "message"), [
    ("finetune", ["--preset", "tiny", "--data", "{missing}"], "error: --data {missing} does not exist"),
    ("pretrain", ["--preset", "tiny", "--data", "{missing}"], "error: {missing} does not exist"),
    ("evaluate", ["--model", "{missing}"], "error: --model {missing} is not a folder"),
    ("decoder", ["--data", "{missing}"], "error: --data {missing} does not exist"),
])
def test_a_bad_input_is_one_line_not_a_traceback(tmp_path, stage, argv, message):
    missing = str(tmp_path / "missing")
    argv = [a.format(missing=missing) for a in argv]
    done = subprocess.run([sys.executable, "-m", f"training.{stage}", *argv,
                           "--output-dir", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(message.format(missing=missing))
