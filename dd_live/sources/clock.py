"""Sample clocks: dejittered timestamps and gaps found where they really are.

Real streams stamp samples badly: LSL apps stamp a chunk when they push it (the samples
before it are back-dated at the nominal rate), the OpenBCI dongle delivers bursts, BrainFlow
stamps each package as it is parsed. Taken as they are, such stamps jitter by tens of
milliseconds and a 20 ms step looks like a gap. Two helpers fix that:

- :class:`SampleCounter` reads a device's sample counter (Cyton's 0-255 index, BrainFlow's
  package counter row, an LSL stream's counter channel) and says how many samples are
  missing before each sample, exactly.
- :class:`Dejitterer` maps sample count -> time with a running (exponentially weighted)
  linear fit, so the timestamps it returns advance by one sample period per sample. Samples
  missing (from the counter, or else from a timestamp step far beyond the jitter it has
  measured) advance the count, so a gap stays a gap in the dejittered clock, of the right
  length. A clock that jumps (backwards, or forwards with the counter saying nothing is
  missing) restarts the fit there: the jump stays visible.

Both are pure numpy, one instance per stream, used from the thread that reads the source.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from dd_live.sources.base import SourceEvent

logger = logging.getLogger(__name__)

FIT_HALFLIFE = 30.0  # s of samples after which a sample's weight in the fit has halved
JITTER_HALFLIFE = 5.0  # s, for the running estimate of the timestamp jitter
MIN_GAP = 0.05  # s: a timestamp step shorter than this is never a gap on its own
GAP_PERIODS = 5.0  # ... nor one shorter than this many sample periods
GAP_JITTERS = 6.0  # ... nor one within this many standard deviations of the jitter
SLEW = 0.05  # the output clock catches up with the fit by at most 5 % of a period per sample
MAX_SKEW = 0.05  # the fitted period stays within 5 % of the nominal one
MIN_SPAN = 2.0  # s: the slope is fitted once the samples in the fit span this much (std)
COUNTER_NAMES = frozenset({
    "counter", "sample index", "sample_index", "sampleindex", "sample counter",
    "sample_counter", "samplecounter", "package_num", "package num", "packet counter",
    "packet_counter", "packetcounter",
})
COUNTER_JUDGED = 7  # steps a counter must show before it is trusted or given up
COUNTER_TRUST = 0.9  # a counter is used when at least this share of its first steps are +1


def find_counter(ch_names: tuple[str, ...] | list[str]) -> int | None:
    """Index of the first channel whose name says it counts samples, or None."""
    for k, name in enumerate(ch_names):
        if name.strip().lower() in COUNTER_NAMES:
            return k
    return None


class SampleCounter:
    """Samples missing before each sample, from a counter that steps by one per sample.

    Args:
        modulus: the value at which the counter wraps to 0 (256 for Cyton's index and
            BrainFlow's package counter), or None for a counter that does not wrap.
        name: for log messages.

    A counter that does not behave like one (fewer than ``COUNTER_TRUST`` of its first
    steps are +1, or non-integer values) is ignored from then on: :attr:`usable` turns False
    and :meth:`__call__` returns None.
    """

    def __init__(self, modulus: int | None = None, name: str = "counter") -> None:
        self.modulus = modulus
        self.name = name
        self.usable = True
        self._trusted = False
        self._last: float | None = None
        self._n_judged = 0  # steps seen before the counter is trusted
        self._n_ones = 0  # of which +1

    def reset(self) -> None:
        """Forget the last value (after a reconnect the counter starts anew)."""
        self._last = None

    def __call__(self, values: np.ndarray) -> np.ndarray | None:
        """``missing[n_times]``: samples missing before each of ``values[n_times]``; -1 where
        the counter went back or restarted (unknown). None when the counter is not usable."""
        if not self.usable or values.size == 0:
            return None
        values = np.asarray(values, dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            self._give_up("it holds non-integer values")
            return None
        previous = values[0] - 1 if self._last is None else self._last
        steps = np.diff(values, prepend=previous)
        if self.modulus:
            missing = np.mod(steps - 1, self.modulus)
        else:
            missing = np.where(steps >= 1, steps - 1, -1)
        if not self._trusted:
            # the first step of the very first chunk is made up (prepended): judge the others,
            # and only once there are enough of them (a chunk may hold a single sample)
            judged = steps[1:] if self._last is None else steps
            self._n_judged += judged.size
            self._n_ones += int(np.count_nonzero(judged == 1))
            if self._n_judged < COUNTER_JUDGED:
                self._last = float(values[-1])
                return missing.astype(np.int64)
            if self._n_ones < COUNTER_TRUST * self._n_judged:
                self._give_up("its values do not step by one per sample")
                return None
            self._trusted = True
        self._last = float(values[-1])
        return missing.astype(np.int64)

    def _give_up(self, why: str) -> None:
        self.usable = False
        logger.info("channel %s is not used as a sample counter: %s", self.name, why)


@dataclass
class Break:
    """Where the dejittered clock does not simply advance one period.

    Attributes:
        index: position in the chunk of the first sample after the break.
        n_missing: samples missing before it (0 for a clock jump).
        jump: seconds the raw clock jumped (for ``n_missing == 0``).
        from_counter: the count came from a sample counter.
    """

    index: int
    n_missing: int
    jump: float = 0.0
    from_counter: bool = False


def break_events(breaks: list[Break], stamps: np.ndarray, sfreq: float, *, stream: str,
                 clock: str, counter: str, log: logging.Logger,
                 after_disconnect: bool = False) -> list[SourceEvent]:
    """The events of a chunk's clock breaks, each logged as a warning on ``log``.

    A break with samples missing is a ``gap`` starting where the first missing sample was due
    (extra: ``n_missing``, ``found_by``: ``counter`` or ``"timestamps"``); one without is a
    ``discontinuity`` at the first sample after it (extra: ``jump_s``).

    Args:
        breaks: what :class:`Dejitterer` returned for the chunk.
        stamps: ``(n_times,)`` the chunk's dejittered timestamps (s).
        sfreq: nominal sample rate (Hz).
        stream: the source in words, for the log (``"LSL stream EEG-1"``).
        clock: whose clock jumped, for the description (``"the stream's clock"``).
        counter: the sample counter's name, for ``found_by`` (``"sample counter"``).
        log: the source module's logger.
        after_disconnect: the chunk is the first after a disconnect (said of a gap before its
            first sample).
    """
    period = 1.0 / sfreq
    events = []
    for brk in breaks:
        stamp = float(stamps[brk.index])
        if brk.n_missing:
            duration = brk.n_missing * period
            how = counter if brk.from_counter else "timestamps"
            why = " after a disconnect" if after_disconnect and brk.index == 0 else ""
            description = (f"{brk.n_missing} samples ({duration:.3f} s) missing{why} "
                           f"(counted by the {how})")
            log.warning("%s: %s", stream, description)
            events.append(SourceEvent("gap", stamp - duration, description, duration,
                                      {"n_missing": brk.n_missing, "found_by": how}))
        else:
            description = (f"{clock} jumped by {brk.jump:+.3f} s with no sample missing; "
                           "filter restarted")
            log.warning("%s: %s", stream, description)
            events.append(SourceEvent("discontinuity", stamp, description,
                                      extra={"jump_s": brk.jump}))
    return events


class Dejitterer:
    """Running linear fit of sample count -> time; returns timestamps without the jitter.

    Args:
        sfreq: nominal sampling rate (Hz).
        halflife: seconds of samples after which a sample's weight in the fit has halved.
        min_gap: the shortest timestamp step (s) taken as samples missing when there is no
            counter (it is also at least ``GAP_PERIODS`` periods and ``GAP_JITTERS`` times
            the measured jitter).

    Call it with each chunk's raw timestamps (and, when the stream has a sample counter,
    ``missing`` from :class:`SampleCounter`); it returns the dejittered timestamps and the
    :class:`Break` found in the chunk.
    """

    def __init__(self, sfreq: float, *, halflife: float = FIT_HALFLIFE,
                 min_gap: float = MIN_GAP) -> None:
        if not sfreq > 0:
            raise ValueError(f"Dejitterer: sfreq must be > 0 Hz, got {sfreq}")
        self.sfreq = float(sfreq)
        self.period = 1.0 / self.sfreq
        self.min_gap = float(min_gap)
        self._lam = 0.5 ** (1.0 / (halflife * self.sfreq))  # weight decay per sample
        self._lam_jitter = 0.5 ** (1.0 / (JITTER_HALFLIFE * self.sfreq))
        self.jitter = 0.0  # running RMS of raw - fit (s)
        self.n_resets = 0
        self.reset()

    def reset(self) -> None:
        """Start the fit anew at the next sample (after a reconnect or a clock jump)."""
        self._count = 0  # sample count of the next sample (missing ones included)
        self._x0 = 0  # origin of the sums: count
        self._t0 = 0.0  # origin of the sums: time
        self._s = np.zeros(5)  # weighted sums of 1, x, y, xx, xy around the origin
        self._out_count: int | None = None  # count and output time of the last sample
        self._out_time = 0.0

    @property
    def threshold(self) -> float:
        """The timestamp step (s) beyond the fit that counts as a gap without a counter."""
        return max(self.min_gap, GAP_PERIODS * self.period, GAP_JITTERS * self.jitter)

    # -- the fit ---------------------------------------------------------------------------
    def _fit(self) -> tuple[float, float]:
        """``(t_at_origin, period)`` of the current fit."""
        s0, sx, sy, sxx, sxy = self._s
        if s0 <= 0:
            return self._t0, self.period
        mx, my = sx / s0, sy / s0
        var = sxx / s0 - mx * mx
        slope = self.period
        if var > (MIN_SPAN * self.sfreq) ** 2:
            fitted = (sxy / s0 - mx * my) / var
            slope = min(max(fitted, self.period * (1 - MAX_SKEW)), self.period * (1 + MAX_SKEW))
        return my - slope * mx, slope

    def _predict(self, counts: np.ndarray) -> tuple[np.ndarray, float]:
        intercept, slope = self._fit()
        return self._t0 + intercept + slope * (counts - self._x0), slope

    def _add(self, counts: np.ndarray, stamps: np.ndarray) -> None:
        """Add samples to the sums (older weights decay), re-centred on the newest sample."""
        n_new = int(counts[-1] - self._x0) if self._s[0] > 0 else 0
        if self._s[0] <= 0:
            self._x0, self._t0 = int(counts[0]), float(stamps[0])
        # move the origin to the newest sample: keeps the sums small and exact
        dx, dt = float(counts[-1] - self._x0), float(stamps[-1] - self._t0)
        s0, sx, sy, sxx, sxy = self._s * (self._lam ** max(n_new, 0))
        sx, sxx, sxy = sx - dx * s0, sxx - 2 * dx * sx + dx * dx * s0, sxy - dx * sy
        sy, sxy = sy - dt * s0, sxy - dt * sx
        self._x0, self._t0 = int(counts[-1]), float(stamps[-1])
        x = (counts - self._x0).astype(np.float64)
        y = stamps - self._t0
        w = self._lam ** (-x)  # the newest sample weighs 1
        self._s = np.array([s0 + w.sum(), sx + (w * x).sum(), sy + (w * y).sum(),
                            sxx + (w * x * x).sum(), sxy + (w * x * y).sum()])

    # -- one chunk -------------------------------------------------------------------------
    def __call__(self, stamps: np.ndarray, missing: np.ndarray | None = None,
                 modulus: int | None = None) -> tuple[np.ndarray, list[Break]]:
        """Dejitter one chunk.

        Args:
            stamps: ``(n_times,)`` raw timestamps (s).
            missing: ``(n_times,)`` samples missing before each sample from a counter (-1:
                unknown), or None without a counter.
            modulus: the counter's wrap (a gap longer than it is counted from the timestamps).

        Returns:
            ``(n_times,)`` dejittered timestamps and the breaks in this chunk.
        """
        stamps = np.asarray(stamps, dtype=np.float64)
        n_times = stamps.shape[0]
        breaks: list[Break] = []
        if n_times == 0:
            return stamps.copy(), breaks
        out = np.empty(n_times)
        begin, after_break = 0, False
        while begin < n_times:
            end, brk = self._segment(stamps, missing, begin, after_break, modulus)
            if end > begin:
                out[begin:end] = self._emit(stamps[begin:end])
            begin, after_break = end, brk is not None
            if brk is not None:
                breaks.append(brk)
                if brk.n_missing == 0:  # a clock jump: the fit starts again there
                    self.n_resets += 1
                    self.reset()
                else:
                    self._count += brk.n_missing
        return out, breaks

    def _counts(self, n_times: int) -> np.ndarray:
        """Sample counts of the next ``n_times`` samples, none missing between them."""
        return self._count + np.arange(n_times, dtype=np.int64)

    def _segment(self, stamps, missing, begin, after_break,
                 modulus) -> tuple[int, Break | None]:
        """The end of the run of samples from ``begin`` that continue the fit, and the break
        that ends it (None at the end of the chunk). ``after_break``: the break before
        ``begin`` is already applied."""
        n_times = stamps.shape[0]
        counts = self._counts(n_times - begin)
        if self._s[0] <= 0:  # nothing fitted yet: the first sample anchors the fit
            self._add(counts[:1], stamps[begin:begin + 1])
        predicted, slope = self._predict(counts)
        residual = stamps[begin:] - predicted
        threshold = self.threshold
        far = np.flatnonzero(np.abs(residual) > threshold)
        counted = np.zeros(n_times - begin, dtype=bool)
        if missing is not None:
            counted = missing[begin:] != 0
        candidates = sorted(set(far.tolist()) | set(np.flatnonzero(counted).tolist()))
        for k in candidates:
            if k == 0 and after_break:
                continue  # this sample already starts a new segment
            return begin + k, self._break(begin + k, residual[k], slope, missing, modulus)
        return n_times, None

    def _break(self, index: int, residual: float, slope: float, missing,
               modulus: int | None) -> Break:
        """What lies between sample ``index - 1`` and ``index``."""
        by_time = int(round(residual / slope))
        if missing is not None and missing[index] >= 0:
            n_missing = int(missing[index])
            if modulus and by_time - n_missing >= modulus / 2:  # the counter wrapped, maybe often
                n_missing += modulus * int(round((by_time - n_missing) / modulus))
            if n_missing == 0 and abs(residual) > self.threshold:
                return Break(index, 0, jump=residual, from_counter=True)
            return Break(index, n_missing, from_counter=True)
        if by_time >= 1 and residual > 0:
            return Break(index, by_time)
        return Break(index, 0, jump=residual)

    def _emit(self, stamps: np.ndarray) -> np.ndarray:
        """Fit these samples and return their dejittered times (slew-limited)."""
        counts = self._counts(stamps.size)
        if self._s[0] > 0:  # the jitter against the fit before these samples
            predicted, _ = self._predict(counts)
            rate = self._lam_jitter ** counts.size
            mean_sq = float(np.mean((stamps - predicted) ** 2))
            self.jitter = float(np.sqrt(rate * self.jitter**2 + (1 - rate) * mean_sq))
        self._add(counts, stamps)
        desired, slope = self._predict(counts)
        if self._out_count is None:
            out = desired
        else:
            carried = self._out_time + slope * (counts - self._out_count)
            error = desired[0] - carried[0]
            k = np.arange(1, counts.size + 1)
            out = carried + np.sign(error) * np.minimum(abs(error), SLEW * slope * k)
        self._out_count, self._out_time = int(counts[-1]), float(out[-1])
        self._count = int(counts[-1]) + 1
        return out
