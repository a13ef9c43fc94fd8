"""``run_app``: the QApplication around a :class:`MainWindow`, with Ctrl+C and ``--duration``."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from dd_live.config import AppConfig
from dd_live.gui.main_window import MainWindow, SessionFactory

logger = logging.getLogger(__name__)

SIGNAL_TICK_MS = 200  # Python runs its signal handlers only between Qt events


def run_app(config: AppConfig, duration: float | None = None, screenshot: str | Path | None = None,
            *, session_factory: SessionFactory | None = None,
            settings: QtCore.QSettings | None = None, autostart: bool = True) -> int:
    """Show the window, start the session, run the event loop; returns the exit code.

    Args:
        config: the settings of the run.
        duration: close cleanly (ordered shutdown) this many seconds after the session started
            (the first samples; loading the model does not count); None runs until the window
            is closed or Ctrl+C. With a duration, a failed start closes the window (exit 1)
            instead of showing a dialog.
        screenshot: with ``duration``, save a PNG of the window just before closing.
        session_factory, settings: as for :class:`MainWindow`.
        autostart: start the session at once (the window's Start button otherwise).
    """
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setOrganizationName("dd-live")
    app.setApplicationName("dd-live")
    window = MainWindow(config, session_factory=session_factory, settings=settings,
                        dialogs=duration is None)

    def close_on_signal(signum, _frame) -> None:
        logger.info("signal %d: closing the window (ordered shutdown)", signum)
        window.close()

    previous = signal.signal(signal.SIGINT, close_on_signal)
    tick = QtCore.QTimer()
    tick.timeout.connect(lambda: None)  # lets the interpreter see SIGINT
    tick.start(SIGNAL_TICK_MS)

    def finish() -> None:
        if screenshot is not None:
            window.save_screenshot(screenshot)
            logger.info("screenshot saved to %s", screenshot)
        window.close()

    if duration is not None:
        timer = QtCore.QTimer(window)
        timer.setSingleShot(True)
        timer.timeout.connect(finish)
        window.running.connect(lambda: timer.start(int(duration * 1000)))
        window.start_failed.connect(lambda _reason: QtCore.QTimer.singleShot(0, finish))
    window.show()
    if autostart:
        window.start_session()
    loop = QtCore.QEventLoop()
    window.closed.connect(loop.quit)
    try:
        loop.exec()
    finally:
        tick.stop()
        signal.signal(signal.SIGINT, previous)
    if window.start_error is not None:
        sys.stderr.write(f"dd-live: {window.start_error}\n")
        return 1
    return 0
