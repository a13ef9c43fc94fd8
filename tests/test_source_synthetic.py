import numpy as np
import pytest
from scipy.signal import welch

from dd_live.errors import ConfigError
from dd_live.sources.synthetic import (
    DEFAULT_STATES,
    LINE_FREQ,
    SyntheticSource,
    SyntheticState,
    channel_names,
    synthetic_eeg,
)

SFREQ = 250.0


def test_eight_distinct_frozen_states():
    assert len(DEFAULT_STATES) == 8
    assert len({s.name for s in DEFAULT_STATES}) == 8
    assert len({s.freq for s in DEFAULT_STATES}) == 8
    with pytest.raises(AttributeError):
        DEFAULT_STATES[0].freq = 3.0  # frozen
    with pytest.raises(ConfigError, match="freq must be > 0"):
        SyntheticState("bad", -1.0, 0.0)


def test_channel_names():
    assert channel_names(16)[:2] == ("Fp1", "Fp2")
    assert len(set(channel_names(64))) == 64
    assert channel_names(128)[0] == "EEG001" and channel_names(128)[-1] == "EEG128"


@pytest.mark.parametrize("state", [s for s in DEFAULT_STATES if s.freq > 10])
def test_each_state_adds_a_peak_at_its_frequency(state):
    n_times = int(20 * SFREQ)
    background = synthetic_eeg(None, 16, SFREQ, n_times, seed=3)
    data = synthetic_eeg(state.name, 16, SFREQ, n_times, seed=3)
    freqs, power = welch(data, SFREQ, nperseg=500)
    _, base = welch(background, SFREQ, nperseg=500)
    ratio = (power / base).mean(axis=0)
    above_alpha = freqs > 11
    assert freqs[above_alpha][np.argmax(ratio[above_alpha])] == pytest.approx(state.freq, abs=0.5)


def test_background_is_eeg_like():
    data = synthetic_eeg(None, 16, SFREQ, int(20 * SFREQ), seed=1)
    assert data.shape == (16, 5000)
    assert 5e-6 < np.median(data.std(axis=1)) < 100e-6  # tens of microvolts
    freqs, power = welch(data[channel_names(16).index("O1")], SFREQ, nperseg=1000)
    # a 1/f slope, an alpha peak and a line-noise peak
    assert power[np.argmin(abs(freqs - 2))] > power[np.argmin(abs(freqs - 30))]
    alpha = power[np.argmin(abs(freqs - 10))]
    assert alpha > 5 * power[np.argmin(abs(freqs - 14))]
    assert power[np.argmin(abs(freqs - LINE_FREQ))] > 5 * power[np.argmin(abs(freqs - 45))]
    # blinks: frontal channels have the largest excursions
    peak = np.abs(data).max(axis=1)
    assert peak[channel_names(16).index("Fp1")] > 1.5 * peak[channel_names(16).index("O1")]


def test_same_seed_same_signal_however_chunked():
    whole = synthetic_eeg("visual", 8, SFREQ, 500, seed=5)
    source = SyntheticSource(8, SFREQ, state="visual", seed=5, realtime=False, chunk_duration=0.1)
    with source:
        pieces = [source.read()[0] for _ in range(20)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole)


def test_counter_and_state_switch_marker():
    source = SyntheticSource(4, SFREQ, counter=True, realtime=False, chunk_duration=0.04)
    assert source.info.ch_names[-1] == "COUNTER"
    assert source.info.ch_types[-1] == "misc" and source.info.units[-1] == ""
    with source:
        first, stamps = source.read()
        source.set_state("motor")
        second, _ = source.read()
        events = source.pop_events()
    assert first.shape == (5, 10)
    np.testing.assert_array_equal(np.r_[first[-1], second[-1]], np.arange(20))
    np.testing.assert_allclose(stamps, np.arange(10) / SFREQ)
    assert [(e.kind, e.description) for e in events] == [("marker", "state:motor")]
    assert events[0].timestamp == pytest.approx(10 / SFREQ)
    assert source.state == "motor"
    with pytest.raises(ConfigError, match="unknown synthetic state 'nope'.*calm"):
        source.set_state("nope")


def test_realtime_is_paced_by_the_clock(manual_clock):
    # 256 Hz, 1/64 s chunks and clock steps in 1/1024 s: all times are exact in binary
    clock, sfreq = manual_clock, 256.0
    source = SyntheticSource(2, sfreq, counter=True, chunk_duration=1 / 64, clock=clock, sleep=clock.sleep)
    with source:
        t0 = clock.now
        # nothing is due yet: read() waits on the clock until one chunk is, then returns it
        data, stamps = source.read()
        assert clock.slept == [1 / 64] and data.shape[1] == 4
        np.testing.assert_array_equal(stamps, t0 + np.arange(4) / sfreq)
        counters = [data[-1]]
        # the clock moves by uneven steps (some shorter than a chunk): each read delivers
        # exactly the samples due by then, so nothing is lost or invented over many reads
        for step in (13, 512, 7, 1331, 16, 100) * 20:
            clock.now += step / 1024
            data, stamps = source.read()
            counters.append(data[-1])
            assert stamps[-1] <= clock.now  # never a sample from the future
            assert int((clock.now - t0) * sfreq) == int(counters[-1][-1]) + 1  # all due, no more
        counters = np.concatenate(counters)
    np.testing.assert_array_equal(counters, np.arange(len(counters)))
    assert len(counters) == int((clock.now - t0) * sfreq)
    assert "synthetic" in repr(source) and "OFF" in repr(source)


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n_channels must be >= 1"):
        SyntheticSource(0)
    with pytest.raises(ConfigError, match="sfreq must be > 100 Hz"):
        SyntheticSource(4, 64.0)
