"""Trigger policies: which window of the stream goes to the generator, and when.

========== =================================================================================
policy     windows
========== =================================================================================
latest     whenever the generator is free, the newest complete window (at least ``min_hop``
           after the previous one). Nothing is dropped by construction and an image is at
           most one generation + one chunk old. The default.
interval   a window every ``hop`` on a fixed grid; a window that arrives while the generator
           is busy replaces the waiting one (the older is dropped and counted).
marker     a window starting ``offset`` after each marker whose text matches.
recorded   the windows a session folder's ``events.jsonl`` lists (those that made images),
           each with the seed it was generated with: a replay regenerates the same images
           whatever the replay speed.
========== =================================================================================

A :class:`Trigger` is polled by the session's dispatch thread with the filtered ring buffer.
``waits_for_generator`` policies hand over one window at a time, while the generator is free. :meth:`Trigger.next_stop` serves back-pressure: a replay that may run
faster than real time is held at the sample that completes the next window until the
generator can take it (see :class:`dd_live.session.LiveSession`).

No torch, Qt or diffusers here: windows are cut by :mod:`dd_live.stream.windows`.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dd_live.errors import ConfigError
from dd_live.stream.ringbuffer import RingBuffer
from dd_live.stream.windows import MarkerWindower, PeriodicWindower, Window, _n_samples, cut_window

logger = logging.getLogger(__name__)

TRIGGER_MODES = ("latest", "interval", "marker", "recorded")
EVENTS_FILE = "events.jsonl"  # as written by dd_live.recording


class Trigger(ABC):
    """A window policy.

    Subclasses provide :meth:`poll` and :meth:`next_stop`, and set ``name`` and
    ``waits_for_generator``; :meth:`add_marker` and :meth:`skip` are optional.
    Counters: ``n_windows`` (handed out), ``n_missed`` (overwritten before they were cut).
    """

    name: str = ""
    #: True: hand windows over one at a time, only while the generator is free.
    waits_for_generator: bool = False
    #: True: the windows do not depend on when :meth:`poll` is called (they may be cut early
    #: and wait); False (``latest``): poll only when the generator can take the window.
    fixed_windows: bool = True

    def __init__(self, sfreq: float, length: float) -> None:
        self.sfreq = float(sfreq)
        self.n_length = _n_samples(length, sfreq, f"{type(self).__name__}: window length")
        self.n_windows = 0
        self.n_missed = 0

    @abstractmethod
    def poll(self, buffer: RingBuffer) -> list[Window]:
        """Windows to generate from now, oldest first (``buffer`` holds the filtered signal)."""

    @abstractmethod
    def next_stop(self) -> int | None:
        """Absolute sample index that completes the next window this policy will hand out
        (None: not known yet). A source held there loses no window while the generator is busy."""

    def add_marker(self, sample_index: int, description: str) -> None:
        """A marker arrived at absolute ``sample_index`` (ignored by most policies)."""
        return None

    def skip(self, buffer: RingBuffer) -> None:
        """Forget the windows that passed while generation was paused."""
        return None

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {self.n_length} samples @ {self.sfreq:g} Hz | "
                f"{self.n_windows} windows, {self.n_missed} missed>")


class LatestTrigger(Trigger):
    """The newest complete window whenever the generator is free.

    Args:
        sfreq: Hz. length: window seconds.
        min_hop: seconds at least between the starts of two windows (a fast generator does not
            redraw nearly the same window; at least one new sample in any case).
    """

    name = "latest"
    waits_for_generator = True
    fixed_windows = False

    def __init__(self, sfreq: float, length: float, min_hop: float) -> None:
        super().__init__(sfreq, length)
        self.n_min_hop = max(1, int(round(min_hop * sfreq)))
        self._last_start: int | None = None

    def poll(self, buffer: RingBuffer) -> list[Window]:
        start = buffer.n_written - self.n_length
        if start < 0 or (self._last_start is not None
                         and start < self._last_start + self.n_min_hop):
            return []
        window = cut_window(buffer, start, self.n_length, self.sfreq, self.name)
        if window is None:  # overwritten between the check and the copy: the next poll
            return []
        self._last_start = start
        self.n_windows += 1
        return [window]

    def next_stop(self) -> int:
        if self._last_start is None:
            return self.n_length
        return self._last_start + self.n_min_hop + self.n_length


class IntervalTrigger(Trigger):
    """A window of ``length`` every ``hop`` seconds (:class:`PeriodicWindower`)."""

    name = "interval"

    def __init__(self, sfreq: float, length: float, hop: float) -> None:
        super().__init__(sfreq, length)
        self.windower = PeriodicWindower(sfreq, length, hop)

    def poll(self, buffer: RingBuffer) -> list[Window]:
        windows = self.windower.poll(buffer)
        self.n_windows, self.n_missed = self.windower.n_windows, self.windower.n_missed
        return windows

    def next_stop(self) -> int:
        return self.windower.next_start + self.windower.n_length

    def skip(self, buffer: RingBuffer) -> None:
        self.windower.poll(buffer)


class MarkerTrigger(Trigger):
    """A window of ``length`` starting ``offset`` after each matching marker
    (:class:`MarkerWindower`; ``match``: a regular expression, empty for every marker)."""

    name = "marker"

    def __init__(self, sfreq: float, length: float, offset: float,
                 match: str | re.Pattern | None = None) -> None:
        super().__init__(sfreq, length)
        self.windower = MarkerWindower(sfreq, length, offset, match=match or None)

    def add_marker(self, sample_index: int, description: str) -> None:
        self.windower.add_marker(sample_index, description)

    def poll(self, buffer: RingBuffer) -> list[Window]:
        windows = self.windower.poll(buffer)
        self.n_windows, self.n_missed = self.windower.n_windows, self.windower.n_missed
        return windows

    def next_stop(self) -> int | None:
        return self.windower.next_stop

    def skip(self, buffer: RingBuffer) -> None:
        self.windower.poll(buffer)


@dataclass(frozen=True)
class RecordedWindow:
    """One window a session generated from: ``[start, stop)`` in the session file's samples."""

    start: int
    stop: int
    seed: int | None = None
    index: int = 0


