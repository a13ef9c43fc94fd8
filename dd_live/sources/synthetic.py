"""A synthetic EEG source with class-coded "states", for demos, tests and training smoke runs.

The background looks like scalp EEG: 1/f noise on every channel, a posterior alpha rhythm
(~10 Hz, slowly waxing and waning), occasional eye blinks on frontal channels and 50 Hz line
noise. On top of it one :class:`SyntheticState` may be active: its own spectral peak, its own
spatial pattern over channels and an evoked waveform repeating every :data:`ERP_PERIOD`
seconds. The states are distinct enough for a small model to tell them apart, which makes the
whole app (windows → encoder → images) testable without a headset.

:func:`synthetic_eeg` is the same generator as a pure function (used by training);
:class:`SyntheticSource` streams it, paced by the wall clock or as fast as it is read.

The simulated viewer (``synthetic?viewer=1``, ``SyntheticSource(viewer=True)``) is a person
looking at the images ``dd-live calibrate`` shows: :meth:`SyntheticSource.present` starts an
evoked response at a given sample. The response is a fixed function of the image's content,
so a calibration -> training -> decoding round has a known ground truth:

1. :func:`image_features`: the image at 16 x 16 pixels, RGB in [0, 1], gives
   :data:`N_VIEWER_FEATURES` low-level numbers: mean luminance, red-green and blue-yellow
   opponency, left-right, top-bottom and centre-surround luminance contrast, RMS contrast and
   mean saturation (each centred and scaled to about [-1, 1]).
2. :class:`ViewerModel`: feature ``k`` drives a spatial pattern ``spatial[:, k]``
   (``(n_channels,)``, unit norm, random but fixed by ``seed``) with its own temporal waveform
   (a Gaussian bump at latency ``latency[k]`` in 80-380 ms, width 20-50 ms, sign +/-). On top, a
   feature-independent onset response (P1 at 100 ms, N1 at 170 ms) over all channels.
3. Per trial, the whole response is shifted by a latency jitter (normal, sd
   :data:`VIEWER_LATENCY_JITTER`) and scaled by an amplitude jitter (log-normal, sd
   :data:`VIEWER_AMPLITUDE_JITTER`); the background (1/f noise, alpha, blinks, line noise) goes
   on underneath, so single trials are noisy as real ones are.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dd_live.errors import ConfigError
from dd_live.sources.base import Source, SourceEvent, StreamInfo

ERP_PERIOD = 0.5  # seconds between two evoked responses of a state
LINE_FREQ = 50.0  # Hz
ALPHA_FREQ = 10.0  # Hz
BLINK_INTERVAL = 4.0  # mean seconds between blinks
BLINK_DURATION = 0.4  # seconds
BLINK_GAIN = 8.0  # blink peak relative to the background amplitude
ALPHA_GAIN = 0.6
LINE_GAIN = 0.2
COUNTER_NAME = "COUNTER"
N_VIEWER_FEATURES = 8
VIEWER_FEATURE_NAMES = (
    "luminance", "red_green", "blue_yellow", "left_right", "top_bottom", "centre_surround",
    "contrast", "saturation",
)
VIEWER_IMAGE_SIZE = 16  # pixels per side the viewer "sees"
VIEWER_RESPONSE = 0.6  # seconds an evoked response lasts
VIEWER_GAIN = 2.0  # evoked peak per unit feature, relative to the background amplitude
VIEWER_ONSET_GAIN = 1.0  # the feature-independent onset response, same units
VIEWER_LATENCY_JITTER = 0.01  # s, sd of the per-trial latency shift
VIEWER_AMPLITUDE_JITTER = 0.2  # sd of the per-trial log-amplitude

# Paul Kellet's pink (1/f) filter, "refined" version.
_PINK_B = np.array([0.049922035, -0.095993537, 0.050612699, -0.004408786])
_PINK_A = np.array([1.0, -2.494956002, 2.017265875, -0.522189400])

# 64 names of the 10-20/10-10 system, ordered so the first 8/16/32 are a sensible montage
# (the first 16 are the OpenBCI 16-channel layout).
STANDARD_NAMES = (
    "Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2",
    "F7", "F8", "F3", "F4", "T7", "T8", "P3", "P4",
    "Fz", "Cz", "Pz", "Oz", "Fpz", "AF7", "AF3", "AFz",
    "AF4", "AF8", "F5", "F1", "F2", "F6", "FT7", "FC5",
    "FC3", "FC1", "FCz", "FC2", "FC4", "FC6", "FT8", "C5",
    "C1", "C2", "C6", "TP7", "CP5", "CP3", "CP1", "CPz",
    "CP2", "CP4", "CP6", "TP8", "P5", "P1", "P2", "P6",
    "PO7", "PO3", "POz", "PO4", "PO8", "Iz", "P9", "P10",
)  # fmt: skip


def lfilter(b, a, x, axis=-1, zi=None):
    """``scipy.signal.lfilter``, imported on first use: the window lists the synthetic states
    before scipy's signal module has loaded (start-up time)."""
    from scipy.signal import lfilter as scipy_lfilter

    return scipy_lfilter(b, a, x, axis=axis, zi=zi)


