"""The sample clock (dd_live/sources/clock.py): jitter removed, gaps counted where they are,
clock jumps kept visible. Pure numpy, deterministic; the sources' own tests run it on real
LSL outlets and BrainFlow boards."""

import numpy as np
import pytest

from dd_live.sources.clock import Dejitterer, SampleCounter, find_counter

SFREQ = 250.0


def feed(dejitterer, stamps, counter=None, chunk=10, modulus=None):
    """Feed ``stamps`` in chunks; returns the dejittered stamps and the breaks (chunk-global
    indices)."""
    out, breaks = [], []
    for begin in range(0, stamps.size, chunk):
        missing = None if counter is None else counter(np.asarray(
            counter.values[begin:begin + chunk], dtype=float))
        part, found = dejitterer(stamps[begin:begin + chunk], missing, modulus)
        out.append(part)
        breaks += [(begin + b.index, b.n_missing, b.from_counter, round(b.jump, 3))
                   for b in found]
    return np.concatenate(out), breaks


class Counter(SampleCounter):
    def __init__(self, values, modulus=None):
        super().__init__(modulus)
        self.values = values


def test_burst_jitter_and_clock_drift_are_removed():
    rng = np.random.default_rng(0)
    index = np.arange(20_000)
    true_rate = SFREQ * (1 + 3e-4)  # the device's clock runs 0.03 % fast
    stamps = 100.0 + index / true_rate + np.repeat(rng.uniform(-0.02, 0.02, 2000), 10)
    out, breaks = feed(Dejitterer(SFREQ), stamps)
    assert breaks == []
    steps = np.diff(out) * SFREQ
    assert steps.min() > 0.94 and steps.max() < 1.06
    error = out[-5000:] - (100.0 + index[-5000:] / true_rate)
    assert np.abs(error).max() < 0.003  # within 3 ms of the true sampling times


def test_a_counter_wrapping_at_256_counts_a_gap_longer_than_a_wrap():
    index = np.r_[0:2000, 2300:3000]  # 300 missing: the one-byte counter alone says 44
    stamps = 5.0 + index / SFREQ + np.random.default_rng(1).normal(0, 0.004, index.size)
    counter = Counter(index % 256, modulus=256)
    out, breaks = feed(Dejitterer(SFREQ), stamps, counter, modulus=256)
    assert breaks == [(2000, 300, True, 0.0)]
    assert (out[2000] - out[1999]) * SFREQ == pytest.approx(301, abs=0.2)


def test_without_a_counter_a_gap_is_found_from_the_timestamps():
    index = np.r_[0:2000, 2100:3000]
    stamps = 5.0 + index / SFREQ + np.repeat(np.random.default_rng(2).uniform(-0.02, 0.02,
                                                                              290), 10)
    out, breaks = feed(Dejitterer(SFREQ), stamps)
    assert len(breaks) == 1
    at, n_missing, from_counter, _ = breaks[0]
    assert at == 2000 and not from_counter
    assert n_missing == pytest.approx(100, abs=8)  # ±20 ms of jitter is ±5 samples


def test_a_clock_that_jumps_back_restarts_the_fit_and_stays_visible():
    stamps = np.r_[1000.0 + np.arange(1000) / SFREQ, 10.0 + np.arange(1000) / SFREQ]
    dejitterer = Dejitterer(SFREQ)
    out, breaks = feed(dejitterer, stamps)
    assert [(b[0], b[1]) for b in breaks] == [(1000, 0)]
    assert breaks[0][3] < -900
    assert out[1000] == pytest.approx(10.0, abs=1e-6)  # the new clock, from its first sample
    assert dejitterer.n_resets == 1


def test_a_counter_that_does_not_count_is_not_used():
    counter = SampleCounter()
    assert counter(np.array([0.0, 5.0, 3.0, 9.0, 1.0, 2.0, 8.0, 4.0, 6.0])) is None
    assert not counter.usable
    assert SampleCounter()(np.array([0.5, 1.5, 2.5])) is None  # not integers
    assert find_counter(("Fz", "COUNTER")) == 1 and find_counter(("Sample Index",)) == 0
    assert find_counter(("Fz", "Cz")) is None


def test_a_counter_read_one_sample_at_a_time_is_judged_without_warnings():
    # a board may deliver a single sample per read: no judgement on an empty set of steps
    # (numpy warns "Mean of empty slice", an error under the test settings)
    counter = SampleCounter(modulus=256)
    missing = [counter(np.array([float(k)])) for k in range(20)]
    assert counter.usable and counter._trusted
    assert all(m is not None and m.tolist() == [0] for m in missing[1:])
    assert counter(np.array([25.0])).tolist() == [5]  # 20..24 missing
