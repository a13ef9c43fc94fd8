"""Replay of a recorded file (or a dd-live session folder) as a :class:`Source`.

:class:`ReplaySource` streams a :class:`Recording` (read by :mod:`dd_live.sources.io`)
at ``speed`` × the real rate, paced drift-free from the monotonic clock, with seek,
pause/resume and loop. :func:`read_recording` and :class:`Recording` are re-exported here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError
from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.sources.io import SUPPORTED, Recording, read_recording

__all__ = ["SUPPORTED", "Recording", "ReplaySource", "read_recording"]

logger = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 8.0


def _check_speed(speed: float) -> float:
    try:
        speed = float(speed)
    except (TypeError, ValueError):
        raise ConfigError(
            f"replay speed must be a number ({MIN_SPEED:g} to {MAX_SPEED:g}, or 0 for as fast as "
            f"possible), got {speed!r}"
        ) from None
    if speed == 0 or math.isinf(speed):
        return math.inf
    if not MIN_SPEED <= speed <= MAX_SPEED:
        raise ConfigError(
            f"replay speed must be between {MIN_SPEED} and {MAX_SPEED} (or 0 / inf for as fast "
            f"as possible), got {speed}"
        )
    return speed


class ReplaySource(Source):
    """A recording streamed as if live.

    Args:
        path: a file of :data:`SUPPORTED` or a dd-live session folder (or a loaded
            :class:`Recording`).
        speed: multiple of the real rate, 0.25-8; 0 or inf: one chunk per ``read()`` at once.
        loop: start over at the end (the timestamps keep increasing).
        chunk_duration: seconds of file per chunk.
        start: seconds into the file to begin at.
        board: board id of a BrainFlow CSV.
        stream: XDF only: name (or type) of the stream to replay.
        clock, sleep: the monotonic clock (seconds) that paces the replay and the sleep that
            waits on it (tests pass a clock they move by hand).

    ``read()`` returns ``(n_channels, n_times)``; timestamps are on the replay clock:
    ``time.monotonic()`` at start + seconds of file (+ the file's length per loop). Annotations
    become ``SourceEvent("marker")`` at their sample (onsets rounded to the nearest sample, as
    MNE does); samples the file says are missing (dropped packets) advance the clock by their
    duration and are a ``"gap"`` event; reader notices (e.g. a marker outside the data) are
    ``"notice"`` events; the end of the file (without loop) is an ``"end"`` event and
    :attr:`finished`.
    """

    def __init__(
        self,
        path: str | Path | Recording,
        *,
        speed: float = 1.0,
        loop: bool = False,
        chunk_duration: float = 0.02,
        start: float = 0.0,
        board: int | str | None = None,
        stream: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self._clock, self._sleep = clock, sleep
        if isinstance(path, Recording):
            self.recording = path
        else:
            self.recording = read_recording(path, board=board, stream=stream)
        rec = self.recording
        if not chunk_duration > 0:
            raise ConfigError(f"replay: chunk_duration must be > 0 s, got {chunk_duration}")
        self._speed = _check_speed(speed)
        self.loop = bool(loop)
        self.chunk_size = max(1, round(chunk_duration * rec.sfreq))
        self.info = StreamInfo(
            name=rec.name,
            sfreq=rec.sfreq,
            ch_names=rec.ch_names,
            ch_types=rec.ch_types,
            units=rec.units,
            source_id=rec.source,
        )
        self._onsets = np.array([round(a[0] * rec.sfreq) for a in rec.annotations], dtype=int)
        self._event_index = np.array([e.index for e in rec.events], dtype=int)
        gaps = rec.gaps
        # file sample index -> clock position: the samples missing before it are skipped
        self._gap_index = np.array([g[0] for g in gaps], dtype=int)
        self._gap_offset = np.cumsum([g[1] for g in gaps], dtype=int)
        self._loop_length = rec.n_times + (int(self._gap_offset[-1]) if gaps else 0)
        self._lock = threading.Lock()  # seek/pause/speed come from other threads
        self._pos = 0  # next sample to deliver
        self._n_loops = 0
        self._paused = False
        self._limit: int | None = None  # back-pressure (hold_at): deliver no more samples
        self._n_delivered = 0
        self._held = False
        self._released = threading.Event()
        self._ended = False
        self._anchor_time = 0.0
        self._anchor_pos = 0
        self._base = 0.0
        # (stream sample, file sample) where each contiguous run of the file starts in the
        # stream: a seek or a loop starts a new one (see :attr:`segments`)
        self._segments: list[tuple[int, int]] = []
        self.seek(start)

    # -- controls (any thread) ---------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, speed: float) -> None:
        with self._lock:
            self._speed = _check_speed(speed)
            self._reanchor()

    @property
    def position(self) -> float:
        """Seconds into the file of the next sample."""
        return self._pos / self.info.sfreq

    @property
    def duration(self) -> float:
        return self.recording.n_times / self.info.sfreq

    @property
    def paused(self) -> bool:
        return self._paused

    def seek(self, seconds: float) -> None:
        """Continue from ``seconds`` into the file (clamped to the file)."""
        with self._lock:
            self._pos = int(np.clip(round(seconds * self.info.sfreq), 0, self.recording.n_times))
            self._ended = False
            self._reanchor()
            self._new_segment(self._n_delivered, self._pos)

    @property
    def segments(self) -> list[tuple[int, int]]:
        """Where the stream jumps in the file: ``(stream_sample, file_sample)`` pairs, in
        order; stream sample ``n`` (counted from ``start()``) is file sample
        ``file_sample + n - stream_sample`` of the last pair with ``stream_sample <= n``.
        A seek or a loop adds a pair (consumers that map stream samples back to the file,
        such as the ``recorded`` trigger, resynchronise on it)."""
        with self._lock:
            return list(self._segments)

    def _new_segment(self, stream_sample: int, file_sample: int) -> None:
        """Called under the lock; a jump before any sample of the last run replaces it."""
        if self._segments and self._segments[-1][0] == stream_sample:
            self._segments[-1] = (stream_sample, file_sample)
        else:
            self._segments.append((stream_sample, file_sample))

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._reanchor()

    def hold_at(self, n_samples: int | None) -> None:
        """Back-pressure from the consumer (a session whose generator is behind): deliver no
        more than ``n_samples`` samples in all, counted from ``start()``, until called again;
        None lifts the limit. Independent of :meth:`pause`; paced replays go on at their speed
        from where they were held."""
        limit = None if n_samples is None else int(n_samples)
        if limit != self._limit:
            self._limit = limit
            self._released.set()

    @property
    def held(self) -> bool:
        """True while :meth:`hold_at` stops the replay (the consumer is catching up)."""
        return self._held

    def _reanchor(self) -> None:
        self._anchor_time = self._clock()
        self._anchor_pos = self._pos

    @property
    def finished(self) -> bool:
        return self._ended

    # -- Source ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._base = self._clock()
        with self._lock:
            self._reanchor()

    def _stop(self) -> None:
        pass

    def _n_due(self) -> int:
        """Samples due now; waits (at most one chunk period) until a whole chunk is due."""
        if math.isinf(self._speed):
            return self.chunk_size
        rate = self.info.sfreq * self._speed
        wait = self._anchor_time + (self._pos - self._anchor_pos + self.chunk_size) / rate
        wait -= self._clock()
        if wait > 0:
            self._sleep(min(wait, self.chunk_size / rate))
        return self._anchor_pos + int((self._clock() - self._anchor_time) * rate) - self._pos

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        n_channels = self.info.n_channels
        if self._paused or self._ended:
            self._sleep(self.chunk_size / self.info.sfreq)
            return empty_chunk(n_channels)
        limit = self._limit
        if limit is not None and self._n_delivered >= limit:  # held: wait, never spin
            self._held = True
            self._released.wait(self.chunk_size / self.info.sfreq)
            self._released.clear()
            return empty_chunk(n_channels)
        with self._lock:
            if self._held:
                self._held = False
                self._reanchor()
            n_due = self._n_due()
            if limit is not None:
                n_due = min(n_due, limit - self._n_delivered)
            data, stamps = self._take(max(n_due, 0))
            self._n_delivered += stamps.shape[0]
        return data, stamps

    def _take(self, n_times: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n_times`` next samples (wrapping when looping); called under the lock."""
        rec = self.recording
        pieces, stamps = [], []
        n_taken = 0
        while n_times > 0:
            if self._pos >= rec.n_times:
                if not self.loop:
                    self._ended = True
                    self._push_event(SourceEvent("end", self._stamp(self._pos), "end of file"))
                    break
                self._n_loops += 1
                self._pos = 0
                self._anchor_pos -= rec.n_times
                self._new_segment(self._n_delivered + n_taken, 0)
            stop = min(rec.n_times, self._pos + n_times)
            self._push_markers(self._pos, stop)
            self._push_file_events(self._pos, stop)
            pieces.append(rec.data[:, self._pos : stop])
            stamps.append(self._stamp(np.arange(self._pos, stop)))
            n_times -= stop - self._pos
            n_taken += stop - self._pos
            self._pos = stop
        if not pieces:
            return empty_chunk(self.info.n_channels)
        if len(pieces) == 1:
            return pieces[0].copy(), stamps[0]
        return np.concatenate(pieces, axis=1), np.concatenate(stamps)

    def _stamp(self, index):
        """Replay-clock timestamp of file sample ``index`` in the current loop."""
        position = np.asarray(index) + self._n_loops * self._loop_length
        if self._gap_index.size:
            k = np.searchsorted(self._gap_index, index, side="right")
            position = position + np.r_[0, self._gap_offset][k]
        return self._base + position / self.info.sfreq

    def _push_markers(self, start: int, stop: int) -> None:
        first, last = np.searchsorted(self._onsets, [start, stop])
        for k in range(first, last):
            _, duration, description = self.recording.annotations[k]
            stamp = self._stamp(self._onsets[k])  # the rounded sample, as MNE places events
            self._push_event(SourceEvent("marker", float(stamp), description, duration))

    def _push_file_events(self, start: int, stop: int) -> None:
        """Gaps and notices the reader found, at their sample."""
        first, last = np.searchsorted(self._event_index, [start, stop])
        for k in range(first, last):
            event = self.recording.events[k]
            stamp = float(self._stamp(event.index))
            n_missing = int(event.extra.get("n_missing", 0))
            duration = n_missing / self.info.sfreq if event.kind == "gap" else 0.0
            if event.kind == "gap":
                logger.info("%s: %s", self.recording.name, event.description)
            self._push_event(
                SourceEvent(event.kind, stamp, event.description, duration, dict(event.extra))
            )

    def __repr__(self) -> str:
        speed = "max" if math.isinf(self._speed) else f"x{self._speed:g}"
        return f"{super().__repr__()[:-1]} | {self.position:.1f}/{self.duration:.1f} s {speed}>"
