"""The demo's legend (thought -> picture) and live verdict ("intended / decoded", match rate).

A thin view of :class:`dd_live.verdict.ThoughtJudge`, which does the judging (no Qt there).
Hidden unless the model folder carries a state classifier (the demo model does).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6 import QtWidgets

logger = logging.getLogger(__name__)

MATCH_COLOUR, MISS_COLOUR = "#66dd66", "#ff7766"


class VerdictPanel(QtWidgets.QWidget):
    """Legend and verdict lines under the image. Feed it :meth:`on_event` and :meth:`on_image`
    on the GUI thread after :meth:`attach`."""

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.judge: Any = None
        self.legend = QtWidgets.QLabel()
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #aaaaaa;")
        self.line = QtWidgets.QLabel("waiting for an image of one thought…")
        self.line.setWordWrap(True)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line)
        layout.addWidget(self.legend)
        self.hide()

    def attach(self, judge: Any) -> None:
        """Show the verdicts of ``judge`` (a ThoughtJudge), or hide the panel for None."""
        self.judge = judge
        if judge is None:
            self.hide()
            return
        self.legend.setText("legend: " + " · ".join(judge.legend_lines()))
        self.line.setText("waiting for an image of one thought…")
        self.line.setStyleSheet("")
        self.show()

    def on_event(self, event: Any) -> None:
        if self.judge is not None:
            self.judge.on_event(event)

    def on_image(self, result: Any) -> None:
        if self.judge is None:
            return
        try:
            verdict = self.judge.judge(result)
        except Exception:  # a verdict is a nicety: never let it break the window
            logger.exception("the demo's verdict failed")
            return
        if verdict is None:
            return
        self.line.setText(str(verdict))
        colour = MATCH_COLOUR if verdict.match else MISS_COLOUR
        self.line.setStyleSheet(f"color: {colour}; font-weight: bold;")