@dataclass(frozen=True)
class SyntheticState:
    """One class-coded signature added on top of the background.

    Attributes:
        name: what the state is called (``set_state(name)``).
        freq: frequency of its spectral peak, Hz.
        pattern_phase: its spatial pattern, channel ``c`` of ``n`` weighted by
            ``cos(2 pi c / n + pattern_phase)`` (radians).
        gain: peak amplitude relative to the background amplitude.
        erp_latency: seconds from each repeat onset (every :data:`ERP_PERIOD`) to the
            evoked peak.
        erp_width: standard deviation of the Gaussian evoked waveform, seconds.
        erp_gain: signed evoked peak relative to the background amplitude.
    """

    name: str
    freq: float
    pattern_phase: float
    gain: float = 1.0
    erp_latency: float = 0.2
    erp_width: float = 0.03
    erp_gain: float = 2.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("SyntheticState needs a non-empty name")
        if not self.freq > 0:
            raise ConfigError(f"SyntheticState {self.name!r}: freq must be > 0 Hz, got {self.freq}")
        if not 0 <= self.erp_latency < ERP_PERIOD:
            raise ConfigError(
                f"SyntheticState {self.name!r}: erp_latency must be in [0, {ERP_PERIOD}) s, "
                f"got {self.erp_latency}"
            )
        if not self.erp_width > 0:
            raise ConfigError(
                f"SyntheticState {self.name!r}: erp_width must be > 0 s, got {self.erp_width}"
            )


DEFAULT_STATES: tuple[SyntheticState, ...] = (
    SyntheticState("calm", 6.0, 0.0, erp_latency=0.10, erp_gain=2.0),
    SyntheticState("focus", 7.5, math.pi / 4, erp_latency=0.15, erp_gain=-2.0),
    SyntheticState("visual", 12.5, math.pi / 2, erp_latency=0.20, erp_gain=2.5),
    SyntheticState("motor", 15.0, 3 * math.pi / 4, erp_latency=0.25, erp_gain=-2.5),
    SyntheticState("memory", 18.0, math.pi, erp_latency=0.30, erp_gain=2.0),
    SyntheticState("imagery", 21.0, 5 * math.pi / 4, erp_latency=0.35, erp_gain=-2.0),
    SyntheticState("alert", 24.0, 3 * math.pi / 2, erp_latency=0.40, erp_gain=2.5),
    SyntheticState("drowsy", 28.0, 7 * math.pi / 4, erp_latency=0.45, erp_gain=-2.5),
)


