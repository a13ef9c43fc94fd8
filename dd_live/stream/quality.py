"""Is a window clean enough to show the model? Per-channel checks with readable reasons.

A fixed 100 µV peak-to-peak rule flags nearly every window of real recordings (see
../shared/REALTIME.md), so the default compares each channel's peak-to-peak with the running
median of its own recent windows (a robust z-score); the fixed rule is an option.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dd_live.errors import ConfigError

MODES = ("adaptive", "fixed")
MAD_TO_STD = 1.4826  # MAD of a normal distribution times this is its standard deviation
MIN_HISTORY = 5  # windows a channel needs before its adaptive threshold applies
MAD_FLOOR = 0.05  # the spread used is at least this fraction of the median (steady history)
SATURATION_RUN = 0.1  # s of one repeated value that counts as clipping
VOLTS_ZERO = 1e-12  # smaller values are rounding noise, shown as 0 V


@dataclass(frozen=True)
class QualityResult:
    """Verdict on one window.

    Attributes:
        ok: no reason to reject it.
        reasons: one readable line per problem, e.g. ``"channel Fz: flat (std 0 V)"``.
        bad_channels: indices of the channels with a problem, ascending.
    """

    ok: bool
    reasons: tuple[str, ...] = ()
    bad_channels: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.ok == bool(self.reasons):
            raise ValueError("QualityResult: ok must be True exactly when there are no reasons")

    def __str__(self) -> str:
        return "ok" if self.ok else "; ".join(self.reasons)


def _volts(value: float) -> str:
    """``2.5e-05`` -> ``"25 µV"``; below ``VOLTS_ZERO`` -> ``"0 V"``."""
    for scale, unit in ((1.0, "V"), (1e-3, "mV"), (1e-6, "µV"), (1e-9, "nV")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return "0 V" if abs(value) < VOLTS_ZERO else f"{value:.3g} V"


class QualityChecker:
    """Checks windows ``(n_channels, n_times)`` in volts, keeping per-channel history.

    Args:
        sfreq: sampling rate in Hz (for the length of a clipped run).
        mode: ``"adaptive"`` (robust z of each channel's peak-to-peak against its own recent
            windows) or ``"fixed"`` (peak-to-peak above ``max_ptp``).
        max_ptp: fixed peak-to-peak limit in volts.
        flat_std: a channel with a standard deviation below this (volts) is flat.
        saturation: |value| at or above this (volts) is clipping; None skips the check.
            Runs of one repeated value longer than ``SATURATION_RUN`` s always count.
        z_threshold: robust z above which a channel's peak-to-peak is an outlier.
        history: windows remembered per channel. Every finite, non-flat window enters it, so
            a lasting change of level becomes the new normal after about ``history / 2``
            windows; until a channel has ``MIN_HISTORY`` windows the adaptive rule passes it.
        ch_names: names used in the reasons (default ``"#3"``).
    """

    def __init__(
        self,
        sfreq: float,
        *,
        mode: str = "adaptive",
        max_ptp: float = 100e-6,
        flat_std: float = 1e-7,
        saturation: float | None = None,
        z_threshold: float = 6.0,
        history: int = 60,
        ch_names: Sequence[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"QualityChecker: mode must be one of {MODES}, got {mode!r}")
        if not sfreq > 0:
            raise ConfigError(f"QualityChecker: sfreq must be > 0 Hz, got {sfreq}")
        if history < MIN_HISTORY:
            raise ConfigError(
                f"QualityChecker: history must be >= {MIN_HISTORY} windows, got {history}"
            )
        self._sfreq = float(sfreq)
        self._mode = mode
        self._max_ptp = float(max_ptp)
        self._flat_std = float(flat_std)
        self._saturation = saturation
        self._z_threshold = float(z_threshold)
        self._history_len = int(history)
        self._ch_names = tuple(ch_names) if ch_names is not None else None
        self._run_len = max(int(round(SATURATION_RUN * sfreq)), 3)
        self._history: list[deque[float]] = []

    def check(self, data: np.ndarray) -> QualityResult:
        """Check one window ``(n_channels, n_times)``; updates the adaptive history."""
        if data.ndim != 2 or data.shape[1] < 2:
            raise ValueError(
                f"QualityChecker.check: data must be (n_channels, n_times >= 2), got {data.shape}"
            )
        n_channels = data.shape[0]
        if self._ch_names is not None and len(self._ch_names) != n_channels:
            raise ConfigError(
                f"QualityChecker: {len(self._ch_names)} channel names but the window has "
                f"{n_channels} channels"
            )
        if len(self._history) != n_channels:
            self._history = [deque(maxlen=self._history_len) for _ in range(n_channels)]

        problems: dict[int, str] = {}
        finite = np.isfinite(data)
        for ch in np.flatnonzero(~finite.all(axis=1)):
            n_bad = int((~finite[ch]).sum())
            problems[ch] = (
                f"{n_bad} of {data.shape[1]} samples NaN/Inf (missing data: check the "
                "connection, or drop windows that overlap a gap)"
            )
        clean = np.where(finite, data, 0.0)
        std = clean.std(axis=1)
        ptp = np.ptp(clean, axis=1)
        for ch in range(n_channels):
            if ch in problems:
                continue
            reason = self._channel_problem(ch, clean[ch], std[ch], ptp[ch])
            if reason:
                problems[ch] = reason
            if std[ch] >= self._flat_std:
                self._history[ch].append(float(ptp[ch]))

        bad = tuple(sorted(int(ch) for ch in problems))
        reasons = tuple(f"channel {self._name(ch)}: {problems[ch]}" for ch in bad)
        return QualityResult(not reasons, reasons, bad)

    def _channel_problem(self, ch: int, x: np.ndarray, std: float, ptp: float) -> str:
        if std < self._flat_std:
            return f"flat (std {_volts(std)})"
        if self._saturation is not None:
            peak = float(np.abs(x).max())
            if peak >= self._saturation:
                return f"saturated (|x| reached {_volts(peak)} >= {_volts(self._saturation)})"
        run, value = _longest_run(x)
        if run >= self._run_len:
            return f"saturated ({run} samples stuck at {_volts(value)})"
        if self._mode == "fixed":
            if ptp > self._max_ptp:
                return f"peak-to-peak {_volts(ptp)} > {_volts(self._max_ptp)} (fixed threshold)"
            return ""
        history = self._history[ch]
        if len(history) < MIN_HISTORY:
            return ""
        median = float(np.median(history))
        spread = MAD_TO_STD * float(np.median(np.abs(np.asarray(history) - median)))
        spread = max(spread, MAD_FLOOR * median)
        z = (ptp - median) / spread
        if z > self._z_threshold:
            return (
                f"peak-to-peak {_volts(ptp)} is {z:.1f} robust SDs above its recent median "
                f"{_volts(median)} (adaptive threshold z > {self._z_threshold:g})"
            )
        return ""

    def _name(self, ch: int) -> str:
        return self._ch_names[ch] if self._ch_names is not None else f"#{ch}"

    def reset(self) -> None:
        """Forget the adaptive history (after a montage change or a long gap)."""
        self._history = []

    @property
    def mode(self) -> str:
        return self._mode

    def __repr__(self) -> str:
        n_hist = min((len(h) for h in self._history), default=0)
        return (
            f"<QualityChecker: {self._mode} @ {self._sfreq:g} Hz | "
            f"z > {self._z_threshold:g}, {n_hist}/{self._history_len} windows of history>"
        )


def _longest_run(x: np.ndarray) -> tuple[int, float]:
    """Length and value of the longest run of one repeated value in ``x`` (n_times,)."""
    edges = np.r_[-1, np.flatnonzero(np.diff(x) != 0), x.shape[0] - 1]
    longest = int(np.argmax(np.diff(edges)))
    return int(edges[longest + 1] - edges[longest]), float(x[edges[longest] + 1])
