"""The stream stage's cost on real-signal faults, against the plain filter in the same run.

For 128 ch x 1 kHz and 8 ch x 250 Hz, 20 ms chunks (what the acquisition thread filters):

- baseline: :class:`StreamingFilter` (5-95 Hz band-pass + 50 Hz notch) on clean data;
- ``nan``: the same filter on data where 1 chunk in 50 holds NaN/Inf on a few channels (the
  slow path: held samples, per-channel restarts), plus :class:`NonFiniteWatch`'s events;
- ``auto``: :class:`MainsFilter` (``notch = "auto"``: band-pass, notch chosen from the measured
  hum, re-measured every 10 s) on clean data with 60 Hz hum;
- ``bad``: :class:`BadChannelTracker` + :class:`QualityChecker` + the repair
  (:class:`ChannelRepair`, spline) on 0.44 s windows every 0.1 s, against
  :class:`QualityChecker` alone.

Each line prints seconds of signal per second of CPU (x real time) and the ratio to its
baseline (best of 3 runs each). Usage: ``python benchmarks/stream_stage.py [--seconds 20]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from dd_live.sources.synthetic import STANDARD_NAMES
from dd_live.stream import (
    BadChannelTracker,
    ChannelRepair,
    MainsFilter,
    NonFiniteWatch,
    QualityChecker,
    StreamingFilter,
    design_filter,
)

CONFIGS = ((128, 1000.0), (8, 250.0))
CHUNK = 0.02


def chunks(data: np.ndarray, sfreq: float):
    n = int(CHUNK * sfreq)
    for start in range(0, data.shape[1], n):
        yield start, data[:, start:start + n]


def timed(make_run, repeats: int = 3) -> float:
    """Best of ``repeats`` fresh runs (seconds): a loaded machine only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        run = make_run()
        t0 = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t0)
    return best


def filters(n_channels: int, sfreq: float, seconds: float) -> None:
    rng = np.random.default_rng(0)
    n_times = int(seconds * sfreq)
    t = np.arange(n_times) / sfreq
    clean = 20e-6 * rng.standard_normal((n_channels, n_times))
    clean += 200e-6 * np.sin(2 * np.pi * 60 * t)
    faulty = clean.copy()
    step = int(CHUNK * sfreq)
    for k in range(0, n_times, 50 * step):
        faulty[: max(1, n_channels // 16), k + 3:k + step // 2] = np.nan
    sos = design_filter(sfreq, 5.0, min(95.0, 0.45 * sfreq), notch=50.0)
    band = design_filter(sfreq, 5.0, min(95.0, 0.45 * sfreq))
    names = [f"E{i}" for i in range(n_channels)]

    def plain(data):
        filt = StreamingFilter(sos, n_channels)
        return lambda: [filt(chunk) for _, chunk in chunks(data, sfreq)]

    def with_watch(data):
        filt, watch = StreamingFilter(sos, n_channels), NonFiniteWatch(names, sfreq)
        ts = np.arange(data.shape[1]) / sfreq
        return lambda: [(filt(c), watch.update(c, s, ts[s:s + c.shape[1]]))
                        for s, c in chunks(data, sfreq)]

    def auto(data):
        filt = MainsFilter(band, n_channels, sfreq)
        return lambda: [filt(chunk) for _, chunk in chunks(data, sfreq)]

    base = timed(lambda: plain(clean))
    print(f"{n_channels:3d} ch @ {sfreq:g} Hz  filter, clean (baseline)   "
          f"x{seconds / base:7.0f} real time")
    for label, make_run in (("filter + watch, clean", lambda: with_watch(clean)),
                            ("filter + watch, NaN 1/50", lambda: with_watch(faulty)),
                            ("MainsFilter (auto)", lambda: auto(clean))):
        took = timed(make_run)
        print(f"{n_channels:3d} ch @ {sfreq:g} Hz  {label:26s} x{seconds / took:7.0f} real time"
              f"  {took / base:5.2f}x the baseline's time")


def windows(n_channels: int, sfreq: float, seconds: float) -> None:
    rng = np.random.default_rng(1)
    names = STANDARD_NAMES[:n_channels] if n_channels <= 64 else STANDARD_NAMES[:64]
    n_channels = len(names)
    length, hop = int(0.44 * sfreq), int(0.1 * sfreq)
    data = 20e-6 * rng.standard_normal((n_channels, int(seconds * sfreq)))
    data[2] = 0.0  # one flat channel, replaced in every window
    starts = range(0, data.shape[1] - length, hop)

    def quality_only():
        checker = QualityChecker(sfreq, ch_names=names)
        for s in starts:
            checker.check(data[:, s:s + length])

    def with_bad():
        checker = QualityChecker(sfreq, ch_names=names)
        tracker = BadChannelTracker(sfreq, names, max_bad=0.5)
        repair = ChannelRepair(names)
        for s in starts:
            window = data[:, s:s + length]
            verdict = tracker.update(window, s + length)
            checker.check(window, skip=verdict.replace)
            repair(window, verdict.replace)

    base = timed(lambda: quality_only)
    took = timed(lambda: with_bad)
    print(f"{n_channels:3d} ch @ {sfreq:g} Hz  windows: quality (baseline) {base / len(starts) * 1e3:.2f} "
          f"ms/window; + bad channels + spline repair {took / len(starts) * 1e3:.2f} ms/window "
          f"({took / base:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    for n_channels, sfreq in CONFIGS:
        filters(n_channels, sfreq, args.seconds)
        windows(n_channels, sfreq, args.seconds)


if __name__ == "__main__":
    main()