class RecordedTrigger(Trigger):
    """The windows of a recording, in order, each handed out once the generator is free.

    Args:
        sfreq: Hz.
        windows: the recorded windows (file sample indices, see :func:`read_recorded_windows`).
        offset: file sample index of the stream's first sample (a replay that starts into the
            file); windows before it are left out.
        source: the replay (optional). When it has ``segments`` (a
            :class:`~dd_live.sources.replay.ReplaySource`), a seek or a loop resynchronises
            the schedule: windows finished before the jump are still cut from the samples they
            came from, a window the jump cuts through is left out, and the windows from the
            new file position on follow, mapped to the stream samples after the jump.
    """

    name = "recorded"
    waits_for_generator = True

    def __init__(self, sfreq: float, windows: Iterable[RecordedWindow], offset: int = 0,
                 source: Any = None) -> None:
        self._windows = sorted(windows, key=lambda w: (w.start, w.index))
        lengths = {w.stop - w.start for w in self._windows}
        super().__init__(sfreq, (max(lengths) if lengths else 1) / sfreq)
        self._source = source if hasattr(source, "segments") else None
        self._n_segments = 0
        self._pending: deque[tuple[int, RecordedWindow]] = deque()  # (stream start, window)
        self._schedule(0, int(offset))
        if self._source is not None:
            self._n_segments = len(self._source.segments)
        if len(self._pending) < len(self._windows):
            logger.info("recorded windows: %d start before the replay's first sample and are "
                        "left out", len(self._windows) - len(self._pending))

    def _schedule(self, stream_sample: int, file_sample: int) -> None:
        """From ``stream_sample`` on, the stream continues the file at ``file_sample``."""
        shift = stream_sample - file_sample  # stream index = file index + shift
        self._pending.extend((w.start + shift, w) for w in self._windows
                             if w.start >= file_sample)

    def _resync(self) -> None:
        """Follow the replay's seeks and loops (new ``segments`` since the last look)."""
        if self._source is None:
            return
        segments = self._source.segments
        for stream_sample, file_sample in segments[self._n_segments:]:
            before = len(self._pending)
            self._pending = deque(
                (start, w) for start, w in self._pending if start + w.stop - w.start
                <= stream_sample)  # finished before the jump: still cut from its samples
            self._schedule(stream_sample, file_sample)
            logger.info("replay jumped to file sample %d (stream sample %d): recorded windows "
                        "rescheduled (%d pending before, %d now)", file_sample, stream_sample,
                        before, len(self._pending))
        self._n_segments = len(segments)

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    def poll(self, buffer: RingBuffer) -> list[Window]:
        self._resync()
        while self._pending:
            start, rec = self._pending[0]
            stop = start + rec.stop - rec.start
            if stop > buffer.n_written:
                return []
            self._pending.popleft()
            window = cut_window(buffer, start, stop - start, self.sfreq, self.name,
                                f"image {rec.index}", rec.seed)
            if window is None:
                logger.warning("recorded window [%d, %d) was overwritten before it was cut",
                               rec.start, rec.stop)
                self.n_missed += 1
                continue
            self.n_windows += 1
            return [window]
        return []

    def next_stop(self) -> int | None:
        self._resync()
        if not self._pending:
            return None
        start, rec = self._pending[0]
        return start + rec.stop - rec.start


