"""The full-screen presentation window of ``dd-live calibrate``.

:class:`PresenterWindow` shows one image at a time on a black screen, centred, for the
schedule of a :class:`~dd_live.calibration.CalibrationRun`. Each change of the screen is
painted synchronously (``repaint()``: paint into the backing store and flush it to the window
system), and the onset is stamped on the stream's clock as soon as that flush returns: the
frame flip as far as Qt can see it. ``paint_done`` (the end of the paint, same clock) and the
scheduled time are kept per onset, so the stamp error and late frames can be measured
(``benchmarks/calibration.py``).

Extras: breaks with a progress bar (space continues early), an optional photodiode patch
(a white square in the bottom-left corner while an image is on, for a light sensor), an optional
attention task (a target image: the viewer presses space; hits are recorded as events). Esc or
closing the window aborts; everything recorded so far stays valid.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from PySide6 import QtCore, QtGui, QtWidgets

from dd_live.calibration import CalibrationRun, Trial

logger = logging.getLogger(__name__)

TICK_MS = 1  # the schedule is checked this often (a precise timer)
PHOTODIODE_SIZE = 60  # px of the light-sensor patch
PROGRESS_HEIGHT = 24  # px


@dataclass
class FrameLog:
    """Per onset: when it was due, when its paint ended, and the stamp (stream clock, s)."""

    scheduled: list[float] = field(default_factory=list)
    painted: list[float] = field(default_factory=list)
    stamped: list[float] = field(default_factory=list)
    frame_period: float = 1 / 60


class PresenterWindow(QtWidgets.QWidget):
    """A black full-screen window that shows the trials of a run (see the module docstring).

    Args:
        run: a started :class:`CalibrationRun` (real time).
        trials: the schedule.
        max_trials: stop (as Esc would) after this many.
        photodiode: draw the light-sensor patch.
        attention_target: an image id; each time it is shown the viewer should press space.
    """

    finished = QtCore.Signal()

    def __init__(self, run: CalibrationRun, trials: Sequence[Trial], *, max_trials: int | None = None,
                 photodiode: bool = False, attention_target: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle("dd-live calibration")
        self.setCursor(QtCore.Qt.CursorShape.BlankCursor)
        self.setAutoFillBackground(False)
        self.run, self.trials = run, list(trials)
        self.max_trials = max_trials if max_trials is not None else len(self.trials)
        self.photodiode, self.attention_target = photodiode, attention_target
        self.log = FrameLog()
        self._pixmaps: dict[str, QtGui.QPixmap] = {}
        self._image: QtGui.QPixmap | None = None
        self._break_left = 0.0
        self._index = 0  # next trial
        self._phase = "lead_in"  # lead_in, on, blank, break, done
        self._due = time.perf_counter() + run.config.lead_in
        self._done = False
        self.n_hits = 0
        self._timer = QtCore.QTimer(self)
        self._timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._poll = QtCore.QTimer(self)
        self._poll.timeout.connect(run.poll)
        screen = self.screen()
        rate = screen.refreshRate() if screen is not None else 0
        self.log.frame_period = 1 / rate if rate and rate > 1 else 1 / 60

    def start(self) -> None:
        self._timer.start(TICK_MS)
        self._poll.start(50)

    # -- the schedule -----------------------------------------------------------------------
    def _tick(self) -> None:
        if self._done or time.perf_counter() < self._due:
            return
        late_from = self._due
        if self._phase in ("lead_in", "blank", "break"):
            if self._index >= min(self.max_trials, len(self.trials)):
                self.run.aborted = self._index < len(self.trials)
                self._finish()
                return
            trial = self.trials[self._index]
            if trial.pause_before and self._phase != "break":
                self._phase, self._break_left = "break", trial.pause_before
                self._due = time.perf_counter() + trial.pause_before
                self.repaint()
                return
            self._image = self._pixmap(trial)
            self._phase = "on"
            onset = self._show(late_from)
            self.run.flip(trial, onset_time=onset)
            self._due = late_from + trial.on
        elif self._phase == "on":
            trial = self.trials[self._index]
            self._image = None
            self._phase = "blank"
            self.repaint()
            self._index += 1
            self._due = late_from + trial.blank

    def _show(self, scheduled: float) -> float:
        """Paint now; returns the onset on the stream clock (stamped when the flush returned)."""
        offset = self.run.clock() - time.perf_counter()  # perf_counter -> stream clock
        self.repaint()  # synchronous: paint + flush to the window system
        stamp = self.run.clock()
        self.log.scheduled.append(scheduled + offset)
        self.log.painted.append(self._painted)
        self.log.stamped.append(stamp)
        return stamp

    def _pixmap(self, trial: Trial) -> QtGui.QPixmap:
        key = trial.stimulus.image_id
        if key not in self._pixmaps:
            self._pixmaps[key] = QtGui.QPixmap(str(trial.stimulus.path))
        return self._pixmaps[key]

    # -- painting ----------------------------------------------------------------------------
    def paintEvent(self, event: QtGui.QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        painter = QtGui.QPainter(self)
        rect = self.rect()
        painter.fillRect(rect, QtCore.Qt.GlobalColor.black)
        if self._phase == "on" and self._image is not None and not self._image.isNull():
            side = int(min(rect.width(), rect.height()) * 0.6)
            scaled = self._image.scaled(side, side, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                                        QtCore.Qt.TransformationMode.SmoothTransformation)
            painter.drawPixmap(rect.center().x() - scaled.width() // 2,
                               rect.center().y() - scaled.height() // 2, scaled)
            if self.photodiode:
                painter.fillRect(0, rect.height() - PHOTODIODE_SIZE, PHOTODIODE_SIZE,
                                 PHOTODIODE_SIZE, QtCore.Qt.GlobalColor.white)
        elif self._phase == "break":
            done = self._index / max(1, min(self.max_trials, len(self.trials)))
            bar = QtCore.QRect(rect.width() // 4, rect.height() // 2, rect.width() // 2, PROGRESS_HEIGHT)
            painter.setPen(QtCore.Qt.GlobalColor.gray)
            painter.drawRect(bar)
            painter.fillRect(bar.adjusted(1, 1, -int(bar.width() * (1 - done)), 0),
                             QtCore.Qt.GlobalColor.gray)
            painter.drawText(bar.adjusted(0, -3 * PROGRESS_HEIGHT, 0, -PROGRESS_HEIGHT),
                             QtCore.Qt.AlignmentFlag.AlignCenter,
                             f"break: {done:.0%} done (space continues)")
        painter.end()
        self._painted = self.run.clock()

    # -- keys and closing --------------------------------------------------------------------
    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802
        key = event.key()
        if key == QtCore.Qt.Key.Key_Escape:
            logger.warning("calibration aborted (Esc): keeping everything recorded so far")
            self.run.aborted = True
            self._finish()
        elif key == QtCore.Qt.Key.Key_Space:
            if self._phase == "break":
                self._due = time.perf_counter()
            elif self.attention_target is not None and self.run.session.recorder is not None:
                self.n_hits += 1
                self.run.session.recorder.add_event({"type": "response", "key": "space",
                                                     "timestamp": self.run.clock()})
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802
        if not self._done:
            self.run.aborted = True
            self._finish(close=False)
        super().closeEvent(event)

    def _finish(self, close: bool = True) -> None:
        if self._done:
            return
        self._done = True
        self._timer.stop()
        self._poll.stop()
        self.finished.emit()
        if close:
            self.close()

    _painted = 0.0


def present_fullscreen(run: CalibrationRun, trials: Sequence[Trial], *, screen: int | None = None,
                       max_trials: int | None = None, photodiode: bool = False,
                       attention_target: str | None = None, fullscreen: bool = True) -> FrameLog:
    """Show ``trials`` full screen (on screen number ``screen``) until done, Esc, close or
    Ctrl+C; returns the frame log. The run must be started (real time)."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    window = PresenterWindow(run, trials, max_trials=max_trials, photodiode=photodiode,
                             attention_target=attention_target)
    screens = app.screens()
    if screen is not None:
        if not 0 <= screen < len(screens):
            from dd_live.errors import ConfigError

            raise ConfigError(f"--screen {screen}: there are {len(screens)} screen(s), 0..{len(screens) - 1}")
        window.setGeometry(screens[screen].geometry())
    loop = QtCore.QEventLoop()
    window.finished.connect(loop.quit)

    def on_signal(signum, _frame) -> None:
        logger.warning("signal %d: calibration aborted, keeping everything recorded so far", signum)
        run.aborted = True
        window.close()

    previous = signal.signal(signal.SIGINT, on_signal)
    try:
        window.showFullScreen() if fullscreen else window.show()
        window.start()
        loop.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        window.close()
    return window.log
