"""From a window of the device to exactly what the model eats.

The reference model sees 440 ms of EEG stretched to 512 samples, 128 channels, standardised
per channel. :class:`WindowPreprocessor` does: pick the EEG channels, replace the bad ones
(interpolated from the good ones), map them to the model's channels, resample to its length,
standardise, float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from math import gcd

import numpy as np
from scipy import signal

from dd_live.errors import ConfigError, MontageError
from dd_live.sources.base import StreamInfo
from dd_live.stream.channels import ChannelMapper, ChannelRepair, looks_non_eeg, normalize_name
from dd_live.stream.windows import Window

logger = logging.getLogger(__name__)

MODEL_CHANNELS = 128
MODEL_TIMES = 512
RESAMPLE_METHODS = ("linear", "fft", "poly")
MIN_WINDOW_TIMES = 8  # fewer samples than this cannot be stretched into a meaningful window
STD_FLOOR = 1e-12  # channels with a smaller std are constant: standardised to zeros


def resample_window(
    data: np.ndarray, n_times: int = MODEL_TIMES, method: str = "linear"
) -> np.ndarray:
    """Stretch or squeeze ``(n_channels, n)`` to ``(n_channels, n_times)`` float64.

    ``"linear"`` is the reference's: linear interpolation on a grid whose first and last
    points fall on the first and last sample (endpoints kept). ``"fft"`` is
    ``scipy.signal.resample`` (assumes a periodic window), ``"poly"`` is
    ``scipy.signal.resample_poly`` (anti-aliased rational resampling).
    """
    if method not in RESAMPLE_METHODS:
        raise ConfigError(
            f"resample_window: method must be one of {RESAMPLE_METHODS}, got {method!r}"
        )
    if data.ndim != 2:
        raise ValueError(f"resample_window: data must be (n_channels, n_times), got {data.shape}")
    n = data.shape[1]
    if n < 2 or n_times < 2:
        raise ConfigError(f"resample_window: need >= 2 samples in and out, got {n} -> {n_times}")
    data = np.asarray(data, dtype=np.float64)
    if n == n_times:
        return data.copy()
    if method == "fft":
        return signal.resample(data, n_times, axis=-1)
    if method == "poly":
        common = gcd(n, n_times)
        return signal.resample_poly(data, n_times // common, n // common, axis=-1)
    where = np.linspace(0.0, n - 1, n_times)
    left = np.minimum(where.astype(np.intp), n - 2)
    frac = where - left
    return data[:, left] * (1.0 - frac) + data[:, left + 1] * frac


def standardize(data: np.ndarray) -> np.ndarray:
    """Per-channel z-score of ``(n_channels, n_times)`` as float32; constant channels -> 0."""
    data = np.asarray(data, dtype=np.float64)
    mean = data.mean(axis=1, keepdims=True)
    std = data.std(axis=1, keepdims=True)
    flat = std < STD_FLOOR
    out = (data - mean) / np.where(flat, 1.0, std)
    out[np.broadcast_to(flat, out.shape)] = 0.0
    return out.astype(np.float32)


class WindowPreprocessor:
    """``Window`` from a source -> ``(n_channels, n_times)`` float32 input of the model.

    Args:
        source_info: what the source delivers (names, types, rate).
        n_channels, n_times: the model's input shape.
        target_names: the model's channel names (for name matching / spline), or None.
        channel_method: ``"replicate"`` or ``"spline"`` (see :class:`ChannelMapper`).
        resample: see :func:`resample_window`.
        eeg_only: keep only EEG channels: typed ``"eeg"`` and not named like EOG, ECG, EMG,
            a mastoid/ear reference or a trigger (see :func:`looks_non_eeg`).
        montage: passed to :class:`ChannelMapper` for ``"spline"`` and to the repair.
        exclude: source channel names never used (case-insensitive).
        include: source channel names used even if their type or name says non-EEG.
        repair: build a :class:`ChannelRepair` over the channels the model reads, so that
            ``__call__(window, bad=...)`` can replace bad ones.
    """

    def __init__(
        self,
        source_info: StreamInfo,
        n_channels: int = MODEL_CHANNELS,
        n_times: int = MODEL_TIMES,
        target_names: Sequence[str] | None = None,
        channel_method: str = "replicate",
        resample: str = "linear",
        eeg_only: bool = True,
        *,
        montage=None,
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
        repair: bool = False,
    ) -> None:
        if resample not in RESAMPLE_METHODS:
            raise ConfigError(
                f"WindowPreprocessor: resample must be one of {RESAMPLE_METHODS}, got {resample!r}"
            )
        if target_names is not None and len(target_names) != n_channels:
            raise MontageError(
                f"WindowPreprocessor: the model takes {n_channels} channels but "
                f"{len(target_names)} target names were given: pass exactly one name per "
                "model channel"
            )
        excluded = {normalize_name(name) for name in exclude}
        included = {normalize_name(name) for name in include}
        known = {normalize_name(name) for name in source_info.ch_names}
        for label, names in (("exclude", excluded), ("include", included)):
            unknown = sorted(names - known)
            if unknown:
                logger.warning("[channels] %s names %s, which %r does not have (it has %s)",
                               label, ", ".join(unknown), source_info.name,
                               ", ".join(source_info.ch_names[:16]))
        picks, dropped = [], []
        for i, (name, kind) in enumerate(zip(source_info.ch_names, source_info.ch_types,
                                             strict=True)):
            key = normalize_name(name)
            if key in excluded:
                continue
            if key in included or not eeg_only:
                picks.append(i)
            elif kind.lower() == "eeg":
                if looks_non_eeg(name):
                    dropped.append(name)
                else:
                    picks.append(i)
        if dropped:
            logger.info("not fed to the model (named like non-EEG channels; [channels] include "
                        "to use them): %s", ", ".join(dropped))
        if not picks:
            raise MontageError(
                f"WindowPreprocessor: source {source_info.name!r} has no EEG channel to feed "
                f"the model (types: {', '.join(sorted(set(source_info.ch_types)))}"
                + (f"; excluded: {', '.join(sorted(excluded))}" if excluded else "")
                + "): set the channel types of the source, list channels in [channels] "
                "include, or use eeg_only=False"
            )
        self._info = source_info
        self._picks = np.asarray(picks, dtype=np.intp)
        self._n_channels = int(n_channels)
        self._n_times = int(n_times)
        self._resample = resample
        names = [source_info.ch_names[i] for i in picks]
        target = list(target_names) if target_names is not None else self._n_channels
        self._mapper = ChannelMapper(names, target, channel_method, montage)
        self._used = self._mapper.used  # indices into picks
        self._repair = (
            ChannelRepair([names[i] for i in self._used], montage=montage) if repair else None
        )

    def __call__(self, window: Window, bad: Sequence[int] = ()) -> np.ndarray:
        """``window.data (n_source, n)`` -> ``(n_channels, n_times)`` float32, finite.

        Args:
            window: from the filtered ring buffer.
            bad: channels to replace, as indices into :attr:`used_rows` (needs ``repair``).
        """
        info = self._info
        if window.n_channels != info.n_channels:
            raise MontageError(
                f"WindowPreprocessor: the window has {window.n_channels} channels but was "
                f"set up for {info.n_channels} from {info.name!r}: rebuild it with the "
                "window's StreamInfo"
            )
        if not np.isclose(window.sfreq, info.sfreq):
            raise MontageError(
                f"WindowPreprocessor: the window is sampled at {window.sfreq:g} Hz but it was "
                f"set up for {info.sfreq:g} Hz from {info.name!r}: rebuild it with the "
                "window's StreamInfo"
            )
        if window.n_times < MIN_WINDOW_TIMES:
            raise MontageError(
                f"WindowPreprocessor: a {window.n_times}-sample window ({window.duration:.3f} s "
                f"at {window.sfreq:g} Hz) is too short to stretch to {self._n_times} model "
                f"samples (need >= {MIN_WINDOW_TIMES}): use a longer window or a faster device"
            )
        data = window.data[self._picks]
        bad = sorted(int(ch) for ch in bad)
        if bad:
            if self._repair is None:
                raise ConfigError(
                    "WindowPreprocessor: bad channels given but it was built without repair: "
                    "build it with repair=True"
                )
            data = data.copy()
            data[self._used] = self._repair(data[self._used], bad)
        if not np.isfinite(data[self._used]).all():  # channels the model never reads may be NaN
            raise ConfigError(
                "WindowPreprocessor: the window holds NaN/Inf samples; check it with "
                "QualityChecker first and skip windows it rejects"
            )
        mapped = self._mapper(data)
        return standardize(resample_window(mapped, self._n_times, self._resample))

    @property
    def mapper(self) -> ChannelMapper:
        return self._mapper

    @property
    def picks(self) -> np.ndarray:
        """Indices of the source channels picked (EEG, not excluded)."""
        return self._picks.copy()

    @property
    def used_rows(self) -> np.ndarray:
        """Indices of the source channels the model actually reads (after mapping), ascending:
        the channels whose quality matters."""
        return self._picks[self._used]

    def nonfinite_samples(self, window: Window, bad: Sequence[int] = ()) -> int:
        """NaN/Inf samples of ``window.data (n_source, n)`` on the channels the model reads
        (:attr:`used_rows`), leaving out ``bad`` ones (indices into :attr:`used_rows`, replaced
        before use). A window with any is no model input: the live session rejects it and
        training (:func:`dd_live.calibration.session_epochs`) skips it, through this one check."""
        rows = np.delete(self.used_rows, sorted(int(ch) for ch in bad))
        return int((~np.isfinite(window.data[rows])).sum())

    @property
    def repair(self) -> ChannelRepair | None:
        return self._repair

    def describe(self) -> list[tuple[str, str, str]]:
        """``(model channel, source channel, how)`` per model channel (see
        :meth:`ChannelMapper.describe`)."""
        return self._mapper.describe()

    @property
    def output_shape(self) -> tuple[int, int]:
        return (self._n_channels, self._n_times)

    def __repr__(self) -> str:
        return (
            f"<WindowPreprocessor: {len(self._picks)} of {self._info.n_channels} ch @ "
            f"{self._info.sfreq:g} Hz -> {self._n_channels} x {self._n_times} | "
            f"{self._mapper!r}, resample={self._resample}>"
        )
