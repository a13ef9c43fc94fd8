"""How often the window redraws: the full rate while the generator keeps up, less while it
is behind, and within a share of one core for the whole GUI thread.

On a 2-core machine the window's drawing and the image generator share the CPU (and Python's
interpreter lock). When the generator is the bottleneck, every frame the window draws is time
taken from the next image, so the window then redraws its traces and spectrum less often and
comes back to the full rate once the generator keeps up again. The demo's verdict (a small
image classifier run on each new image, ~5-10 ms) then judges at most two images a second,
and at most ten new images a second are shown large (scaling one to the panel is ~5 ms; the
ONNX demo makes 15-20 a second): the others go to the history strip only.

The generator is *behind* when a window was dropped lately (a newer window replaced one that
was still waiting: ``SessionCallbacks.window_dropped``), or when it was busy (working or with a
window waiting) for most of the last second, as it is all the time with the ``latest`` trigger,
which hands it the next window as soon as it is free. It has *caught up* when no window was
dropped for :data:`DROP_MEMORY` seconds and its busy share fell below :data:`CAUGHT_UP_SHARE`
(generation paused, a slower trigger, an ``interval`` it keeps up with).

Within a state, the trace interval follows the cost of one redraw (a share of one core for the
traces: 128 channels redraw less often than 16), and :class:`CpuBudget` stretches it further
when the GUI thread as a whole (``time.thread_time`` on it: painting, compositing, the status
bar, the history, the verdict) takes more than the state's share, e.g. on a slow display.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

BEHIND_SHARE = 0.7  # busy this share of the recent time: behind
CAUGHT_UP_SHARE = 0.4  # busy less than this (and no drop lately): caught up again
BUSY_TIME_CONSTANT = 1.0  # s, memory of the busy share
DROP_MEMORY = 2.0  # s a dropped window counts as "behind"


@dataclass(frozen=True)
class RedrawRates:
    """How often the window's views redraw in one pacing state.

    Attributes:
        traces_ms: the shortest interval between two trace redraws (the highest rate).
        traces_share: the share of one core the trace redraws may take: where one redraw
            costs more (many channels, a wide plot, a slow display), the interval grows to
            ``cost / share``, up to :data:`SLOWEST_TRACES_MS`.
        spectrum_ms: the interval between two spectrum estimates.
        verdict_ms: the shortest interval between two images judged by the demo's thought
            classifier (0: every image); the match rate is then over the judged ones.
        gui_share: the share of one core the whole GUI thread should stay within
            (:class:`CpuBudget` stretches the trace interval when it does not).
        image_ms: the shortest interval between two new images shown large (0: each one);
            faster ones go to the history strip and the newest is shown after the interval.
    """

    traces_ms: int
    traces_share: float
    spectrum_ms: int
    verdict_ms: int = 0
    gui_share: float = 0.12
    image_ms: int = 0

    def traces_interval(self, frame_seconds: float, stretch: float = 1.0) -> int:
        """The trace timer's interval (ms) for redraws that cost ``frame_seconds`` of CPU each
        (copy, decimation, curve and its painting), times ``stretch`` (:class:`CpuBudget`)."""
        wanted = 1000.0 * max(frame_seconds, 0.0) / self.traces_share
        return int(min(max(self.traces_ms, wanted) * max(stretch, 1.0), SLOWEST_TRACES_MS))


SLOWEST_TRACES_MS = 250  # never fewer than 4 trace redraws a second
KEEPING_UP = RedrawRates(traces_ms=33, traces_share=0.10, spectrum_ms=1000)  # up to 30/s
BEHIND = RedrawRates(traces_ms=80, traces_share=0.04, spectrum_ms=2000, verdict_ms=500,
                     gui_share=0.10, image_ms=100)  # up to 12.5/s; images: up to 10/s large
LOADING = RedrawRates(traces_ms=100, traces_share=0.04, spectrum_ms=1000,
                      gui_share=0.05)  # the imports first
BUDGET_PERIOD = 1.0  # s between two looks at the GUI thread's CPU time
STRETCH_STEP = 2.0  # the stretch changes by at most this factor a look
RELAX_BELOW = 0.75  # under this share of the budget, the stretch relaxes toward 1


class CpuBudget:
    """Keeps the GUI thread's CPU share within a budget by stretching the trace interval.

    Call :meth:`update` on the GUI thread with ``time.thread_time()`` (that thread's CPU
    seconds) on every redraw tick; once a :data:`BUDGET_PERIOD` it compares the share of one
    core used since the last look with the budget and returns the new :attr:`stretch` (>= 1).
    """

    def __init__(self) -> None:
        self.stretch = 1.0
        self.share = 0.0  # the GUI thread's CPU share over the last period
        self._mark: tuple[float, float] | None = None  # (wall, cpu) at the last look

    def __repr__(self) -> str:
        return f"<CpuBudget: GUI thread {self.share:.0%} of a core | stretch {self.stretch:.2f}>"

    def update(self, cpu_seconds: float, now: float, budget: float) -> float:
        if self._mark is None:
            self._mark = (now, cpu_seconds)
            return self.stretch
        wall, cpu = self._mark
        if now - wall < BUDGET_PERIOD:
            return self.stretch
        self.share = (cpu_seconds - cpu) / (now - wall)
        self._mark = (now, cpu_seconds)
        ratio = self.share / budget
        if ratio > 1.0:
            self.stretch *= min(ratio, STRETCH_STEP)
        elif ratio < RELAX_BELOW and self.stretch > 1.0:
            self.stretch *= max(ratio / RELAX_BELOW, 1.0 / STRETCH_STEP)
        self.stretch = min(max(self.stretch, 1.0), SLOWEST_TRACES_MS / 33.0)
        return self.stretch

    def reset(self) -> None:
        """Another pacing state or session: start from the plain interval again."""
        self.stretch = 1.0
        self._mark = None


class GeneratorLoad:
    """Whether the generator is behind the stream, from what the session reports.

    Feed it :meth:`dropped` for each dropped window and :meth:`poll` with the generator's busy
    state (``GenerationWorker.busy``: working, or a window waiting) on every redraw tick; read
    :attr:`behind`. Times are ``time.monotonic()`` seconds (tests pass their own).
    """

    def __init__(self) -> None:
        self.behind = False
        self.busy_share = 0.0  # exponentially weighted share of time the generator was busy
        self.n_dropped = 0
        self._last_poll: float | None = None
        self._last_drop = -math.inf

    def __repr__(self) -> str:
        return (f"<GeneratorLoad: {'behind' if self.behind else 'keeping up'} | busy "
                f"{self.busy_share:.0%} | dropped {self.n_dropped}>")

    def dropped(self, now: float | None = None) -> bool:
        """A window was dropped: the generator is behind. Returns :attr:`behind`."""
        self._last_drop = time.monotonic() if now is None else now
        self.n_dropped += 1
        self.behind = True
        return True

    def poll(self, busy: bool, now: float | None = None) -> bool:
        """One look at the generator (``busy``: working or a window waiting). Returns
        :attr:`behind` after it."""
        now = time.monotonic() if now is None else now
        if self._last_poll is not None and now > self._last_poll:
            weight = 1.0 - math.exp(-(now - self._last_poll) / BUSY_TIME_CONSTANT)
            self.busy_share += weight * (float(busy) - self.busy_share)
        self._last_poll = now
        recent_drop = now - self._last_drop < DROP_MEMORY
        if self.busy_share >= BEHIND_SHARE or recent_drop:
            self.behind = True
        elif self.busy_share < CAUGHT_UP_SHARE:
            self.behind = False
        return self.behind

    def reset(self) -> None:
        """A new session: nothing is known about its generator yet."""
        self.behind = False
        self.busy_share = 0.0
        self._last_poll = None
        self._last_drop = -math.inf

    @property
    def rates(self) -> RedrawRates:
        return BEHIND if self.behind else KEEPING_UP
