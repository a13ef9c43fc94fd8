"""The contract every input of dd-live fulfils.

A :class:`Source` delivers chunks of samples in volts, shaped ``(n_channels, n_times)``, with
one timestamp per sample (seconds, on the source's clock; for LSL that is the local LSL clock
after time correction). ``read()`` never blocks for longer than about one chunk period and
returns an empty chunk (``n_times == 0``) when nothing new has arrived.

Things that are not samples (markers, annotations, gaps, reconnects) come out of
:meth:`Source.pop_events` as :class:`SourceEvent`.

A subclass must provide:

- ``info`` (:class:`StreamInfo`), valid once the source has been constructed or started
  (sources that must connect to learn it say so in their docstring);
- ``_start()``, ``_read()``, ``_stop()``.

The base class supplies the small lifecycle (``start() -> self``, ``stop()``, context manager,
``running``) and the event queue.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class StreamInfo:
    """What a source delivers.

    Attributes:
        name: human-readable name of the stream or device.
        sfreq: nominal sampling rate in Hz (> 0).
        ch_names: one name per channel, ``len == n_channels``.
        ch_types: one MNE channel type per channel (``"eeg"``, ``"misc"``, ``"stim"``...).
        units: one unit per channel; data are delivered in SI units (``"V"`` for EEG).
        source_id: a stable identifier (LSL source_id, board id, file path).
    """

    name: str
    sfreq: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    units: tuple[str, ...] = ()
    source_id: str = ""

    def __post_init__(self) -> None:
        if not self.sfreq > 0:
            raise ValueError(f"StreamInfo {self.name!r}: sfreq must be > 0 Hz, got {self.sfreq}")
        if len(self.ch_types) != len(self.ch_names):
            raise ValueError(
                f"StreamInfo {self.name!r}: {len(self.ch_names)} channel names but "
                f"{len(self.ch_types)} channel types"
            )
        if not self.units:
            object.__setattr__(self, "units", tuple("V" for _ in self.ch_names))
        elif len(self.units) != len(self.ch_names):
            raise ValueError(
                f"StreamInfo {self.name!r}: {len(self.ch_names)} channel names but "
                f"{len(self.units)} units"
            )

    @property
    def n_channels(self) -> int:
        return len(self.ch_names)


@dataclass(frozen=True)
class SourceEvent:
    """Something that happened in a stream that is not a sample.

    Attributes:
        kind: ``"marker"`` (a stimulus/annotation), ``"gap"`` (samples missing, counted
            by a sample counter or the dejittered clock), ``"discontinuity"`` (the clock
            jumped with no sample missing), ``"reconnect"``, ``"disconnect"``,
            ``"layout"`` (the stream came back with other channels, rate or format), ``"end"``
            (a finite source ran out).
        timestamp: when, on the same clock as the sample timestamps (seconds).
        description: the marker text, or a human-readable explanation.
        duration: seconds (the length of a gap or an annotation), 0 for instants.
        extra: small JSON-able details (e.g. ``{"n_missing": 150}``).
    """

    kind: str
    timestamp: float
    description: str = ""
    duration: float = 0.0
    extra: dict = field(default_factory=dict)


class Source(ABC):
    """Abstract input: see the module docstring for the contract."""

    info: StreamInfo

    def __init__(self) -> None:
        self._running = False
        self._events: deque[SourceEvent] = deque()
        self._events_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Source:
        """Open the device or stream and begin delivering samples. Returns ``self``."""
        if not self._running:
            self._start()
            self._running = True
        return self

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The samples that arrived since the last call.

        Returns:
            data: ``(n_channels, n_times)`` float64, in ``info.units``.
            timestamps: ``(n_times,)`` float64 seconds.
        """
        if not self._running:
            raise RuntimeError(f"{self!r} is not started: call start() first")
        return self._read()

    def stop(self) -> None:
        """Stop delivering and release the device. Safe to call twice."""
        if self._running:
            self._running = False
            self._stop()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def finished(self) -> bool:
        """True when a finite source (a replay without loop) has delivered everything."""
        return False

    @property
    def stall_hint(self) -> str:
        """What to check when no data comes (shown with the stall): only what is known about
        this kind of source (a subclass that knows more says more)."""
        return "check that the source is still running"

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "ON" if self._running else "OFF"
        info = getattr(self, "info", None)
        if info is None:
            return f"<{type(self).__name__}: {state}>"
        return (
            f"<{type(self).__name__}: {state} | {info.name} "
            f"({info.n_channels} ch @ {info.sfreq:g} Hz)>"
        )

    # -- events ----------------------------------------------------------------------------
    def _push_event(self, event: SourceEvent) -> None:
        with self._events_lock:
            self._events.append(event)

    def pop_events(self) -> list[SourceEvent]:
        """Events since the last call, oldest first."""
        with self._events_lock:
            events = list(self._events)
            self._events.clear()
        return events

    # -- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _stop(self) -> None: ...


def empty_chunk(n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A chunk with no samples: ``(n_channels, 0)`` data and ``(0,)`` timestamps."""
    return np.empty((n_channels, 0)), np.empty(0)
