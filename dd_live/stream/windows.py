"""Cutting windows out of a ring buffer: at a fixed interval, or after markers.

Windows are addressed by absolute sample indices, so the same stream (a replayed session)
yields the same windows. A windower that falls so far behind that a window's samples were
overwritten skips it and counts it in ``n_missed``. Which window goes to the model when is a
policy of :mod:`dd_live.triggers`, built on these windowers and :func:`cut_window`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np

from dd_live.errors import ConfigError
from dd_live.stream.ringbuffer import BufferRangeError, RingBuffer

logger = logging.getLogger(__name__)

# the reference model sees 440 ms starting 20 ms after the stimulus (docs/reference.md)
WINDOW_LENGTH = 0.44
MARKER_OFFSET = 0.02
PERIODIC_HOP = 0.5


@dataclass(frozen=True)
class Window:
    """A span of samples cut from a ring buffer.

    Attributes:
        start, stop: absolute sample indices ``[start, stop)``.
        data: ``(n_channels, n_times)`` with ``n_times == stop - start``.
        timestamps: ``(n_times,)`` seconds.
        sfreq: nominal sampling rate in Hz.
        trigger: ``"periodic"``, ``"marker"``, ``"latest"`` or ``"recorded"``.
        description: the marker's text (empty for periodic windows).
        seed: the sampler seed this window must be generated with (a recorded window replayed),
            or None for the session's seed policy.
    """

    start: int
    stop: int
    data: np.ndarray
    timestamps: np.ndarray
    sfreq: float
    trigger: str
    description: str = ""
    seed: int | None = None

    def __post_init__(self) -> None:
        n_times = self.stop - self.start
        if n_times < 1:
            raise ValueError(f"Window: stop ({self.stop}) must be after start ({self.start})")
        if self.data.ndim != 2 or self.data.shape[1] != n_times:
            raise ValueError(
                f"Window [{self.start}, {self.stop}): data must be (n_channels, {n_times}), "
                f"got {self.data.shape}"
            )
        if self.timestamps.shape != (n_times,):
            raise ValueError(
                f"Window [{self.start}, {self.stop}): need {n_times} timestamps, "
                f"got {self.timestamps.shape}"
            )
        if not self.sfreq > 0:
            raise ValueError(f"Window: sfreq must be > 0 Hz, got {self.sfreq}")

    @property
    def n_channels(self) -> int:
        return self.data.shape[0]

    @property
    def n_times(self) -> int:
        return self.data.shape[1]

    @property
    def duration(self) -> float:
        """Nominal length in seconds (``n_times / sfreq``)."""
        return self.n_times / self.sfreq

    def __repr__(self) -> str:
        what = f"{self.trigger} {self.description!r}" if self.description else self.trigger
        return (
            f"<Window: {what} | samples [{self.start}, {self.stop}), "
            f"{self.n_channels} ch x {self.n_times} @ {self.sfreq:g} Hz, "
            f"t0 {self.timestamps[0]:.3f} s>"
        )


def _n_samples(seconds: float, sfreq: float, what: str, minimum: int = 1) -> int:
    if not sfreq > 0:
        raise ConfigError(f"sfreq must be > 0 Hz, got {sfreq}")
    n = int(round(seconds * sfreq))
    if n < minimum:
        raise ConfigError(
            f"{what} of {seconds} s is {n} samples at {sfreq:g} Hz; it must be at least "
            f"{minimum}: make it longer"
        )
    return n


def cut_window(
    buffer: RingBuffer,
    start: int,
    n_times: int,
    sfreq: float,
    trigger: str,
    description: str = "",
    seed: int | None = None,
) -> Window | None:
    """The window ``[start, start + n_times)`` (a copy), or None when it was overwritten
    meanwhile. The samples must have arrived (``start + n_times <= buffer.n_written``)."""
    try:
        data, timestamps = buffer.get(start, start + n_times)
    except BufferRangeError:
        return None
    return Window(start, start + n_times, data, timestamps, sfreq, trigger, description, seed)



class PeriodicWindower:
    """A window of ``length`` seconds every ``hop`` seconds.

    Windows start at ``start + k * hop`` samples (k = 0, 1, ...), so they are the same for the
    same stream. Args are in seconds except ``start`` (absolute sample index of the first).
    """

    def __init__(
        self,
        sfreq: float,
        length: float = WINDOW_LENGTH,
        hop: float = PERIODIC_HOP,
        *,
        start: int = 0,
    ) -> None:
        self._sfreq = float(sfreq)
        self._n_length = _n_samples(length, sfreq, "PeriodicWindower: window length")
        self._n_hop = _n_samples(hop, sfreq, "PeriodicWindower: hop")
        self._next_start = int(start)
        self.n_missed = 0
        self.n_windows = 0

    def poll(self, buffer: RingBuffer) -> list[Window]:
        """Windows complete in ``buffer`` since the last poll, oldest first."""
        windows = []
        while self._next_start + self._n_length <= buffer.n_written:
            if self._next_start < buffer.first_index:
                n_skip = -(-(buffer.first_index - self._next_start) // self._n_hop)
                self._skip(n_skip)
                continue
            window = cut_window(
                buffer, self._next_start, self._n_length, self._sfreq, "periodic"
            )
            if window is None:
                continue  # overwritten between the check and the copy: next loop skips it
            windows.append(window)
            self.n_windows += 1
            self._next_start += self._n_hop
        return windows

    def _skip(self, n_windows: int) -> None:
        logger.warning("periodic windows: %d overwritten before they were read", n_windows)
        self.n_missed += n_windows
        self._next_start += n_windows * self._n_hop

    @property
    def n_length(self) -> int:
        """Samples per window."""
        return self._n_length

    @property
    def n_hop(self) -> int:
        return self._n_hop

    @property
    def next_start(self) -> int:
        """Absolute index where the next window starts."""
        return self._next_start

    def __repr__(self) -> str:
        return (
            f"<PeriodicWindower: {self._n_length} samples every {self._n_hop} @ "
            f"{self._sfreq:g} Hz | next at {self._next_start}, {self.n_windows} cut, "
            f"{self.n_missed} missed>"
        )


class MarkerWindower:
    """A window of ``length`` seconds starting ``offset`` seconds after each marker.

    Args:
        sfreq: sampling rate in Hz.
        length, offset: seconds (offset may be negative for a pre-stimulus span).
        match: which marker descriptions make windows: None (all), a collection of exact
            descriptions, or a regular expression (string or compiled) that must match the
            whole description.
    """

    def __init__(
        self,
        sfreq: float,
        length: float = WINDOW_LENGTH,
        offset: float = MARKER_OFFSET,
        match: Collection[str] | str | re.Pattern | None = None,
    ) -> None:
        self._sfreq = float(sfreq)
        self._n_length = _n_samples(length, sfreq, "MarkerWindower: window length")
        self._n_offset = int(round(offset * sfreq))
        if isinstance(match, str):
            match = re.compile(match)
        self._match = match
        self._pending: list[tuple[int, str]] = []  # (window start, description), sorted
        self.n_missed = 0
        self.n_windows = 0

    def matches(self, description: str) -> bool:
        if self._match is None:
            return True
        if isinstance(self._match, re.Pattern):
            return self._match.fullmatch(description) is not None
        return description in self._match

    def add_marker(self, sample_index: int, description: str = "") -> bool:
        """Queue the window of a marker at ``sample_index``. Returns False if not matched."""
        if not self.matches(description):
            return False
        start = max(int(sample_index) + self._n_offset, 0)
        self._pending.append((start, description))
        self._pending.sort(key=lambda item: item[0])
        return True

    def poll(self, buffer: RingBuffer) -> list[Window]:
        """Windows of queued markers whose last sample has arrived, in marker order."""
        windows = []
        while self._pending and self._pending[0][0] + self._n_length <= buffer.n_written:
            start, description = self._pending.pop(0)
            window = cut_window(buffer, start, self._n_length, self._sfreq, "marker", description)
            if window is None:
                logger.warning(
                    "marker window at %d (%r) overwritten before read", start, description
                )
                self.n_missed += 1
                continue
            windows.append(window)
            self.n_windows += 1
        return windows

    @property
    def n_pending(self) -> int:
        return len(self._pending)

    @property
    def next_stop(self) -> int | None:
        """Absolute index after the last sample of the earliest queued window (None: none)."""
        return self._pending[0][0] + self._n_length if self._pending else None

    @property
    def n_length(self) -> int:
        return self._n_length

    @property
    def n_offset(self) -> int:
        return self._n_offset

    def __repr__(self) -> str:
        return (
            f"<MarkerWindower: {self._n_length} samples from marker{self._n_offset:+d} @ "
            f"{self._sfreq:g} Hz | {len(self._pending)} pending, {self.n_windows} cut, "
            f"{self.n_missed} missed>"
        )
