"""Which mains frequency hums in the signal (50 or 60 Hz), and a filter that notches it.

A 50 Hz notch on a recording made in America (60 Hz) leaves the hum in: the model is fed mostly
mains. :class:`MainsFilter` measures the line power at 50 and 60 Hz against the spectrum just
around it in the first seconds of the stream, notches the one that hums (both until it knows,
none when neither does), and keeps measuring every ``watch_seconds``: a new hum that wins two
measurements in a row replaces the notch. Band-pass and notch run as one cascade (one
``sosfilt`` call per chunk); a new notch takes over the band-pass's state and starts warm (run
over the last second of output), so the switch leaves no transient. Each choice is queued for the session
(:meth:`MainsFilter.pop_changes`) and logged.

``__call__``, ``reset`` and ``n_channels`` are those of
:class:`~dd_live.stream.filters.StreamingFilter`, so the acquisition thread runs either.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import signal

from dd_live.errors import ConfigError
from dd_live.stream.filters import NOTCH_Q, StreamingFilter, design_filter

logger = logging.getLogger(__name__)

LINE_FREQS = (50.0, 60.0)
DETECT_SECONDS = 2.0  # s of signal measured for the first choice
WATCH_SECONDS = 10.0  # s between two later measurements
MIN_RATIO = 4.0  # line power over the power around it (median over channels) that is hum
MEASURED_CHANNELS = 16  # at most this many channels (evenly spread) are measured
WARM_SECONDS = 1.0  # s of history a new notch is run over before it takes over
PEAK_HALF_WIDTH = 1.0  # Hz around the line frequency counted as the line
REF_BAND = (2.0, 6.0)  # Hz away from the line frequency, both sides: the reference spectrum


def line_noise_ratios(
    data: np.ndarray, sfreq: float, freqs: Sequence[float] = LINE_FREQS
) -> dict[float, float]:
    """Power at each line frequency over the power around it, median over channels.

    Args:
        data: ``(n_channels, n_times)``, at least one second; channels with NaN/Inf are left
            out.
        sfreq: sampling rate in Hz.
        freqs: candidate line frequencies (those too close to Nyquist are skipped).

    Returns:
        ``{freq: ratio}`` (1 means no peak; hum gives tens to thousands); empty when no
        channel is usable.
    """
    data = data[np.isfinite(data).all(axis=1)]
    if data.shape[0] == 0 or data.shape[1] < int(sfreq):
        return {}
    nperseg = int(sfreq)  # 1 Hz bins
    spectrum_freqs, psd = signal.welch(data, sfreq, nperseg=nperseg, axis=-1)
    ratios = {}
    for freq in freqs:
        if freq + PEAK_HALF_WIDTH >= sfreq / 2:
            continue
        distance = np.abs(spectrum_freqs - freq)
        peak = psd[:, distance <= PEAK_HALF_WIDTH].mean(axis=1)
        near = (distance >= REF_BAND[0]) & (distance <= REF_BAND[1])
        around = psd[:, near & (spectrum_freqs < sfreq / 2 - PEAK_HALF_WIDTH)]
        reference = np.median(around, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(reference > 0, peak / reference, 1.0)
        ratios[float(freq)] = float(np.median(ratio))
    return ratios


@dataclass(frozen=True)
class MainsChoice:
    """One decision of :class:`MainsFilter`.

    Attributes:
        sample_index: samples the filter had seen when it decided.
        freq: the notched line frequency, or None (no hum found: no notch).
        ratios: the measured ``{freq: line power / power around it}``.
        message: one readable line.
    """

    sample_index: int
    freq: float | None
    ratios: dict = field(default_factory=dict)
    message: str = ""


class MainsFilter:
    """Band-pass plus a notch at the mains frequency measured in the signal.

    Args:
        band_sos: the band-pass sections (:func:`design_filter` without notch), or None.
        n_channels: rows of every chunk.
        sfreq: sampling rate in Hz.
        rows: the rows measured (the EEG channels; default all).
        harmonics: notch the multiples of the line frequency below Nyquist too.
        detect_seconds: signal measured for the first choice.
        watch_seconds: signal between two later measurements (0: decide once).
        min_ratio: line power over the power around it that counts as hum.
        dtype: of the filters (see :class:`StreamingFilter`).
    """

    def __init__(
        self,
        band_sos: np.ndarray | None,
        n_channels: int,
        sfreq: float,
        *,
        rows: Sequence[int] | None = None,
        harmonics: bool = False,
        detect_seconds: float = DETECT_SECONDS,
        watch_seconds: float = WATCH_SECONDS,
        min_ratio: float = MIN_RATIO,
        dtype: type | str = np.float64,
    ) -> None:
        if not sfreq > 0:
            raise ConfigError(f"MainsFilter: sfreq must be > 0 Hz, got {sfreq}")
        if not detect_seconds >= 1:
            raise ConfigError(f"MainsFilter: detect_seconds must be >= 1 s, got {detect_seconds}")
        self._sfreq = float(sfreq)
        self._n_channels = int(n_channels)
        self._rows = None if rows is None else np.asarray(rows, dtype=np.intp)
        self._harmonics = bool(harmonics)
        self._dtype = dtype
        self._candidates = tuple(f for f in LINE_FREQS if f + PEAK_HALF_WIDTH < sfreq / 2)
        self._n_band = 0 if band_sos is None else np.atleast_2d(band_sos).shape[0]
        self._band_sos = band_sos
        self._detect_n = int(round(detect_seconds * sfreq))
        self._watch_n = int(round(watch_seconds * sfreq))
        self._min_ratio = float(min_ratio)
        self._warm_n = int(round(WARM_SECONDS * sfreq))
        self._raw: deque[np.ndarray] = deque()  # recent raw chunks, for measuring
        self._n_raw = 0
        self._history: deque[np.ndarray] = deque()  # recent output, for warm starts
        self._n_history = 0
        self._n_seen = 0
        self._next_check = self._detect_n
        self._decided = False
        self._freq: float | None = None
        self._challenger: float | None = None
        self._changes: deque[MainsChoice] = deque()
        notch = self._notch_sos(self._candidates)  # both until it knows
        parts = [p for p in (band_sos, notch) if p is not None]
        self._filt = (StreamingFilter(np.concatenate(parts, axis=0), n_channels, sfreq=sfreq,
                                      dtype=dtype) if parts else None)

    # -- filtering -------------------------------------------------------------------------
    def __call__(self, chunk: np.ndarray) -> np.ndarray:
        """Filter the next chunk ``(n_channels, n_times)`` (see :class:`StreamingFilter`)."""
        out = self._filt(chunk) if self._filt is not None else np.array(chunk, np.float64)
        if chunk.shape[1] == 0:
            return out
        # a copy: a source may hand out views of a buffer it reuses
        self._keep(self._raw, np.array(chunk, np.float64), "_n_raw", max(self._detect_n, 1))
        self._keep(self._history, out, "_n_history", self._warm_n)
        self._n_seen += chunk.shape[1]
        if self._n_seen >= self._next_check and self._candidates:
            self._measure()
        return out

    def _keep(self, store: deque, chunk: np.ndarray, counter: str, limit: int) -> None:
        store.append(chunk)
        total = getattr(self, counter) + chunk.shape[1]
        while store and total - store[0].shape[1] >= limit:
            total -= store.popleft().shape[1]
        setattr(self, counter, total)

    def _notch_sos(self, freqs: Sequence[float]) -> np.ndarray | None:
        sections = [
            design_filter(self._sfreq, None, None, notch=f, notch_harmonics=self._harmonics,
                          notch_q=NOTCH_Q)
            for f in freqs
        ]
        return np.concatenate(sections, axis=0) if sections else None

    def _measure(self) -> None:
        self._next_check = self._n_seen + (self._watch_n if self._watch_n > 0 else 1 << 62)
        block = np.concatenate(list(self._raw), axis=1)[:, -self._detect_n:]
        rows = np.arange(block.shape[0]) if self._rows is None else self._rows
        if len(rows) > MEASURED_CHANNELS:  # the median over 16 channels is enough
            rows = rows[np.linspace(0, len(rows) - 1, MEASURED_CHANNELS).round().astype(int)]
        block = block[rows]
        ratios = line_noise_ratios(block, self._sfreq, self._candidates)
        if not ratios:  # nothing usable (NaN everywhere): measure again soon
            self._next_check = self._n_seen + self._detect_n
            return
        best = max(ratios, key=ratios.get)
        hum = best if ratios[best] >= self._min_ratio else None
        shown = ", ".join(f"{f:g} Hz {r:.1f}x" for f, r in sorted(ratios.items()))
        if not self._decided:
            self._decided = True
            if hum is None:
                message = (f"no mains hum found (line power / around it: {shown}); no notch, "
                           "still watching")
            else:
                message = f"mains hum at {hum:g} Hz ({shown}); notching {hum:g} Hz" + (
                    " and harmonics" if self._harmonics else "")
            self._switch(hum, ratios, message)
            return
        if hum is None or hum == self._freq:
            self._challenger = None
            return
        if self._challenger != hum:  # must win twice in a row
            self._challenger = hum
            return
        self._challenger = None
        message = (f"mains hum now at {hum:g} Hz ({shown}); notch moved from "
                   f"{'none' if self._freq is None else f'{self._freq:g} Hz'} to {hum:g} Hz")
        self._switch(hum, ratios, message)

    def _switch(self, freq: float | None, ratios: dict, message: str) -> None:
        logger.info("%s", message)
        self._freq = freq
        sos = self._notch_sos([] if freq is None else [freq])
        zi = None
        if sos is not None and self._history:  # warm start: the new notch over recent output
            warm = StreamingFilter(sos, self._n_channels, sfreq=self._sfreq, dtype=self._dtype)
            warm(np.concatenate(list(self._history), axis=1))
            zi = warm.state
        if self._filt is not None:
            self._filt = self._filt.replace_tail(self._n_band, sos, zi)
        elif sos is not None:
            self._filt = StreamingFilter(sos, self._n_channels, sfreq=self._sfreq,
                                         dtype=self._dtype)
        self._changes.append(MainsChoice(self._n_seen, freq, dict(ratios), message))

    def reset(self) -> None:
        """Forget the filter state (a gap); the mains choice stays."""
        if self._filt is not None:
            self._filt.reset()
        self._history.clear()
        self._n_history = 0

    # -- what others read ------------------------------------------------------------------
    def pop_changes(self) -> list[MainsChoice]:
        """The choices made since the last call (thread-safe: one reader)."""
        changes = []
        while self._changes:
            changes.append(self._changes.popleft())
        return changes

    @property
    def freq(self) -> float | None:
        """The notched line frequency; None before the first choice or without hum."""
        return self._freq

    @property
    def decided(self) -> bool:
        return self._decided

    @property
    def sos(self) -> np.ndarray | None:
        """The cascade running now: band-pass sections, then the notch's."""
        return None if self._filt is None else self._filt.sos

    @property
    def n_channels(self) -> int:
        return self._n_channels

    @property
    def sfreq(self) -> float:
        return self._sfreq

    def __repr__(self) -> str:
        if not self._decided:
            state = f"measuring ({'+'.join(f'{f:g}' for f in self._candidates) or 'none'} Hz)"
        else:
            state = "no notch" if self._freq is None else f"notch {self._freq:g} Hz"
        return f"<MainsFilter: {self._n_channels} ch @ {self._sfreq:g} Hz | {state}>"
