"""design_filter and StreamingFilter: chunked output equals the offline filter exactly."""

import numpy as np
import pytest
from scipy import signal

from dd_live.errors import ConfigError
from dd_live.stream import StreamingFilter, design_filter

SFREQ = 250.0
N_CHANNELS = 4


def random_chunks(rng: np.random.Generator, n_times: int) -> list[tuple[int, int]]:
    """Chunk bounds covering ``[0, n_times)`` with sizes 0, 1 and larger mixed."""
    bounds, start = [], 0
    while start < n_times:
        n = int(rng.choice([0, 1, 1, 2, 7, 13, 64, 200]))
        bounds.append((start, min(start + n, n_times)))
        start += n
    return bounds


@pytest.mark.parametrize("init", ["first_sample", "zeros"])
def test_chunked_output_equals_offline_sosfilt(init):
    rng = np.random.default_rng(42)
    n_times = int(4 * SFREQ)
    t = np.arange(n_times) / SFREQ
    # 10 Hz signal + 50 Hz line noise + noise + a DC offset per channel
    x = (
        20e-6 * np.sin(2 * np.pi * 10 * t)
        + 10e-6 * np.sin(2 * np.pi * 50 * t)
        + 5e-6 * rng.standard_normal((N_CHANNELS, n_times))
        + rng.uniform(-1e-3, 1e-3, (N_CHANNELS, 1))
    )
    sos = design_filter(SFREQ, 5.0, 95.0, notch=50.0)
    filt = StreamingFilter(sos, N_CHANNELS, init=init)
    zi = filt.initial_state(x[:, 0])
    offline, _ = signal.sosfilt(sos, x, axis=-1, zi=zi)

    bounds = random_chunks(rng, n_times)
    assert any(a == b for a, b in bounds) and any(b - a == 1 for a, b in bounds)
    online = np.concatenate([filt(x[:, a:b]) for a, b in bounds], axis=1)
    assert online.shape == x.shape
    np.testing.assert_array_equal(online, offline)  # bit-exact: same recursion, state carried

    # the filter did something: 50 Hz and the DC offset are gone after settling
    settled = online[:, int(SFREQ) :]
    assert np.abs(settled.mean(axis=1)).max() < 1e-6
    assert np.max(np.abs(online - x)) > 1e-5


def test_first_sample_init_settles_faster_than_zeros():
    n_times = int(2 * SFREQ)
    x = np.full((1, n_times), 1e-3)  # a DC offset, as electrodes have
    sos = design_filter(SFREQ, 1.0, 40.0)
    from_sample = StreamingFilter(sos, 1, init="first_sample")(x)
    from_zeros = StreamingFilter(sos, 1, init="zeros")(x)
    assert np.abs(from_sample).max() < 1e-12
    assert np.abs(from_zeros[:, : int(0.5 * SFREQ)]).max() > 1e-4


def test_reset_restarts_from_the_next_sample():
    sos = design_filter(SFREQ, 5.0, 40.0)
    filt = StreamingFilter(sos, 2)
    rng = np.random.default_rng(0)
    filt(rng.standard_normal((2, 100)))
    filt.reset()
    chunk = rng.standard_normal((2, 50))
    fresh = StreamingFilter(sos, 2)(chunk)
    np.testing.assert_array_equal(filt(chunk), fresh)
    assert filt(np.empty((2, 0))).shape == (2, 0)


def test_design_variants_and_group_delay():
    assert design_filter(SFREQ, 1.0, None).shape[1] == 6  # high-pass
    assert design_filter(SFREQ, None, 40.0).shape[1] == 6  # low-pass
    notch_only = design_filter(SFREQ, None, None, notch=50.0)
    assert notch_only.shape == (1, 6)
    harmonics = design_filter(1000.0, 1.0, 40.0, notch=60.0, notch_harmonics=True)
    assert harmonics.shape[0] == 4 + 8  # band-pass (4 sections) + 60, 120, ..., 480 Hz
    # 50 Hz is removed by the notch
    _, gain = signal.sosfreqz(design_filter(SFREQ, 5.0, 95.0, notch=50.0), [20.0, 50.0], fs=SFREQ)
    assert abs(gain[0]) > 0.9 and abs(gain[1]) < 1e-3

    # 4th-order Butterworth 1-40 Hz: 15 ms at 10 Hz, 28 ms at 5 Hz (docs/realtime.md)
    filt = StreamingFilter(design_filter(SFREQ, 1.0, 40.0), 1, sfreq=SFREQ)
    assert filt.group_delay(10.0) == pytest.approx(0.015, abs=0.002)
    assert filt.group_delay(5.0) == pytest.approx(0.028, abs=0.002)
    notched = StreamingFilter(design_filter(SFREQ, 5.0, 95.0, notch=50.0), 1, sfreq=SFREQ)
    assert np.isfinite(notched.group_delay(50.0))  # exactly at the notch
    with pytest.raises(ConfigError, match=r"sfreq=\.\.\."):
        StreamingFilter(design_filter(SFREQ, 1.0, 40.0), 1).group_delay(10.0)


def test_h_freq_above_nyquist_says_how_to_fix():
    # the reference 5-95 Hz band on a 125 Hz board (OpenBCI Cyton + Daisy)
    with pytest.raises(
        ConfigError,
        match=r"h_freq=95 Hz is at or above the Nyquist frequency 62.5 Hz .* lower h_freq below 62.5 Hz",
    ):
        design_filter(125.0, 5.0, 95.0)


def test_bad_filter_settings_raise_config_errors():
    with pytest.raises(ConfigError, match=r"l_freq \(40 Hz\) must be below h_freq \(30 Hz\)"):
        design_filter(SFREQ, 40.0, 30.0)
    with pytest.raises(ConfigError, match=r"notch=150 Hz is at or above the Nyquist"):
        design_filter(SFREQ, 5.0, 95.0, notch=150.0)
    assert design_filter(SFREQ, None, None) is None  # nothing to filter
    with pytest.raises(ConfigError, match="init must be one of"):
        StreamingFilter(design_filter(SFREQ), 2, init="steady")
    filt = StreamingFilter(design_filter(SFREQ), 2)
    with pytest.raises(ValueError, match=r"n_channels=2"):
        filt(np.zeros((3, 10)))
    assert "init=first_sample" in repr(filt)


def test_float32_filter_matches_offline_float32():
    """The fast float32 variant is exact against scipy's own float32 filter."""
    rng = np.random.default_rng(5)
    sos = design_filter(250.0, 5.0, 95.0, notch=50.0)
    x = rng.standard_normal((4, 2000)).astype(np.float32)
    filt = StreamingFilter(sos, 4, init="zeros", dtype=np.float32)
    edges = np.sort(rng.integers(0, 2000, 30))
    chunks = [filt(part) for part in np.split(x, edges, axis=1)]
    out = np.concatenate(chunks, axis=1)
    assert out.dtype == np.float32
    expected = signal.sosfilt(sos.astype(np.float32), x, axis=-1)
    np.testing.assert_array_equal(out, expected)  # bit-exact, as in float64
