"""The acquisition thread: source -> filter -> ring buffers, with gaps, stalls and errors.

Every tick is :meth:`AcquisitionThread.step`, which tests call directly on their own thread;
the background thread calls the same ``step()`` in a loop. Filtering happens outside the ring
buffers' locks. The thread never dies silently: a source error is logged with its traceback,
the state turns ``"error"``, ``on_error`` is called and the loop keeps calling the source
(a source that can reconnect does so inside its ``read()``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

from dd_live.errors import ConfigError, MontageError
from dd_live.sources.base import Source, SourceEvent
from dd_live.stream.events import StreamEvent
from dd_live.stream.filters import StreamingFilter
from dd_live.stream.nonfinite import NonFiniteWatch
from dd_live.stream.ringbuffer import RingBuffer

logger = logging.getLogger(__name__)

STATES = ("idle", "running", "stalled", "error", "stopped")
# a timestamp step longer than this many sample periods (and GAP_MIN_SECONDS) is a gap;
# shorter steps are timestamp jitter, and restarting the filter for them would do harm
GAP_PERIODS = 5.0
GAP_MIN_SECONDS = 0.02
SOURCE_BREAKS = ("gap", "discontinuity")  # event kinds a source may report for its own stream
EVENT_HISTORY = 1000
POLL_INTERVAL = 0.002  # s the thread waits when a read brought nothing
RETRY_INTERVAL = 0.5  # s between reads while the source is failing
STOP_TIMEOUT = 5.0


class AcquisitionThread:
    """Pulls a source into a raw (and optionally a filtered) ring buffer.

    Args:
        source: a :class:`~dd_live.sources.base.Source`; ``start()`` starts it if needed.
        raw: ring buffer of the samples as received, ``n_channels`` of the source.
        filtered: ring buffer of the filtered samples (needs ``filt``), or None.
        filt: the :class:`StreamingFilter` feeding ``filtered``.
        stall_timeout: seconds without data before the state turns ``"stalled"``.
        on_state: called as ``on_state(state, message)`` on every change (``message`` says
            why, e.g. ``"no data for 5.0 s"``).
        on_events: called with a list of new :class:`StreamEvent`.
        on_error: called with each exception the source raised.
        name: thread name.
        gap_threshold: seconds between consecutive timestamps that make a gap (default
            ``GAP_PERIODS`` sample periods, at least ``GAP_MIN_SECONDS``). Sources deliver
            dejittered timestamps, so a normal step is one sample period.
        clock: monotonic clock for the stall watchdog (tests pass their own).
        strict: re-raise source errors from ``step()`` instead of absorbing them (tests).

    Callbacks run on the acquisition thread; an exception in one is logged and ignored.
    """

    def __init__(
        self,
        source: Source,
        raw: RingBuffer,
        filtered: RingBuffer | None = None,
        filt: StreamingFilter | None = None,
        *,
        stall_timeout: float = 5.0,
        on_state: Callable[[str, str], None] | None = None,
        on_events: Callable[[list[StreamEvent]], None] | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        name: str | None = None,
        gap_threshold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        strict: bool = False,
    ) -> None:
        info = source.info
        for label, buffer in (("raw", raw), ("filtered", filtered)):
            if buffer is not None and buffer.n_channels != info.n_channels:
                raise MontageError(
                    f"AcquisitionThread: the {label} ring buffer has {buffer.n_channels} "
                    f"channels but source {info.name!r} delivers {info.n_channels}: build it "
                    "as RingBuffer(source.info.n_channels, capacity)"
                )
        if (filtered is None) != (filt is None):
            raise ConfigError(
                "AcquisitionThread: give both a filtered ring buffer and a StreamingFilter, "
                "or neither"
            )
        if filt is not None and filt.n_channels != info.n_channels:
            raise MontageError(
                f"AcquisitionThread: the filter has {filt.n_channels} channels but source "
                f"{info.name!r} delivers {info.n_channels}"
            )
        if not stall_timeout > 0:
            raise ConfigError(
                f"AcquisitionThread: stall_timeout must be > 0 s, got {stall_timeout}"
            )
        self._source = source
        self._raw = raw
        self._filtered = filtered
        self._filt = filt
        self._sfreq = float(info.sfreq)
        self._stall_timeout = float(stall_timeout)
        self._gap_threshold = (
            float(gap_threshold)
            if gap_threshold is not None
            else max(GAP_PERIODS / self._sfreq, GAP_MIN_SECONDS)
        )
        self._on_state = on_state
        self._on_events = on_events
        self._on_error = on_error
        self._clock = clock
        self._strict = strict
        self._name = name or f"dd-live-acquisition-{info.name}"

        self._state = "idle"
        self._error: BaseException | None = None
        self._n_errors = 0
        self._events: deque[StreamEvent] = deque(maxlen=EVENT_HISTORY)
        self._pending: list[SourceEvent] = []  # popped from the source, not yet placed
        self._nonfinite = NonFiniteWatch(info.ch_names, info.sfreq)  # NaN/Inf -> events
        self._n_samples = 0
        self.n_filter_resets = 0  # the filter restarted after a gap or a clock jump
        self._last_timestamp: float | None = None
        # first sample after the timestamps last went back (a replay seeked backwards): events
        # are placed among the samples from here on, not on older ones with the same time
        self._run_start = 0
        self._last_data_time: float | None = None
        self._source_ended = False
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()

    # -- one tick --------------------------------------------------------------------------
    def step(self) -> int:
        """Read the source once, filter, write the buffers, place events. Returns samples written."""
        if self._state == "stopped":
            return 0
        now = self._clock()
        if self._last_data_time is None:
            self._last_data_time = now
        try:
            data, timestamps = self._source.read()
            source_events = self._source.pop_events()
            self._pending.extend(source_events)
            # a source that reports its own gaps (a sample counter, a dejittered clock, an LSL
            # reconnect) knows them best: no second event
            source_gap = any(event.kind in SOURCE_BREAKS for event in source_events)
            n_times = self._ingest(data, timestamps, report_gaps=not source_gap)
        except Exception as exc:
            self._fail(exc)
            if self._strict:
                raise
            return 0
        new_events = self._place_events()
        if n_times:
            self._last_data_time = now
            if self._state in ("stalled", "error"):
                first_index = self._raw.n_written - n_times
                new_events.append(self._resume_event(first_index, float(timestamps[0])))
            self._n_errors = 0
            self._set_state("running", "receiving data")
        elif self._source.finished:
            new_events.extend(self._end_events())
            self._set_state("stopped", "the source delivered everything")
        elif getattr(self._source, "held", False):  # a replay waiting for the generator
            self._last_data_time = now
        elif (
            self._state in ("idle", "running") and now - self._last_data_time > self._stall_timeout
        ):
            new_events.append(self._stall_event(now - self._last_data_time))
            self._set_state("stalled", f"no data for {now - self._last_data_time:.1f} s")
        self._emit(new_events)
        return n_times

    def _ingest(self, data: np.ndarray, timestamps: np.ndarray, report_gaps: bool = True) -> int:
        """Filter and write one chunk; gaps split it and reset the filter (and are reported as
        events unless ``report_gaps`` is off because the source reported them itself)."""
        n_times = timestamps.shape[0]
        if n_times == 0:
            return 0
        if data.shape != (self._raw.n_channels, n_times):
            raise MontageError(
                f"{self._source!r} delivered a chunk of shape {data.shape}, expected "
                f"({self._raw.n_channels}, {n_times}) to match its info and timestamps"
            )
        first_index = self._raw.n_written
        previous = timestamps[0] if self._last_timestamp is None else self._last_timestamp
        steps = np.diff(timestamps, prepend=previous)
        breaks = np.flatnonzero(np.abs(steps) > self._gap_threshold)
        # (the source's own events stand for these breaks when it reported them)
        gap_events = [
            self._gap_event(first_index + int(k), float(timestamps[k]), float(steps[k]))
            for k in breaks
        ] if report_gaps else []
        back = breaks[steps[breaks] < 0]
        if back.size:
            self._run_start = first_index + int(back[-1])
        if self._filt is not None:
            pieces = []
            for begin, end in zip(np.r_[0, breaks], np.r_[breaks, n_times], strict=True):
                if end == begin:  # a break before the chunk's first sample
                    continue
                if begin in breaks:
                    self._filt.reset()
                    self.n_filter_resets += 1
                pieces.append(self._filt(data[:, begin:end]))
            filtered = pieces[0] if len(pieces) == 1 else np.concatenate(pieces, axis=1)
        self._raw.write(data, timestamps)
        if self._filtered is not None:
            self._filtered.write(filtered, timestamps)
        self._last_timestamp = float(timestamps[-1])
        self._n_samples += n_times
        gap_events.extend(self._nonfinite.update(data, first_index, timestamps))
        self._emit(gap_events)
        return n_times

    # -- events ----------------------------------------------------------------------------
    def _gap_event(self, sample_index: int, timestamp: float, step: float) -> StreamEvent:
        if step < 0:
            logger.warning("timestamps of %r went back by %.3f s", self._source, -step)
            return StreamEvent(
                "discontinuity",
                sample_index,
                timestamp,
                f"timestamps went back by {-step:.3f} s; filter restarted",
                extra={"jump_s": step},
            )
        duration = step - 1.0 / self._sfreq
        n_missing = max(int(round(step * self._sfreq)) - 1, 0)
        logger.warning("gap of %.3f s (~%d samples) in %r", duration, n_missing, self._source)
        return StreamEvent(
            "gap",
            sample_index,
            timestamp,
            f"{duration:.3f} s (~{n_missing} samples) missing before this sample; filter restarted",
            duration=duration,
            extra={"n_missing": n_missing},
        )

    def _stall_event(self, silent_for: float) -> StreamEvent:
        logger.warning("no data from %r for %.1f s", self._source, silent_for)
        return StreamEvent(
            "stall",
            self._raw.n_written,
            self._last_timestamp or 0.0,
            f"no data for {silent_for:.1f} s: {self._source.stall_hint}",
            extra={"silent_s": silent_for},
        )

    def _resume_event(self, sample_index: int, timestamp: float) -> StreamEvent:
        logger.info("data from %r again", self._source)
        return StreamEvent("resume", sample_index, timestamp, "data again")

    def _end_events(self) -> list[StreamEvent]:
        events = self._flush_pending()
        if not self._source_ended:
            events.append(
                StreamEvent(
                    "end",
                    self._raw.n_written,
                    self._last_timestamp or 0.0,
                    "the source delivered everything",
                )
            )
        return events

    def _place_events(self) -> list[StreamEvent]:
        """Turn source events into stream events at the first sample at/after their time.

        Markers wait until a sample that late has arrived; other kinds are placed at once.
        """
        placed, still_pending = [], []
        for event in self._pending:
            if event.kind == "end":
                self._source_ended = True
            arrived = self._last_timestamp is not None and event.timestamp <= self._last_timestamp
            if event.kind != "marker" or arrived:
                placed.append(self._to_stream_event(event))
            else:
                still_pending.append(event)
        self._pending = still_pending
        return placed

    def _flush_pending(self) -> list[StreamEvent]:
        placed = [self._to_stream_event(event) for event in self._pending]
        self._pending = []
        return placed

    def _to_stream_event(self, event: SourceEvent) -> StreamEvent:
        index = self._raw.index_at(event.timestamp, start=self._run_start)
        return StreamEvent(
            event.kind,
            index,
            event.timestamp,
            event.description,
            max(event.duration, 0.0),
            dict(event.extra),
        )

    def _emit(self, events: list[StreamEvent]) -> None:
        if not events:
            return
        self._events.extend(events)
        self._call(self._on_events, events)

    # -- state -----------------------------------------------------------------------------
    def _set_state(self, state: str, message: str = "") -> None:
        if state != self._state:
            logger.debug("%r: %s -> %s", self, self._state, state)
            self._state = state
            self._call(self._on_state, state, message)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._n_errors += 1
        if self._n_errors == 1:
            logger.error("source %r failed; will keep trying", self._source, exc_info=exc)
            self._emit(
                [
                    StreamEvent(
                        "error",
                        self._raw.n_written,
                        self._last_timestamp or 0.0,
                        f"{type(exc).__name__}: {exc}",
                    )
                ]
            )
        else:
            logger.debug(
                "source %r failed again (%d in a row): %s", self._source, self._n_errors, exc
            )
        self._set_state("error", f"{type(exc).__name__}: {exc}")
        self._call(self._on_error, exc)

    @staticmethod
    def _call(callback: Callable | None, *args) -> None:
        if callback is None:
            return
        try:
            callback(*args)
        except Exception:
            logger.exception("callback %r raised; ignored", callback)

    # -- thread ----------------------------------------------------------------------------
    def start(self) -> AcquisitionThread:
        """Start the source (if needed) on this thread, then the loop on a new one."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self!r} is already running")
        if not self._source.running:
            self._source.start()
        self._stop_requested.clear()
        if self._state in ("idle", "stopped"):
            self._state = "idle"
            self._set_state("running", "started")
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                n_times = self.step()
            except Exception as exc:  # a bug of ours: log, signal, keep going
                logger.exception("acquisition step failed")
                self._set_state("error", f"{type(exc).__name__}: {exc}")
                self._call(self._on_error, exc)
                n_times = 0
            if self._state == "stopped":
                break
            if self._state == "error":
                self._stop_requested.wait(RETRY_INTERVAL)
            elif n_times == 0:
                self._stop_requested.wait(POLL_INTERVAL)

    def stop(self, timeout: float = STOP_TIMEOUT, stop_source: bool = True) -> None:
        """Stop the loop, wait for it, then stop the source (unless ``stop_source`` is False:
        a new acquisition takes the source over). Safe to call twice."""
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.warning("%s did not stop within %.1f s", self._name, timeout)
        if stop_source:
            try:
                self._source.stop()
            except Exception:
                logger.exception("stopping %r failed", self._source)
        self._set_state("stopped", "stopped" if stop_source else "handed over")

    def join(self, timeout: float | None = None) -> None:
        """Wait for the loop to end (a finite source ends it by itself)."""
        if self._thread is not None:
            self._thread.join(timeout)

    # -- what others read ------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    @property
    def error(self) -> BaseException | None:
        """The last exception the source raised, or None."""
        return self._error

    @property
    def events(self) -> deque[StreamEvent]:
        """The newest ``EVENT_HISTORY`` events, oldest first."""
        return self._events

    @property
    def n_samples(self) -> int:
        """Samples written by this acquisition."""
        return self._n_samples

    @property
    def last_timestamp(self) -> float | None:
        return self._last_timestamp

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def source(self) -> Source:
        return self._source

    @property
    def raw(self) -> RingBuffer:
        return self._raw

    @property
    def filtered(self) -> RingBuffer | None:
        return self._filtered

    def __repr__(self) -> str:
        return (
            f"<AcquisitionThread: {self._state} | {self._source!r}, "
            f"{self._n_samples} samples, {len(self._events)} events>"
        )
