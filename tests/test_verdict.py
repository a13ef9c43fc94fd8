"""The demo's live verdict: the shipped state classifier judges images against the simulated
thought of their window (dd_live.verdict), shown under the image in the window (offscreen)."""

import numpy as np
import pytest

from dd_live.assets import demo_model_dir
from dd_live.session import GeneratedImage
from dd_live.stream import StreamEvent
from dd_live.verdict import ThoughtJudge
from training.demo.world import STATE_NAMES, DemoWorld

SFREQ = 250.0


def _marker(sample, description):
    return StreamEvent("marker", sample, sample / SFREQ, description)


def _result(index, start, state):
    """A result whose image is a freshly drawn picture of ``state`` (what a perfect model
    would make), for the window ``[start, start + 110)``."""
    image = DemoWorld().draw(STATE_NAMES.index(state), np.random.default_rng([7, index]))
    return GeneratedImage(index=index, images=[image], window_start=start,
                          window_stop=start + 110, t_first=0.0, t_last=0.44,
                          trigger="latest", seed=start, timings={})


@pytest.fixture(scope="module")
def judge():
    judge = ThoughtJudge.from_model_folder(demo_model_dir(), SFREQ)
    assert judge is not None  # the demo model carries its classifier and legend
    return judge


def test_the_judge_names_the_intended_thought_and_keeps_a_running_match_rate(judge):
    judge.on_event(_marker(1000, "state:visual"))
    assert judge.intended(900, 1010) is None  # the thought changed inside the window
    assert judge.intended(1010, 1120) is None  # less than the settling time after it
    assert judge.intended(1050, 1160) == "visual"
    assert judge.judge(_result(0, 950, "visual")) is None  # not judged: two thoughts
    first = judge.judge(_result(1, 1100, "visual"))
    assert (first.intended, first.decoded, first.match, first.match_rate) == \
        ("visual", "visual", True, 1.0)
    second = judge.judge(_result(2, 1200, "calm"))  # the image shows another thought
    assert (second.decoded, second.match, second.match_rate, second.n_judged) == \
        ("calm", False, 0.5, 2)
    assert "intended visual ≠ decoded calm" in str(second)
    judge.on_event(_marker(2000, "state:none"))
    assert judge.intended(2100, 2210) is None  # no thought: nothing to judge
    assert "calm → red circle" in judge.legend_lines()


def test_the_window_shows_the_legend_and_the_verdict(judge):
    from PySide6 import QtWidgets

    from dd_live.gui.verdict import VerdictPanel

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    panel = VerdictPanel()
    panel.attach(judge)
    panel.show()
    panel.on_event(_marker(5000, "state:motor"))
    panel.on_image(_result(3, 5100, "motor"))
    app.processEvents()
    assert panel.isVisible()
    assert "intended motor = decoded motor" in panel.line.text()
    assert "motor → yellow cross" in panel.legend.text()
    panel.attach(None)  # a model without a classifier: no panel
    assert not panel.isVisible()
    panel.close()
