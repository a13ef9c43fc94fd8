"""Hand a session's callbacks (run on its threads) over to the Qt main thread.

:class:`SessionBridge` lives on the GUI thread. Its slots-to-be are Qt signals emitted from
the session's threads; every connection is queued, so the connected widget code runs on
the GUI thread, later, and the session's threads never wait for the window.

:class:`TaskRunner` does the same for one slow call (starting a session that loads a
model, stopping it, discovering devices): the call runs on a Python thread and its result
or exception comes back through a queued signal.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

logger = logging.getLogger(__name__)

QUEUED = QtCore.Qt.ConnectionType.QueuedConnection


class SessionBridge(QtCore.QObject):
    """Qt signals mirroring :class:`~dd_live.session.SessionCallbacks`.

    Each signal carries one Python object: ``image`` a GeneratedImage, ``window_rejected``
    ``(window, reasons)``, ``window_dropped`` a window, ``event`` a StreamEvent, ``state``
    ``(part, state, message)``, ``error`` ``(where, exception)``.
    """

    image = QtCore.Signal(object)
    window_rejected = QtCore.Signal(object)
    window_dropped = QtCore.Signal(object)
    event = QtCore.Signal(object)
    state = QtCore.Signal(object)
    error = QtCore.Signal(object)

    def attach(self, callbacks) -> None:
        """Register on a session's :class:`SessionCallbacks` (call before ``start()``)."""
        callbacks.image.append(self.image.emit)
        callbacks.window_rejected.append(lambda window, reasons: self.window_rejected.emit(
            (window, reasons)))
        callbacks.window_dropped.append(self.window_dropped.emit)
        callbacks.event.append(self.event.emit)
        callbacks.state.append(lambda part, state, message: self.state.emit(
            (part, state, message)))
        callbacks.error.append(lambda where, exc: self.error.emit((where, exc)))

    def connect_to(self, **slots: Callable[[Any], Any]) -> None:
        """Connect signals by name to GUI-thread slots, queued."""
        for name, slot in slots.items():
            getattr(self, name).connect(slot, QUEUED)


class TaskRunner(QtCore.QObject):
    """Runs slow calls off the GUI thread and hands their outcome back to it.

    ``run(function, on_done)`` calls ``function()`` on a daemon thread; ``on_done(result,
    error)`` then runs on the GUI thread (queued), with ``error`` None on success.
    """

    _finished = QtCore.Signal(object)  # (task id, result, exception or None)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._pending: dict[int, Callable[[Any, BaseException | None], Any]] = {}
        self._next_id = 0
        self._finished.connect(self._deliver, QUEUED)

    def __repr__(self) -> str:
        return f"<TaskRunner: {len(self._pending)} running>"

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def run(self, function: Callable[[], Any],
            on_done: Callable[[Any, BaseException | None], Any],
            name: str = "dd-live-gui-task") -> threading.Thread:
        task_id = self._next_id
        self._next_id += 1
        self._pending[task_id] = on_done

        def target() -> None:
            try:
                payload = (task_id, function(), None)
            except BaseException as exc:  # handed to the GUI, which shows it (no traceback)
                logger.debug("%s failed", name, exc_info=True)
                payload = (task_id, None, exc)
            self._finished.emit(payload)

        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _deliver(self, payload: tuple[int, Any, BaseException | None]) -> None:
        task_id, result, error = payload
        on_done = self._pending.pop(task_id)
        on_done(result, error)
