"""The generation worker: one thread, a latest-wins queue of one.

The acquisition side hands windows in with :meth:`GenerationWorker.submit`; it never waits.
If a window is still pending when a newer one arrives, the older one is dropped and counted:
a slow generator makes the images sparser, it never makes the ring buffer lose samples.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

JobT = TypeVar("JobT")
ResultT = TypeVar("ResultT")


class GenerationWorker(Generic[JobT, ResultT]):
    """Runs ``process(job)`` for the newest submitted job on its own thread.

    Args:
        process: the work, ``job -> result``; may be slow; exceptions are caught.
        on_result: called on the worker thread with ``(job, result)``.
        on_error: called on the worker thread with ``(job, exception)``; the worker goes on.
        on_drop: called with the job that a newer one replaced before it started.
        on_take: called on the worker thread with the job just taken, before ``process``:
            the place to re-arm what a stop or pause disarmed (the sampler's interrupt flag is
            cleared here, not when a call starts, so a pause pressed while a window is being
            encoded still stops its sampling).

    ``step()`` processes the pending job (if any) on the caller's thread: tests drive it, and
    the thread started by ``start()`` calls the same ``step()``.
    """

    def __init__(
        self,
        process: Callable[[JobT], ResultT],
        *,
        on_result: Callable[[JobT, ResultT], Any] | None = None,
        on_error: Callable[[JobT, BaseException], Any] | None = None,
        on_drop: Callable[[JobT], Any] | None = None,
        on_take: Callable[[JobT], Any] | None = None,
        name: str = "dd-live-generation",
    ) -> None:
        self._process = process
        self._on_result = on_result
        self._on_error = on_error
        self._on_drop = on_drop
        self._on_take = on_take
        self._name = name
        self._pending: JobT | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.n_submitted = 0
        self.n_dropped = 0
        self.n_done = 0
        self.n_failed = 0

    def __repr__(self) -> str:
        state = "ON" if self.running else "OFF"
        return (f"<GenerationWorker: {state} | done {self.n_done}, dropped {self.n_dropped}, "
                f"failed {self.n_failed}>")

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def busy(self) -> bool:
        """True while a job is being processed or waiting."""
        with self._cond:
            return self._busy or self._pending is not None

    def submit(self, job: JobT) -> bool:
        """Queue ``job``, replacing a pending one. Never blocks. Returns True if one was dropped."""
        with self._cond:
            dropped = self._pending
            self._pending = job
            self.n_submitted += 1
            if dropped is not None:
                self.n_dropped += 1
            self._cond.notify()
        if dropped is not None and self._on_drop is not None:
            self._on_drop(dropped)
        return dropped is not None

    def step(self, timeout: float = 0.0) -> bool:
        """Process the pending job, waiting up to ``timeout`` s for one. True if one ran."""
        with self._cond:
            if self._pending is None and timeout > 0 and not self._stopping:
                self._cond.wait(timeout)
            job, self._pending = self._pending, None
            if job is None:
                return False
            self._busy = True
            if self._on_take is not None:
                self._on_take(job)  # under the lock: a stop cannot slip between take and re-arm
        try:
            result = self._process(job)
        except Exception as exc:  # a failed generation is reported, the worker goes on
            self.n_failed += 1
            logger.exception("generation failed; the session goes on")
            if self._on_error is not None:
                try:
                    self._on_error(job, exc)
                except Exception:  # the worker thread must outlive its observers
                    logger.exception("an error callback failed")
        else:
            self.n_done += 1
            if self._on_result is not None:
                try:
                    self._on_result(job, result)
                except Exception:
                    logger.exception("a result callback failed")
        finally:
            with self._cond:
                self._busy = False
                self._cond.notify_all()
        return True

    def start(self) -> GenerationWorker[JobT, ResultT]:
        if self.running:
            return self
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping:
            self.step(timeout=0.1)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until the pending job (if any) has been processed. True when idle."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._busy or self._pending is not None:
                if not self.running and not self._busy:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def cancel_pending(self) -> bool:
        """Drop the job waiting to start (if any; it is counted as dropped). True if one was."""
        with self._cond:
            job, self._pending = self._pending, None
            if job is not None:
                self.n_dropped += 1
        if job is not None and self._on_drop is not None:
            self._on_drop(job)
        return job is not None

    def stop(self, *, drain: bool = True, timeout: float = 30.0,
             interrupt: Callable[[], Any] | None = None) -> None:
        """Stop the thread; with ``drain`` the pending job is finished first, else dropped.

        ``interrupt``: how to stop the job being processed (e.g. the sampler's ``interrupt``):
        the pending job is dropped and no new job can start, then ``interrupt()`` is called, then
        the running job (cut short) is waited for. A job interrupted this way returns within one
        step of its work instead of running to its end.
        """
        if interrupt is not None:
            with self._cond:
                self._stopping = True
                if self._pending is not None:
                    self.n_dropped += 1
                    self._pending = None
            interrupt()
            self.drain(timeout)
        elif not drain:
            with self._cond:
                if self._pending is not None:
                    self.n_dropped += 1
                    self._pending = None
        elif self.running:
            self.drain(timeout)
        self._stopping = True
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("the generation thread did not stop within %.0f s", timeout)
            self._thread = None
