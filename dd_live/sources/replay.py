"""Replay of a recorded file (or a dd-live session folder) as a :class:`Source`.

:class:`ReplaySource` streams a :class:`Recording` (read by :mod:`dd_live.sources.readers`)
at ``speed`` × the real rate, paced drift-free from the monotonic clock, with seek,
pause/resume and loop. :func:`read_recording` and :class:`Recording` are re-exported here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError
from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.sources.readers import SUPPORTED, Recording, read_recording

__all__ = ["SUPPORTED", "Recording", "ReplaySource", "read_recording"]

logger = logging.getLogger(__name__)

MIN_SPEED, MAX_SPEED = 0.25, 8.0


def _check_speed(speed: float) -> float:
    speed = float(speed)
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

    ``read()`` returns ``(n_channels, n_times)``; timestamps are on the replay clock:
    ``time.monotonic()`` at start + seconds of file (+ the file's length per loop). Annotations
    become ``SourceEvent("marker")`` on that clock; the end of the file (without loop) is an
    ``"end"`` event and :attr:`finished`.
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
    ) -> None:
        super().__init__()
        self.recording = path if isinstance(path, Recording) else read_recording(path, board=board)
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
        self._lock = threading.Lock()  # seek/pause/speed come from other threads
        self._pos = 0  # next sample to deliver
        self._n_loops = 0
        self._paused = False
        self._ended = False
        self._anchor_time = 0.0
        self._anchor_pos = 0
        self._base = 0.0
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

    def pause(self) -> None:
        with self._lock:
            self._paused = True

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            self._reanchor()

    def _reanchor(self) -> None:
        self._anchor_time = time.monotonic()
        self._anchor_pos = self._pos

    @property
    def finished(self) -> bool:
        return self._ended

    # -- Source ----------------------------------------------------------------------------
    def _start(self) -> None:
        self._base = time.monotonic()
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
        wait -= time.monotonic()
        if wait > 0:
            time.sleep(min(wait, self.chunk_size / rate))
        return self._anchor_pos + int((time.monotonic() - self._anchor_time) * rate) - self._pos

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        n_channels = self.info.n_channels
        if self._paused or self._ended:
            time.sleep(self.chunk_size / self.info.sfreq)
            return empty_chunk(n_channels)
        with self._lock:
            n_due = self._n_due()
            data, stamps = self._take(max(n_due, 0))
        return data, stamps

    def _take(self, n_times: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``n_times`` next samples (wrapping when looping); called under the lock."""
        rec = self.recording
        pieces, stamps = [], []
        while n_times > 0:
            if self._pos >= rec.n_times:
                if not self.loop:
                    self._ended = True
                    self._push_event(SourceEvent("end", self._stamp(self._pos), "end of file"))
                    break
                self._n_loops += 1
                self._pos = 0
                self._anchor_pos -= rec.n_times
            stop = min(rec.n_times, self._pos + n_times)
            self._push_markers(self._pos, stop)
            pieces.append(rec.data[:, self._pos : stop])
            stamps.append(self._stamp(np.arange(self._pos, stop)))
            n_times -= stop - self._pos
            self._pos = stop
        if not pieces:
            return empty_chunk(self.info.n_channels)
        if len(pieces) == 1:
            return pieces[0].copy(), stamps[0]
        return np.concatenate(pieces, axis=1), np.concatenate(stamps)

    def _stamp(self, index):
        """Replay-clock timestamp of file sample ``index`` in the current loop."""
        return self._base + (index + self._n_loops * self.recording.n_times) / self.info.sfreq

    def _push_markers(self, start: int, stop: int) -> None:
        first, last = np.searchsorted(self._onsets, [start, stop])
        for k in range(first, last):
            onset, duration, description = self.recording.annotations[k]
            stamp = self._stamp(onset * self.info.sfreq)
            self._push_event(SourceEvent("marker", float(stamp), description, duration))

    def __repr__(self) -> str:
        speed = "max" if math.isinf(self._speed) else f"x{self._speed:g}"
        return f"{super().__repr__()[:-1]} | {self.position:.1f}/{self.duration:.1f} s {speed}>"
