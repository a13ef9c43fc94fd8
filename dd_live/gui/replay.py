"""The replay bar: pause, a scrub bar to seek, and the speed of a file being replayed.

It drives any source with the replay controls of
:class:`~dd_live.sources.replay.ReplaySource` (``pause``, ``resume``, ``seek(seconds)``,
``speed``, ``position``, ``duration``, ``paused``); the main window shows it only for such a
source. Every control is safe to call from the GUI thread while the source runs.
"""

from __future__ import annotations

import math

from PySide6 import QtCore, QtWidgets

SPEEDS = ("0.25", "0.5", "1", "2", "4", "8", "max")
SLIDER_STEPS_PER_SECOND = 10  # scrub bar resolution: 0.1 s


def is_replay(source) -> bool:
    """Whether ``source`` has the replay controls this bar drives."""
    return all(hasattr(source, name) for name in ("seek", "pause", "resume", "position",
                                                  "duration", "speed"))


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(max(seconds, 0.0), 60)
    return f"{int(minutes)}:{seconds:04.1f}"


class ReplayBar(QtWidgets.QWidget):
    """Play/pause, a scrub bar (drag or click to seek), the position and the speed."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.source = None
        self.pause_button = QtWidgets.QPushButton("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setToolTip("pause or resume the replay (space)")
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("drag to seek in the recording")
        self.position_label = QtWidgets.QLabel("0:00.0 / 0:00.0")
        self.speed_combo = QtWidgets.QComboBox()
        self.speed_combo.addItems(SPEEDS)
        self.speed_combo.setToolTip("replay speed (× real time; max: as fast as possible)")
        row = QtWidgets.QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        row.addWidget(QtWidgets.QLabel("replay"))
        row.addWidget(self.pause_button)
        row.addWidget(self.slider, 1)
        row.addWidget(self.position_label)
        row.addWidget(QtWidgets.QLabel("speed"))
        row.addWidget(self.speed_combo)
        self.pause_button.toggled.connect(self.set_paused)
        self.slider.sliderReleased.connect(self._seek_to_slider)
        self.slider.actionTriggered.connect(self._slider_action)
        self.speed_combo.currentTextChanged.connect(self.set_speed)
        self.hide()

    def __repr__(self) -> str:
        return f"<ReplayBar: {self.position_label.text()}>"

    def attach(self, source) -> None:
        """Drive ``source`` (shown when it is a replay, hidden otherwise; None detaches)."""
        self.source = source if source is not None and is_replay(source) else None
        self.setVisible(self.source is not None)
        if self.source is None:
            return
        self.slider.setRange(0, int(self.source.duration * SLIDER_STEPS_PER_SECOND))
        speed = self.source.speed
        text = "max" if math.isinf(speed) else f"{speed:g}"
        self.speed_combo.blockSignals(True)
        if self.speed_combo.findText(text) < 0:
            self.speed_combo.addItem(text)
        self.speed_combo.setCurrentText(text)
        self.speed_combo.blockSignals(False)
        self.pause_button.blockSignals(True)
        self.pause_button.setChecked(bool(self.source.paused))
        self.pause_button.setText("Play" if self.source.paused else "Pause")
        self.pause_button.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        """Move the scrub bar to the replay's position (unless the user is dragging it)."""
        if self.source is None:
            return
        position = self.source.position
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(int(position * SLIDER_STEPS_PER_SECOND))
            self.slider.blockSignals(False)
        self.position_label.setText(f"{_clock(position)} / {_clock(self.source.duration)}")

    def set_paused(self, paused: bool) -> None:
        if self.source is None:
            return
        if paused:
            self.source.pause()
        else:
            self.source.resume()
        self.pause_button.setText("Play" if paused else "Pause")

    def set_speed(self, text: str) -> None:
        if self.source is not None:
            self.source.speed = math.inf if text == "max" else float(text)

    def seek(self, seconds: float) -> None:
        """Continue the replay from ``seconds`` into the file."""
        if self.source is not None:
            self.source.seek(seconds)
            self.refresh()

    def _seek_to_slider(self) -> None:
        self.seek(self.slider.value() / SLIDER_STEPS_PER_SECOND)

    def _slider_action(self, action: int) -> None:
        """A click on the groove or a key (not a drag): seek where the slider goes."""
        if not self.slider.isSliderDown():
            QtCore.QTimer.singleShot(0, self._seek_to_slider)
