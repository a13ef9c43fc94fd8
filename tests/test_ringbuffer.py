"""RingBuffer: exact samples across many wrap-arounds, counters, clear errors, one writer."""

import threading

import numpy as np
import pytest

from dd_live.errors import DDLiveError
from dd_live.stream import BufferRangeError, RingBuffer

N_CHANNELS = 3
CAPACITY = 50
SFREQ = 100.0


def ramp(start: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A counter chunk: channel c holds ``index * 10 + c``; timestamps ``index / SFREQ``."""
    index = np.arange(start, start + n, dtype=np.float64)
    data = index[None, :] * 10 + np.arange(N_CHANNELS)[:, None]
    return data, index / SFREQ


def assert_run(data: np.ndarray, times: np.ndarray, start: int) -> None:
    expected_data, expected_times = ramp(start, data.shape[1])
    np.testing.assert_array_equal(data, expected_data)
    np.testing.assert_array_equal(times, expected_times)


def test_wraps_many_times_and_returns_exact_samples():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    rng = np.random.default_rng(0)
    written = 0
    while written < 20 * CAPACITY:
        n = int(rng.integers(0, 2 * CAPACITY))  # some chunks are longer than the capacity
        buffer.write(*ramp(written, n))
        written += n
        assert buffer.n_written == written
        assert buffer.n_held == min(written, CAPACITY)
        assert buffer.n_overwritten == written - buffer.n_held == buffer.first_index
        assert buffer.fill == pytest.approx(buffer.n_held / CAPACITY)

        data, times = buffer.latest(17)
        assert_run(data, times, written - min(17, written))
        data, times = buffer.latest(10 * CAPACITY)  # more than held -> all held
        assert data.shape == (N_CHANNELS, buffer.n_held)
        assert_run(data, times, buffer.first_index)

        if written >= 5:
            start = int(rng.integers(buffer.first_index, written - 4))
            data, times = buffer.get(start, start + 5)
            assert_run(data, times, start)

        data, times, first = buffer.since(written - 30)
        assert first == max(written - 30, buffer.first_index)
        assert_run(data, times, first)
    assert buffer.n_overwritten > 10 * CAPACITY


def test_latest_returns_copies():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    buffer.write(*ramp(0, 10))
    data, _ = buffer.latest(10)
    data[:] = -1
    assert_run(*buffer.latest(10), 0)


def test_overwritten_and_future_ranges_raise_clear_errors():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    buffer.write(*ramp(0, 3 * CAPACITY))
    with pytest.raises(
        BufferRangeError, match=r"samples from 10 were overwritten; the oldest kept is 100"
    ):
        buffer.get(10, 120)
    with pytest.raises(BufferRangeError, match=r"up to 151 asked but only 150 written"):
        buffer.get(140, 151)
    with pytest.raises(DDLiveError):
        buffer.get(0, 1)
    with pytest.raises(IndexError):
        buffer.get(0, 1)


def test_since_clamps_to_oldest_and_future_start_is_empty():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    buffer.write(*ramp(0, 120))
    data, times, first = buffer.since(0)
    assert first == 70 and data.shape == (N_CHANNELS, CAPACITY)
    assert_run(data, times, 70)
    data, times, first = buffer.since(500)
    assert data.shape == (N_CHANNELS, 0) and times.shape == (0,) and first == 500


def test_index_at_finds_first_sample_at_or_after_a_time():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    buffer.write(*ramp(0, 130))  # wrapped: held 80..129, stored in two pieces
    assert buffer.index_at(100 / SFREQ) == 100
    assert buffer.index_at(100.5 / SFREQ) == 101
    assert buffer.index_at(85.5 / SFREQ) == 86
    assert buffer.index_at(0.0) == 80  # older than held -> oldest held
    assert buffer.index_at(1e6) == 130  # later than all -> next index


def test_write_rejects_wrong_shapes():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    with pytest.raises(ValueError, match=r"must be \(n_channels=3, n_times\)"):
        buffer.write(np.zeros((2, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="one timestamp per sample"):
        buffer.write(np.zeros((3, 4)), np.zeros(5))
    assert "held 0" in repr(buffer)


def test_one_writer_one_reader_always_see_contiguous_runs():
    buffer = RingBuffer(N_CHANNELS, CAPACITY)
    n_total = 40_000
    failures: list[str] = []
    done = threading.Event()

    def writer() -> None:
        rng = np.random.default_rng(1)
        written = 0
        while written < n_total:
            n = int(rng.integers(1, 13))
            buffer.write(*ramp(written, n))
            written += n
        done.set()

    def reader() -> None:
        n_reads = 0
        while not done.is_set() or n_reads < 10:
            data, times = buffer.latest(CAPACITY)
            n_reads += 1
            if data.shape[1] == 0:
                continue
            start = int(round(times[0] * SFREQ))
            expected_data, expected_times = ramp(start, data.shape[1])
            if not (np.array_equal(data, expected_data) and np.array_equal(times, expected_times)):
                failures.append(f"read {n_reads} from {start} is not a contiguous counter run")
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures[0]
    assert buffer.n_written >= n_total
    assert_run(*buffer.latest(CAPACITY), buffer.n_written - CAPACITY)


def test_index_at_from_a_start_searches_only_the_later_samples():
    buffer = RingBuffer(1, 50)
    times = np.r_[np.arange(30), np.arange(10, 30)] / SFREQ  # the clock went back at index 30
    buffer.write(np.zeros((1, 50)), times)
    assert buffer.index_at(15 / SFREQ, start=30) == 35
    assert buffer.index_at(0.0, start=30) == 30  # all later -> the start
    assert buffer.index_at(1e6, start=30) == 50
    assert buffer.index_at(0.0, start=60) == 50  # a start not written yet -> the next index
