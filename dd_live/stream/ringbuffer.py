"""An index-based ring buffer of samples with one timestamp per sample.

Every sample gets an absolute index (0 for the first sample ever written). The sample with
index ``i`` lives in column ``i % capacity``: a write copies at most two slices and never
shifts the buffer, so its cost does not grow with the capacity (unlike a rolled buffer).

One thread writes, any number read. Writes and reads hold one short lock around the slice
copies only; readers always get copies.
"""

from __future__ import annotations

import threading

import numpy as np

from dd_live.errors import DDLiveError


class BufferRangeError(DDLiveError, IndexError):
    """Samples asked of a :class:`RingBuffer` were already overwritten or not yet written."""


class RingBuffer:
    """Fixed-capacity store of the newest samples of a stream.

    Args:
        n_channels: rows of every chunk written.
        capacity: number of samples (columns) kept; older ones are overwritten.
        dtype: dtype of the stored samples (timestamps are always float64).
    """

    def __init__(self, n_channels: int, capacity: int, dtype=np.float64) -> None:
        if int(n_channels) < 1:
            raise ValueError(f"RingBuffer: n_channels must be >= 1, got {n_channels}")
        if int(capacity) < 1:
            raise ValueError(f"RingBuffer: capacity must be >= 1 sample, got {capacity}")
        self._n_channels = int(n_channels)
        self._capacity = int(capacity)
        # np.full touches every page now, so the first lap of writes takes no page faults
        self._data = np.full((self._n_channels, self._capacity), 0, dtype=dtype)
        self._times = np.full(self._capacity, 0.0)
        self._n_written = 0
        self._lock = threading.Lock()

    # -- writing ---------------------------------------------------------------------------
    def write(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Append a chunk.

        Args:
            data: ``(n_channels, n_times)``.
            timestamps: ``(n_times,)`` seconds.

        A chunk longer than the capacity keeps only its last ``capacity`` samples (the
        others count as written and overwritten).
        """
        if data.ndim != 2 or data.shape[0] != self._n_channels:
            raise ValueError(
                f"RingBuffer.write: data must be (n_channels={self._n_channels}, n_times), "
                f"got shape {data.shape}"
            )
        n_times = data.shape[1]
        if timestamps.shape != (n_times,):
            raise ValueError(
                f"RingBuffer.write: need one timestamp per sample ({n_times}), "
                f"got shape {timestamps.shape}"
            )
        if n_times == 0:
            return
        n_total = n_times
        if n_times > self._capacity:
            data = data[:, -self._capacity :]
            timestamps = timestamps[-self._capacity :]
            n_times = self._capacity
        with self._lock:
            first = self._n_written + n_total - n_times
            pos = first % self._capacity
            head = min(n_times, self._capacity - pos)
            self._data[:, pos : pos + head] = data[:, :head]
            self._times[pos : pos + head] = timestamps[:head]
            if head < n_times:
                self._data[:, : n_times - head] = data[:, head:]
                self._times[: n_times - head] = timestamps[head:]
            self._n_written += n_total

    # -- reading ---------------------------------------------------------------------------
    def get(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the samples with absolute indices ``[start, stop)``.

        Returns:
            data: ``(n_channels, stop - start)``; timestamps: ``(stop - start,)``.

        Raises:
            BufferRangeError: ``start`` was already overwritten or ``stop`` is not written yet.
        """
        start, stop = int(start), int(stop)
        if stop < start:
            raise BufferRangeError(f"RingBuffer.get: stop ({stop}) is before start ({start})")
        with self._lock:
            first_index = self._n_written - min(self._n_written, self._capacity)
            if start < first_index:
                raise BufferRangeError(
                    f"RingBuffer.get: samples from {start} were overwritten; the oldest kept "
                    f"is {first_index} (capacity {self._capacity}): read sooner or make the "
                    "buffer longer"
                )
            if stop > self._n_written:
                raise BufferRangeError(
                    f"RingBuffer.get: samples up to {stop} asked but only {self._n_written} "
                    "written so far: wait until they have arrived"
                )
            return self._copy(start, stop)

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the newest ``min(n, n_held)`` samples: ``(n_channels, m)``, ``(m,)``."""
        with self._lock:
            stop = self._n_written
            m = min(int(n), stop, self._capacity)
            return self._copy(stop - max(m, 0), stop)

    def since(self, start: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Everything from ``start`` that is still held.

        Returns:
            data ``(n_channels, m)``, timestamps ``(m,)`` and the absolute index of the first
            returned sample (``start`` clamped up to the oldest sample kept).
        """
        with self._lock:
            stop = self._n_written
            first = max(int(start), stop - min(stop, self._capacity))
            if first >= stop:
                return (
                    np.empty((self._n_channels, 0), self._data.dtype),
                    np.empty(0),
                    first,
                )
            data, times = self._copy(first, stop)
            return data, times, first

    def index_at(self, timestamp: float, start: int = 0) -> int:
        """Absolute index of the first held sample at or after ``start`` whose timestamp is
        >= ``timestamp``.

        Returns ``n_written`` when no such sample is that late, and the oldest such index when
        all are later. Assumes timestamps increase from ``start`` on (a stream whose clock went
        back searches from the first sample after the jump).
        """
        with self._lock:
            stop = self._n_written
            first = max(int(start), stop - min(stop, self._capacity))
            if first >= stop:
                return stop
            n = stop - first
            pos = first % self._capacity
            head = min(n, self._capacity - pos)
            older, newer = self._times[pos : pos + head], self._times[: n - head]
            offset = int(np.searchsorted(older, timestamp, side="left"))
            if offset == head:
                offset += int(np.searchsorted(newer, timestamp, side="left"))
            return first + offset

    def _copy(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Two slice copies at most; the caller holds the lock and checked the range."""
        n = stop - start
        pos = start % self._capacity
        head = min(n, self._capacity - pos)
        if head == n:
            return self._data[:, pos : pos + n].copy(), self._times[pos : pos + n].copy()
        data = np.empty((self._n_channels, n), self._data.dtype)
        times = np.empty(n)
        data[:, :head] = self._data[:, pos:]
        data[:, head:] = self._data[:, : n - head]
        times[:head] = self._times[pos:]
        times[head:] = self._times[: n - head]
        return data, times

    # -- counters --------------------------------------------------------------------------
    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def n_written(self) -> int:
        """Samples written since creation (the index the next sample will get)."""
        return self._n_written

    @property
    def n_held(self) -> int:
        return min(self._n_written, self._capacity)

    @property
    def n_overwritten(self) -> int:
        """Samples dropped by wrap-around (equal to :attr:`first_index`)."""
        return self._n_written - self.n_held

    @property
    def first_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return self._n_written - self.n_held

    @property
    def fill(self) -> float:
        """Held fraction of the capacity, 0..1."""
        return self.n_held / self._capacity

    def __repr__(self) -> str:
        return (
            f"<RingBuffer: {self._n_channels} ch x {self._capacity} | written {self._n_written}, "
            f"held {self.n_held} ({self.fill:.0%}), overwritten {self.n_overwritten}>"
        )