def channel_names(n_channels: int) -> tuple[str, ...]:
    """10-20/10-10 names for up to 64 channels, ``EEG001``... beyond."""
    if n_channels <= len(STANDARD_NAMES):
        return STANDARD_NAMES[:n_channels]
    return tuple(f"EEG{i + 1:03d}" for i in range(n_channels))


def _region_weights(ch_names: Sequence[str], prefixes: dict[str, float], default: float):
    """``(n_channels,)`` weight per channel, by the longest matching name prefix."""
    weights = np.full(len(ch_names), default)
    for i, name in enumerate(ch_names):
        for prefix in sorted(prefixes, key=len, reverse=True):
            if name.startswith(prefix):
                weights[i] = prefixes[prefix]
                break
    return weights


def _find_state(
    state: SyntheticState | str | None, states: Sequence[SyntheticState]
) -> SyntheticState | None:
    if state is None or isinstance(state, SyntheticState):
        return state
    for candidate in states:
        if candidate.name == state:
            return candidate
    names = ", ".join(s.name for s in states)
    raise ConfigError(f"unknown synthetic state {state!r}; choose one of: {names} (or None)")


class _Generator:
    """Continuous multichannel background + state signal, chunk after chunk.

    Everything depends on the absolute sample index, so the signal is seamless across chunks
    and the same for one ``seed`` however it is cut.
    """

    def __init__(self, n_channels: int, sfreq: float, seed: int, amplitude: float) -> None:
        self.n_channels = n_channels
        self.sfreq = sfreq
        self.amplitude = amplitude
        self.n_done = 0
        # separate streams, so the signal does not depend on how it is cut into chunks
        self._rng = np.random.default_rng([seed, 0])
        self._noise_rng = np.random.default_rng([seed, 1])
        self._blink_rng = np.random.default_rng([seed, 2])
        ch_names = channel_names(n_channels)
        generic = n_channels > len(STANDARD_NAMES)
        impulse = lfilter(_PINK_B, _PINK_A, np.r_[1.0, np.zeros(int(20 * sfreq))])
        self._pink_scale = amplitude / np.sqrt(np.sum(impulse**2))
        # one second of warm-up so the 1/f noise starts stationary, not from zero
        warm_up = self._noise_rng.standard_normal((int(sfreq), n_channels)).T
        zeros = np.zeros((n_channels, len(_PINK_A) - 1))
        self._pink_zi = lfilter(_PINK_B, _PINK_A, warm_up, axis=1, zi=zeros)[1]
        self._alpha_phase = self._rng.uniform(0, 2 * np.pi, n_channels)
        self._alpha_weight = (
            np.full(n_channels, 0.7)
            if generic
            else _region_weights(ch_names, {"O": 1.0, "PO": 1.0, "P": 0.8, "I": 1.0}, 0.3)
        )
        self._line_phase = self._rng.uniform(0, 2 * np.pi, n_channels)
        self._line_weight = self._rng.uniform(0.5, 1.5, n_channels)
        if generic:
            self._blink_weight = np.zeros(n_channels)
            self._blink_weight[:2] = 1.0
        else:
            self._blink_weight = _region_weights(ch_names, {"Fp": 1.0, "AF": 0.6, "F": 0.3}, 0.0)
        self._blinks: list[int] = []  # onsets (sample index) that may still contribute
        self._next_blink = self._draw_blink_interval()
        self._state_phase = self._rng.uniform(0, 2 * np.pi)

    def _draw_blink_interval(self) -> int:
        return int(self._blink_rng.exponential(BLINK_INTERVAL) * self.sfreq) + 1

    def generate(self, n_times: int, state: SyntheticState | None) -> np.ndarray:
        """The next ``n_times`` samples, ``(n_channels, n_times)`` volts."""
        start = self.n_done
        t = (start + np.arange(n_times)) / self.sfreq  # (n_times,)
        white = self._noise_rng.standard_normal((n_times, self.n_channels)).T
        data, self._pink_zi = lfilter(_PINK_B, _PINK_A, white, axis=1, zi=self._pink_zi)
        data *= self._pink_scale
        envelope = 0.7 + 0.3 * np.sin(2 * np.pi * 0.1 * t)  # alpha waxes and wanes
        data += (
            ALPHA_GAIN
            * self.amplitude
            * self._alpha_weight[:, None]
            * envelope
            * np.sin(2 * np.pi * ALPHA_FREQ * t + self._alpha_phase[:, None])
        )
        data += (
            LINE_GAIN
            * self.amplitude
            * self._line_weight[:, None]
            * np.sin(2 * np.pi * LINE_FREQ * t + self._line_phase[:, None])
        )
        data += self._blink_weight[:, None] * self._blinks_between(start, start + n_times)
        if state is not None:
            data += self._state_signal(state, t)
        self.n_done += n_times
        return data

    def _blinks_between(self, start: int, stop: int) -> np.ndarray:
        """``(n_times,)`` blink waveform (volts at full weight) for samples ``[start, stop)``."""
        while self._next_blink < stop:
            self._blinks.append(self._next_blink)
            self._next_blink += self._draw_blink_interval()
        length = int(BLINK_DURATION * self.sfreq)
        self._blinks = [onset for onset in self._blinks if onset + length > start]
        wave = np.zeros(stop - start)
        idx = np.arange(start, stop)
        for onset in self._blinks:
            phase = (idx - onset) / length
            inside = (phase >= 0) & (phase < 1)
            wave[inside] += 0.5 * (1 - np.cos(2 * np.pi * phase[inside]))
        return BLINK_GAIN * self.amplitude * wave

    def _state_signal(self, state: SyntheticState, t: np.ndarray) -> np.ndarray:
        c = np.arange(self.n_channels)
        pattern = np.cos(2 * np.pi * c / self.n_channels + state.pattern_phase)[:, None]
        oscillation = np.sin(2 * np.pi * state.freq * t + self._state_phase)
        tau = np.mod(t, ERP_PERIOD)
        erp = state.erp_gain * np.exp(-0.5 * ((tau - state.erp_latency) / state.erp_width) ** 2)
        erp_pattern = np.cos(2 * np.pi * c / self.n_channels + state.pattern_phase / 2)[:, None]
        return self.amplitude * (state.gain * pattern * oscillation + erp_pattern * erp)


