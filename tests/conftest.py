"""Test-wide settings. Set before anything imports pylsl or Qt.

- LSL discovery stays on the loopback interface: liblsl reads ``LSLAPICFG`` when pylsl is
  imported.
- Qt runs offscreen, so the window tests need no display.
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
