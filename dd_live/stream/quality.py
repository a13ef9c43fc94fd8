"""Is a window clean enough to show the model? Per-channel checks with readable reasons.

A fixed 100 µV peak-to-peak rule flags nearly every window of real recordings, so the default
compares each channel's peak-to-peak with the running median of its own recent windows (a robust
z-score); the fixed rule is an option.

A channel that is broken for seconds (unplugged, railed, far noisier than the others) is not a
reason to throw windows away: :class:`BadChannelTracker` marks it bad so that it is replaced for
the model (interpolated from the others); :class:`QualityChecker` then judges the remaining
channels (``skip=``). Only too many bad channels at once reject a window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

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

    def check(self, data: np.ndarray, skip: Sequence[int] = ()) -> QualityResult:
        """Check one window ``(n_channels, n_times)``; updates the adaptive history.

        Args:
            data: the window, volts.
            skip: channels not judged (replaced for the model anyway); their history is kept.
        """
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
        skipped = {int(ch) for ch in skip}
        finite = np.isfinite(data)
        for ch in np.flatnonzero(~finite.all(axis=1)):
            if int(ch) in skipped:
                continue
            n_bad = int((~finite[ch]).sum())
            problems[ch] = (
                f"{n_bad} of {data.shape[1]} samples NaN/Inf (non-finite samples from the "
                "source: the window overlaps them)"
            )
        clean = np.where(finite, data, 0.0)
        std = clean.std(axis=1)
        ptp = np.ptp(clean, axis=1)
        for ch in range(n_channels):
            if ch in problems or ch in skipped:
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


BAD_MODES = ("auto", "off")
NOISY_RATIO = 8.0  # a channel whose std is this many times the median of the others is noisy
BAD_SECONDS = 2.0  # s a problem must last before a channel is marked bad (and clean to unmark)
MIN_FOR_NOISE = 3  # channels needed to compare one with the others


@dataclass(frozen=True)
class ChannelVerdict:
    """What :meth:`BadChannelTracker.update` concluded for one window.

    Attributes:
        replace: channels to replace for the model in this window (marked bad, or broken in
            this window already), ascending.
        marked: channels marked bad now (a problem that lasted ``bad_seconds``), ascending.
        reasons: ``{channel: "flat (std 0 V)"}`` for every channel with a problem now.
        newly_bad: channels marked bad by this window, with their reason.
        newly_good: channels unmarked by this window.
        too_many: more channels to replace than allowed: reject the window; the text says why.
    """

    replace: tuple[int, ...] = ()
    marked: tuple[int, ...] = ()
    reasons: dict = field(default_factory=dict)
    newly_bad: tuple[tuple[int, str], ...] = ()
    newly_good: tuple[int, ...] = ()
    too_many: str = ""


class BadChannelTracker:
    """Marks channels bad after seconds of being flat, railed or far noisier than the others.

    Fed one window at a time (the channels the model reads, ``(n_channels, n_times)``, volts,
    filtered). A channel with a problem in a window is replaced in that window already; once
    the problem has lasted ``bad_seconds`` (sample time, from the windows' positions) it is
    *marked* bad and stays replaced until it has been clean for ``bad_seconds``. A channel
    with NaN/Inf samples is not replaced at once (windows overlapping them are rejected), but
    one that delivers nothing else for ``bad_seconds`` is marked bad and replaced from then on.

    Args:
        sfreq: sampling rate in Hz.
        ch_names: names of the rows, for the reasons.
        flat_std: a standard deviation below this (volts) is flat (railed channels are flat
            after the band-pass).
        noisy_ratio: a standard deviation above this many times the median of the channels
            is noise (needs at least ``MIN_FOR_NOISE`` channels).
        bad_seconds: how long a problem (or its absence) must last to mark (or unmark).
        max_bad: how many channels may be replaced in one window: a fraction of the channels
            (``< 1``) or a count (``>= 1``); more rejects the window.
    """

    def __init__(
        self,
        sfreq: float,
        ch_names: Sequence[str],
        *,
        flat_std: float = 1e-7,
        noisy_ratio: float = NOISY_RATIO,
        bad_seconds: float = BAD_SECONDS,
        max_bad: float = 0.25,
    ) -> None:
        if not sfreq > 0:
            raise ConfigError(f"BadChannelTracker: sfreq must be > 0 Hz, got {sfreq}")
        if not noisy_ratio > 1:
            raise ConfigError(f"BadChannelTracker: noisy_ratio must be > 1, got {noisy_ratio}")
        if not bad_seconds >= 0:
            raise ConfigError(f"BadChannelTracker: bad_seconds must be >= 0, got {bad_seconds}")
        if not max_bad >= 0:
            raise ConfigError(f"BadChannelTracker: max_bad must be >= 0, got {max_bad}")
        self._sfreq = float(sfreq)
        self._ch_names = tuple(ch_names)
        n = len(self._ch_names)
        self._flat_std = float(flat_std)
        self._noisy_ratio = float(noisy_ratio)
        self._bad_seconds = float(bad_seconds)
        self._max_bad = int(max_bad) if max_bad >= 1 else int(np.floor(max_bad * n))
        self._problem_since: list[float | None] = [None] * n
        self._clean_since: list[float | None] = [None] * n
        self._marked = np.zeros(n, dtype=bool)
        self._forced: set[int] = set()

    def update(
        self, data: np.ndarray, stop_index: int, raw: np.ndarray | None = None
    ) -> ChannelVerdict:
        """Judge one window ``(n_channels, n_times)`` whose last sample has absolute index
        ``stop_index - 1``; returns what to replace and what changed.

        Args:
            data: the filtered window.
            stop_index: absolute index one past its last sample.
            raw: the same window as received (before the filter), when at hand: a channel
                stuck at one value (unplugged, railed) is flat there from the first sample,
                while the band-pass still rings from the step into it.
        """
        n = len(self._ch_names)
        if data.ndim != 2 or data.shape[0] != n:
            raise ValueError(
                f"BadChannelTracker.update: expected ({n} channels, n_times), got {data.shape}"
            )
        now = stop_index / self._sfreq
        length = data.shape[1] / self._sfreq
        reasons = self._problems(data, raw)
        no_data = {ch for ch, why in reasons.items() if why.startswith("no data")}
        newly_bad, newly_good = [], []
        for ch in range(n):
            if ch in reasons:
                self._clean_since[ch] = None
                if self._problem_since[ch] is None:
                    self._problem_since[ch] = now - length
                lasted = now - self._problem_since[ch]
                if not self._marked[ch] and lasted >= self._bad_seconds:
                    self._marked[ch] = True
                    newly_bad.append((ch, reasons[ch]))
            elif np.isfinite(data[ch]).all():
                self._problem_since[ch] = None
                if self._clean_since[ch] is None:
                    self._clean_since[ch] = now - length
                lasted = now - self._clean_since[ch]
                if self._marked[ch] and lasted >= self._bad_seconds and ch not in self._forced:
                    self._marked[ch] = False
                    newly_good.append(ch)
        marked = set(np.flatnonzero(self._marked).tolist()) | self._forced
        replace = tuple(sorted(marked | (set(reasons) - no_data)))
        too_many = ""
        if len(replace) > self._max_bad:
            listed = ", ".join(
                f"{self._ch_names[ch]} {reasons.get(ch, 'marked bad')}" for ch in replace[:8]
            )
            too_many = (
                f"{len(replace)} of {n} channels bad ({listed}{', ...' if len(replace) > 8 else ''})"
                f", at most {self._max_bad} can be interpolated: check the electrodes, or raise "
                "[channels] max_bad"
            )
        return ChannelVerdict(
            replace, tuple(sorted(marked)), reasons, tuple(newly_bad), tuple(newly_good),
            too_many,
        )

    def _problems(self, data: np.ndarray, raw: np.ndarray | None = None) -> dict[int, str]:
        finite = np.isfinite(data)
        clean = np.where(finite, data, 0.0)
        std = clean.std(axis=1)
        all_finite = finite.all(axis=1)
        flat = all_finite & (std < self._flat_std)
        if raw is not None and raw.shape == data.shape:
            raw_finite = np.isfinite(raw).all(axis=1)
            raw_std = np.where(raw_finite[:, None], raw, 0.0).std(axis=1)
            flat |= raw_finite & (raw_std < self._flat_std)
            std = np.where(flat, np.minimum(std, raw_std), std)
        reasons: dict[int, str] = {}
        for ch in np.flatnonzero(~finite.any(axis=1)):
            reasons[int(ch)] = "no data (only NaN/Inf samples)"
        for ch in np.flatnonzero(flat):
            reasons[int(ch)] = f"flat (std {_volts(std[ch])}: unplugged, railed or bridged)"
        judged = np.flatnonzero(all_finite & ~flat)
        if judged.size >= MIN_FOR_NOISE:
            median = float(np.median(std[judged]))
            for ch in judged[std[judged] > self._noisy_ratio * median]:
                reasons[int(ch)] = (
                    f"noisy (std {_volts(std[ch])}, {std[ch] / median:.0f}x the median "
                    f"{_volts(median)} of the channels)"
                )
        return reasons

    def set_forced(self, channels: Sequence[int]) -> None:
        """Channels the user marked bad by hand (always replaced), replacing the previous set."""
        self._forced = {int(ch) for ch in channels}

    def reset(self) -> None:
        """Forget everything (a new montage)."""
        n = len(self._ch_names)
        self._problem_since = [None] * n
        self._clean_since = [None] * n
        self._marked[:] = False

    @property
    def marked(self) -> tuple[int, ...]:
        """Channels marked bad now (automatically or by hand)."""
        return tuple(sorted(set(np.flatnonzero(self._marked).tolist()) | self._forced))

    @property
    def forced(self) -> tuple[int, ...]:
        """Channels marked bad by hand."""
        return tuple(sorted(self._forced))

    @property
    def max_bad(self) -> int:
        return self._max_bad

    @property
    def ch_names(self) -> tuple[str, ...]:
        return self._ch_names

    def __repr__(self) -> str:
        return (
            f"<BadChannelTracker: {len(self._ch_names)} ch @ {self._sfreq:g} Hz | "
            f"{len(self.marked)} marked bad, at most {self._max_bad} replaced>"
        )


def _longest_run(x: np.ndarray) -> tuple[int, float]:
    """Length and value of the longest run of one repeated value in ``x`` (n_times,)."""
    edges = np.r_[-1, np.flatnonzero(np.diff(x) != 0), x.shape[0] - 1]
    longest = int(np.argmax(np.diff(edges)))
    return int(edges[longest + 1] - edges[longest]), float(x[edges[longest] + 1])
