"""Test-wide settings. Set before anything imports pylsl or Qt.

- LSL discovery stays on the loopback interface: liblsl reads ``LSLAPICFG`` when pylsl is
  imported.
- Qt runs offscreen, so the window tests need no display.
- Tests write only under their ``tmp_path``: at the end of the run, a file created or changed in
  the folders programs write to by default (``out/``, ``runs/``, ``build/`` of the checkout)
  fails the run.
"""

import os
from pathlib import Path

os.environ["LSLAPICFG"] = str(Path(__file__).with_name("lsl_api.cfg"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Nothing in the tests may reach a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import uuid  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
#: where dd-live and tools write when not told otherwise (record root, screenshots, builds)
DEFAULT_OUTPUT_FOLDERS = ("out", "runs", "build")
_BEFORE = pytest.StashKey[dict]()


def _output_files() -> dict[Path, int]:
    files = {}
    for name in DEFAULT_OUTPUT_FOLDERS:
        for path in (REPO / name).rglob("*"):
            if path.is_file():
                files[path] = path.stat().st_mtime_ns
    return files


def pytest_sessionstart(session):
    session.config.stash[_BEFORE] = _output_files()


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    written = sorted(str(p.relative_to(REPO)) for p, mtime in _output_files().items()
                     if before.get(p) != mtime)
    if written:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()
            reporter.write_line(f"tests wrote into the checkout instead of tmp_path: {', '.join(written[:10])}",
                                red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def stream_name() -> str:
    """A stream name (and source id) no other test uses, so LSL resolution never crosses tests."""
    return f"ddlive-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def one_torch_thread():
    """Training-sized tests pin torch to one intra-op thread: on a 2-core machine that other
    work also uses, two threads oversubscribe it and run up to 20x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class ManualClock:
    """A monotonic clock the test moves by hand; ``sleep(dt)`` moves it by ``dt`` at once.

    Sources and threads that pace themselves take ``clock=`` and ``sleep=``; with this one a
    test checks pacing exactly, without waiting and without timing anything.
    """

    def __init__(self, now: float = 64.0) -> None:
        self.now = now  # a power of two: steps like 1/64 s stay exact in binary
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.0)


@pytest.fixture
def manual_clock() -> ManualClock:
    return ManualClock()
