"""NaN/Inf samples in a stream: where they are, as events.

Devices and files deliver NaN or Inf now and then (a dropped packet filled with NaN, an
amplifier overflow). The raw data keep them exactly as received; the online filter isolates
them (:class:`~dd_live.stream.filters.StreamingFilter`); windows overlapping them are rejected.
:class:`NonFiniteWatch` tells the user: one ``"nonfinite"`` event where a stretch begins and one
``"finite"`` event where it ends, however many chunks it spans.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from dd_live.stream.events import StreamEvent

logger = logging.getLogger(__name__)


def nonfinite_runs(data: np.ndarray) -> list[tuple[int, int, tuple[int, ...]]]:
    """Stretches of ``(n_channels, n_times)`` where any channel is NaN/Inf.

    Returns:
        ``[(begin, end, channels), ...]``: sample range ``[begin, end)`` and the channels
        non-finite somewhere in it, ascending.
    """
    bad = ~np.isfinite(data)
    if not bad.any():
        return []
    any_bad = bad.any(axis=0)
    edges = np.diff(np.r_[0, any_bad.astype(np.int8), 0])
    begins, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [
        (int(b), int(e), tuple(int(c) for c in np.flatnonzero(bad[:, b:e].any(axis=1))))
        for b, e in zip(begins, ends, strict=True)
    ]


class NonFiniteWatch:
    """Turns NaN/Inf stretches of consecutive chunks into start and end events.

    Args:
        ch_names: names of the rows of every chunk (for the event text).
        sfreq: sampling rate in Hz (for the duration of a stretch).
    """

    def __init__(self, ch_names: Sequence[str], sfreq: float) -> None:
        self._ch_names = tuple(ch_names)
        self._sfreq = float(sfreq)
        self._open: tuple[int, float, set[int]] | None = None  # (first index, t0, channels)
        self._n_runs = 0

    def update(
        self, data: np.ndarray, first_index: int, timestamps: np.ndarray
    ) -> list[StreamEvent]:
        """Look at the next chunk ``(n_channels, n_times)`` whose first sample has absolute
        index ``first_index``; returns the events it brings."""
        if self._open is None and np.isfinite(data).all():
            return []
        events = []
        n_times = data.shape[1]
        runs = nonfinite_runs(data)
        if self._open is not None and (not runs or runs[0][0] > 0):
            events.append(self._close(first_index, float(timestamps[0])))
        for k, (begin, end, channels) in enumerate(runs):
            if self._open is None:
                events.append(self._begin(first_index + begin, float(timestamps[begin]), channels))
            else:
                self._open[2].update(channels)
            if end < n_times:
                events.append(self._close(first_index + end, float(timestamps[end])))
            elif k != len(runs) - 1:
                raise AssertionError("nonfinite_runs: only the last run can reach the end")
        return events

    def _begin(self, index: int, timestamp: float, channels: Sequence[int]) -> StreamEvent:
        self._open = (index, timestamp, set(channels))
        self._n_runs += 1
        names = self._names(channels)
        logger.warning("NaN/Inf samples from sample %d on %s: held for the filter, windows "
                       "over them are rejected", index, names)
        return StreamEvent(
            "nonfinite", index, timestamp,
            f"NaN/Inf samples on {names}: the filter holds those channels; windows overlapping "
            "them are rejected until they end",
            extra={"channels": [self._ch_names[c] for c in channels]},
        )

    def _close(self, index: int, timestamp: float) -> StreamEvent:
        first, _, channels = self._open
        self._open = None
        n = index - first
        logger.info("finite samples again at %d after %d NaN/Inf samples", index, n)
        return StreamEvent(
            "finite", index, timestamp,
            f"finite samples again after {n} NaN/Inf samples ({n / self._sfreq:.3f} s) on "
            f"{self._names(sorted(channels))}; filter restarted on those channels",
            duration=n / self._sfreq,
            extra={"n_samples": n, "channels": [self._ch_names[c] for c in sorted(channels)]},
        )

    def _names(self, channels: Sequence[int]) -> str:
        names = [self._ch_names[c] for c in channels]
        if len(names) > 6:
            return f"{len(names)} channels ({', '.join(names[:6])}, ...)"
        return ", ".join(names)

    @property
    def n_runs(self) -> int:
        """Stretches begun so far."""
        return self._n_runs

    @property
    def active(self) -> bool:
        """Inside a stretch now."""
        return self._open is not None