def read_recorded_windows(folder: str | Path) -> list[RecordedWindow]:
    """The windows a session folder's images came from (``"image"`` events of events.jsonl),
    in the folder's own sample indices."""
    from dd_live.recording import read_events  # light: numpy and the standard library

    path = Path(folder) / EVENTS_FILE
    if not path.is_file():
        raise ConfigError(
            f"trigger 'recorded' replays the windows of a dd-live session folder, but {folder} "
            f"has no {EVENTS_FILE}: replay a session folder, or set [window] mode = \"latest\"")
    windows = []
    for event in read_events(folder):
        if event.get("type") != "image":
            continue
        try:
            windows.append(RecordedWindow(int(event["start"]), int(event["stop"]),
                                          event.get("seed"), int(event.get("index", 0))))
        except (KeyError, TypeError, ValueError):
            logger.warning("%s: skipped an image event without a sample range: %r", path, event)
    return windows


def session_folder_of(source: Any) -> Path | None:
    """The dd-live session folder a replay source reads, or None (not a replay of one)."""
    recording = getattr(source, "recording", None)
    path = getattr(recording, "source", None)
    if not path:
        return None
    path = Path(path)
    for folder in (path, path.parent):
        if folder.is_dir() and (folder / EVENTS_FILE).is_file():
            return folder
    return None


def make_trigger(window: Any, sfreq: float, source: Any = None) -> Trigger:
    """The policy ``window`` (a :class:`~dd_live.config.WindowConfig`) names, for a stream at
    ``sfreq``. ``recorded`` needs ``source`` to be a replay of a session folder."""
    mode = window.mode
    if mode == "latest":
        return LatestTrigger(sfreq, window.length, window.min_hop)
    if mode == "interval":
        return IntervalTrigger(sfreq, window.length, window.hop)
    if mode == "marker":
        return MarkerTrigger(sfreq, window.length, window.offset, window.marker_match or None)
    if mode == "recorded":
        folder = session_folder_of(source)
        if folder is None:
            raise ConfigError(
                "[window] mode \"recorded\" replays the windows a dd-live session folder lists: "
                "use it with `dd-live replay SESSION_FOLDER` (or --source file:SESSION_FOLDER)")
        position = float(getattr(source, "position", 0.0))
        return RecordedTrigger(sfreq, read_recorded_windows(folder),
                               offset=int(round(position * sfreq)), source=source)
    raise ConfigError(f"[window] mode must be one of {TRIGGER_MODES}, got {mode!r}")