def synthetic_eeg(
    state: SyntheticState | str | None,
    n_channels: int,
    sfreq: float,
    n_times: int,
    seed: int = 0,
    *,
    amplitude: float = 20e-6,
    states: Sequence[SyntheticState] = DEFAULT_STATES,
) -> np.ndarray:
    """Synthetic EEG in one state (a name of ``states``, a state, or None for background only).

    Returns:
        ``(n_channels, n_times)`` float64 volts; the same for the same arguments.
    """
    _check_dims(n_channels, sfreq)
    generator = _Generator(n_channels, sfreq, seed, amplitude)
    return generator.generate(int(n_times), _find_state(state, states))


def _check_dims(n_channels: int, sfreq: float) -> None:
    if n_channels < 1:
        raise ConfigError(f"synthetic source: n_channels must be >= 1, got {n_channels}")
    if not sfreq > 2 * LINE_FREQ:
        raise ConfigError(
            f"synthetic source: sfreq must be > {2 * LINE_FREQ:g} Hz (the line noise is "
            f"{LINE_FREQ:g} Hz), got {sfreq}"
        )


def image_features(pixels: np.ndarray) -> np.ndarray:
    """The :data:`N_VIEWER_FEATURES` low-level features the simulated viewer responds to.

    Args:
        pixels: ``(height, width, 3)`` RGB, uint8 (0-255) or float (0-1), any size; it is
            box-averaged to ``VIEWER_IMAGE_SIZE`` pixels per side first.

    Returns:
        ``(N_VIEWER_FEATURES,)`` float64, named by :data:`VIEWER_FEATURE_NAMES`, each about
        in [-1, 1].
    """
    img = np.asarray(pixels)
    if img.ndim != 3 or img.shape[2] < 3:
        raise ConfigError(f"image_features: need (height, width, 3) RGB pixels, got {img.shape}")
    img = img[..., :3].astype(np.float64)
    if np.issubdtype(np.asarray(pixels).dtype, np.integer):
        img /= 255.0
    size = VIEWER_IMAGE_SIZE
    rows = np.array_split(np.arange(img.shape[0]), size) if img.shape[0] >= size else None
    cols = np.array_split(np.arange(img.shape[1]), size) if img.shape[1] >= size else None
    if rows is None or cols is None:
        raise ConfigError(f"image_features: the image must be at least {size} x {size} pixels")
    small = np.array([[img[r][:, c].mean(axis=(0, 1)) for c in cols] for r in rows])  # (16, 16, 3)
    red, green, blue = small[..., 0], small[..., 1], small[..., 2]
    lum = 0.299 * red + 0.587 * green + 0.114 * blue
    half = size // 2
    centre = lum[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4]
    surround = (lum.sum() - centre.sum()) / (lum.size - centre.size)
    top = np.max(small, axis=-1)
    saturation = np.where(top > 0, (top - np.min(small, axis=-1)) / np.maximum(top, 1e-9), 0.0)
    return np.array([
        2.0 * (lum.mean() - 0.5),
        2.0 * (red.mean() - green.mean()),
        2.0 * (blue.mean() - 0.5 * (red.mean() + green.mean())),
        2.0 * (lum[:, :half].mean() - lum[:, half:].mean()),
        2.0 * (lum[:half].mean() - lum[half:].mean()),
        2.0 * (centre.mean() - surround),
        4.0 * lum.std() - 1.0,
        2.0 * saturation.mean() - 1.0,
    ])


class ViewerModel:
    """The simulated viewer's fixed map from image features to an evoked response.

    Args:
        n_channels: EEG channels.
        sfreq: Hz.
        seed: fixes the spatial patterns, latencies, widths and signs (one "person").
        amplitude: background scale, volts (the response is relative to it).

    ``response(features, rng)`` -> ``(n_channels, n_response)`` volts, where ``n_response``
    covers :data:`VIEWER_RESPONSE` seconds from the onset (see the module docstring).
    """

    def __init__(self, n_channels: int, sfreq: float, seed: int = 0,
                 amplitude: float = 20e-6) -> None:
        rng = np.random.default_rng([seed, 7])
        spatial = rng.standard_normal((n_channels, N_VIEWER_FEATURES))
        self.spatial = spatial / np.linalg.norm(spatial, axis=0, keepdims=True)
        self.latency = np.sort(rng.uniform(0.08, 0.38, N_VIEWER_FEATURES))
        self.width = rng.uniform(0.02, 0.05, N_VIEWER_FEATURES)
        self.sign = rng.choice([-1.0, 1.0], N_VIEWER_FEATURES)
        self.onset_pattern = np.abs(rng.standard_normal(n_channels)) / np.sqrt(n_channels)
        self.sfreq = float(sfreq)
        self.amplitude = float(amplitude)
        self.n_response = int(round(VIEWER_RESPONSE * sfreq))
        self.n_channels = n_channels

    def response(self, features: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One trial's evoked response ``(n_channels, n_response)`` volts, jittered by ``rng``."""
        features = np.asarray(features, dtype=np.float64)
        if features.shape != (N_VIEWER_FEATURES,):
            raise ConfigError(
                f"the simulated viewer needs {N_VIEWER_FEATURES} image features, got "
                f"{features.shape}: pass pixels through image_features() first")
        shift = rng.normal(0.0, VIEWER_LATENCY_JITTER)
        gain = np.exp(rng.normal(0.0, VIEWER_AMPLITUDE_JITTER))
        t = np.arange(self.n_response) / self.sfreq - shift  # (n_response,)
        bumps = np.exp(-0.5 * ((t[None, :] - self.latency[:, None]) / self.width[:, None]) ** 2)
        evoked = self.spatial @ ((features * self.sign)[:, None] * bumps)  # (n_channels, n)
        onset = np.exp(-0.5 * ((t - 0.1) / 0.02) ** 2) - np.exp(-0.5 * ((t - 0.17) / 0.03) ** 2)
        evoked = VIEWER_GAIN * evoked + VIEWER_ONSET_GAIN * self.onset_pattern[:, None] * onset
        return gain * self.amplitude * evoked


class SyntheticSource(Source):
    """Class-coded synthetic EEG, streamed in chunks.

    Args:
        n_channels: EEG channels (named 10-20 up to 64, ``EEG001``... beyond).
        sfreq: sampling rate, Hz.
        state: the initial state (a name in ``states``) or None for background only.
        states: the states :meth:`set_state` may choose from.
        counter: append a channel ``COUNTER`` (type ``misc``) holding the sample index.
        seed: random seed of the background.
        chunk_duration: seconds per chunk.
        realtime: pace samples by the wall clock (``time.monotonic``; timestamps are on that
            clock); if False each ``read()`` returns one chunk at once and timestamps start
            at 0.
        amplitude: background scale, volts.
        viewer: simulate a person looking at images: :meth:`present` adds the evoked
            response of an image (see :class:`ViewerModel`).
        clock, sleep: the monotonic clock (seconds) that paces a realtime source and the
            sleep that waits on it (tests pass a clock they move by hand).

    ``read()`` returns ``(n_channels [+1], n_times)`` volts. A state change pushes a
    ``SourceEvent("marker", description="state:<name>")`` at the first sample in that state.
    """

    def __init__(
        self,
        n_channels: int = 16,
        sfreq: float = 250.0,
        *,
        state: str | None = None,
        states: Sequence[SyntheticState] = DEFAULT_STATES,
        counter: bool = False,
        seed: int = 0,
        chunk_duration: float = 0.02,
        realtime: bool = True,
        amplitude: float = 20e-6,
        viewer: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        _check_dims(n_channels, sfreq)
        self._clock, self._sleep = clock, sleep
        if not chunk_duration > 0:
            raise ConfigError(
                f"synthetic source: chunk_duration must be > 0 s, got {chunk_duration}"
            )
        if len({s.name for s in states}) != len(states) or not states:
            raise ConfigError("synthetic source: states must be a non-empty list of unique names")
        self.states = tuple(states)
        self.n_eeg = n_channels
        self.seed = seed
        self.realtime = realtime
        self.amplitude = amplitude
        self.chunk_size = max(1, round(chunk_duration * sfreq))
        self._state = _find_state(state, self.states)
        self._state_changed = self._state is not None
        self.counter = counter
        names = channel_names(n_channels)
        types = ("eeg",) * n_channels
        units = ("V",) * n_channels
        if counter:
            names, types, units = names + (COUNTER_NAME,), types + ("misc",), units + ("",)
        self.info = StreamInfo(
            name="synthetic",
            sfreq=float(sfreq),
            ch_names=names,
            ch_types=types,
            units=units,
            source_id=f"synthetic-{n_channels}ch-seed{seed}",
        )
        self._generator: _Generator | None = None
        self._t0 = 0.0
        self.viewer = ViewerModel(n_channels, sfreq, seed, amplitude) if viewer else None
        self._viewer_rng = np.random.default_rng([seed, 8])
        self._responses: list[tuple[int, np.ndarray]] = []  # (onset sample, response)
        self._viewer_lock = threading.Lock()
        self.presented: list[tuple[int, str]] = []  # (onset sample, label) of every present()
        # the sample each present() asked for (its onset_time), before a late call is moved to
        # the next sample not yet delivered: what a stamp should land on (ground truth for tests)
        self.requested: list[int] = []

    @property
    def state(self) -> str | None:
        """Name of the active state, or None."""
        return None if self._state is None else self._state.name

    def set_state(self, name: str | None) -> None:
        """Switch to another state (or background only) from the next sample on."""
        self._state = _find_state(name, self.states)
        self._state_changed = True

    @property
    def n_done(self) -> int:
        """Samples generated so far (the index of the next sample)."""
        return 0 if self._generator is None else self._generator.n_done

    def sample_time(self, sample_index: int | float) -> float:
        """The timestamp this source gives sample ``sample_index`` (its own clock)."""
        return self._t0 + sample_index / self.info.sfreq

    def present(self, pixels_or_features: np.ndarray, onset_time: float | None = None,
                label: str = "") -> int:
        """Show the simulated viewer an image: its evoked response starts at the first sample
        at or after ``onset_time`` (this source's clock; None: the next sample generated).

        Args:
            pixels_or_features: ``(height, width, 3)`` RGB pixels or ready
                ``(N_VIEWER_FEATURES,)`` features (:func:`image_features`).
            onset_time: seconds on this source's clock.
            label: kept with the onset in :attr:`presented` (ground truth for tests).

        Returns:
            the absolute sample index where the response starts.
        """
        if self.viewer is None:
            raise ConfigError("this synthetic source has no viewer: open it as "
                              "'synthetic?viewer=1' to present images")
        array = np.asarray(pixels_or_features)
        features = array if array.ndim == 1 else image_features(array)
        with self._viewer_lock:
            response = self.viewer.response(features, self._viewer_rng)
            if onset_time is None:
                wanted = onset = self.n_done
            else:
                wanted = int(math.ceil((onset_time - self._t0) * self.info.sfreq - 1e-9))
                onset = max(wanted, self.n_done)  # a sample already delivered cannot change
            self.requested.append(wanted)
            self._responses.append((onset, response))
            self.presented.append((onset, label))
        return onset

    def _add_responses(self, data: np.ndarray, first: int) -> None:
        """Add every evoked response overlapping samples ``[first, first + n)`` to ``data``."""
        stop = first + data.shape[1]
        with self._viewer_lock:
            keep = []
            for onset, response in self._responses:
                end = onset + response.shape[1]
                lo, hi = max(onset, first), min(end, stop)
                if lo < hi:
                    data[: self.n_eeg, lo - first : hi - first] += response[:, lo - onset : hi - onset]
                if end > stop:
                    keep.append((onset, response))
            self._responses = keep

    def _start(self) -> None:
        self._generator = _Generator(self.n_eeg, self.info.sfreq, self.seed, self.amplitude)
        self._t0 = self._clock() if self.realtime else 0.0

    def _stop(self) -> None:
        self._generator = None

    def _n_due(self) -> int:
        """Samples due now, waiting (at most one chunk period) until a chunk is due."""
        sfreq = self.info.sfreq
        n_done = self._generator.n_done
        wait = self._t0 + (n_done + self.chunk_size) / sfreq - self._clock()
        if wait > 0:
            self._sleep(min(wait, self.chunk_size / sfreq))
        return int((self._clock() - self._t0) * sfreq) - n_done

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        generator = self._generator
        n_times = self._n_due() if self.realtime else self.chunk_size
        n_times = max(n_times, 0)
        state = self._state
        first = generator.n_done
        stamps = self._t0 + (first + np.arange(n_times)) / self.info.sfreq
        if self._state_changed and n_times:
            self._state_changed = False
            label = "none" if state is None else state.name
            self._push_event(SourceEvent("marker", float(stamps[0]), f"state:{label}"))
        data = generator.generate(n_times, state)
        if self.viewer is not None and n_times:
            self._add_responses(data, first)
        if self.counter:
            counter = np.arange(first, first + n_times, dtype=np.float64)
            data = np.vstack([data, counter[None, :]])
        return data, stamps

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} | state={self.state}>"
