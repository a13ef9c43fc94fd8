"""What keeps the window cheap, on the real window offscreen with real sessions: views that are
not on screen are not redrawn, data that did not change is not re-sent, the traces are
decimated to the plot's width and clipped to its span, the axes are cached and the channel
names thinned, and the redraw rates drop while the generator is behind and come back.

Sessions here run unthreaded where the test drives the ticks itself (``session.step()`` adds
one chunk, the test calls the timers' slots), and threaded with a tiny random model where the
generator's load is the point. Nothing here times anything: the speed itself is measured by
``benchmarks/live.py --window``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from test_gui import channel_rows, close_window, tiny_config, wait_until

from dd_live.config import AppConfig
from dd_live.gui import MainWindow
from dd_live.gui.pacing import (
    BEHIND,
    DROP_MEMORY,
    KEEPING_UP,
    SLOWEST_TRACES_MS,
    CpuBudget,
    GeneratorLoad,
)
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource


@pytest.fixture(scope="module")
def app():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.fixture
def make_window(app, tmp_path):
    windows = []

    def make(config, **kwargs):
        settings = QtCore.QSettings(str(tmp_path / "dd-live.ini"),
                                    QtCore.QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, dialogs=False, **kwargs)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.phase != "idle":
            close_window(window)


def stepped_window(make_window, n_channels: int = 16, sfreq: float = 250.0,
                   chunk_duration: float = 1 / 30):
    """A running window around an unthreaded session (no model): its timers stopped, so the
    test adds chunks with ``session.step()`` and calls the redraws itself; one second of
    signal is in."""
    source = SyntheticSource(n_channels, sfreq, realtime=False, chunk_duration=chunk_duration)
    config = AppConfig().replace(source={"spec": f"synthetic?n_channels={n_channels}"
                                                 f"&sfreq={sfreq:g}"}, generator={"model": "none"})
    window = make_window(config, session_factory=lambda cfg: LiveSession(
        cfg, source=source, generate=False, threaded=False))
    window.resize(1280, 720)
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase != "starting", 30)
    assert window.phase == "running", window.banner.text()
    for timer in (window.trace_timer, window.spectrum_timer, window.status_timer):
        timer.stop()
    QtWidgets.QApplication.processEvents()
    session = window.session
    while session.raw.n_written < sfreq:  # one second: enough for a spectrum estimate
        session.step()
    return window, session


class CallCounter:
    """Wraps a bound method and counts its calls (the call still happens)."""

    def __init__(self, owner, name: str) -> None:
        self.calls = 0
        self._method = getattr(owner, name)
        setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self._method(*args, **kwargs)


def test_hidden_views_are_not_redrawn_and_come_back(make_window):
    """Behind the full-screen image the traces and the spectrum are hidden: new samples arrive,
    but neither is redrawn and no spectrum is estimated; back from full screen, both are."""
    window, session = stepped_window(make_window)
    session.step()
    assert window.refresh_traces() and window.refresh_spectrum()
    redraws, estimates = window.traces.n_redraws, window.spectrum.n_updates
    welch = CallCounter(window.spectrum, "refresh")
    window.toggle_image_fullscreen()
    assert not window.traces.isVisible() and not window.spectrum.isVisible()
    for _ in range(5):
        session.step()
        window._trace_tick()
        assert not window.refresh_spectrum()
    assert window.traces.n_redraws == redraws
    assert window.spectrum.n_updates == estimates and welch.calls == 0  # not even asked
    window.toggle_image_fullscreen()
    assert wait_until(window.spectrum.isVisible, 5)
    window._trace_tick()
    assert window.traces.n_redraws == redraws + 1
    assert window.refresh_spectrum() and window.spectrum.n_updates == estimates + 1
    window.signals.setSizes([sum(window.signals.sizes()), 0])  # the spectrum dragged shut
    assert wait_until(lambda: window.signals.sizes()[1] == 0, 5)
    session.step()
    assert not window.refresh_spectrum() and window.spectrum.n_updates == estimates + 1
    assert window.refresh_traces()
    close_window(window)


def test_unchanged_data_is_not_sent_again(make_window):
    """A redraw with no new sample and the same view re-sends nothing (no ``setData``, no
    Welch); a new chunk, another scale or another span is drawn."""
    window, session = stepped_window(make_window)
    session.step()
    assert window.refresh_traces() and window.refresh_spectrum()
    set_data = CallCounter(window.traces.curve, "setData")
    psd = CallCounter(window.spectrum.psd_curve, "setData")
    for _ in range(3):
        assert not window.refresh_traces()
        assert not window.refresh_spectrum()
    assert set_data.calls == 0 and psd.calls == 0
    session.step()
    assert window.refresh_traces() and set_data.calls == 1
    assert window.refresh_spectrum() and psd.calls == 1
    window.scale_spin.setValue(window.scale_spin.value() * 2)  # the same samples, drawn anew
    assert window.refresh_traces() and set_data.calls == 2
    window.span_spin.setValue(5)
    assert window.refresh_traces() and set_data.calls == 3
    window.gain_spin.setValue(3.0)
    assert window.refresh_traces() and set_data.calls == 4
    assert not window.refresh_traces() and set_data.calls == 4
    close_window(window)


def test_traces_are_decimated_to_the_plot_and_clipped_to_the_span(make_window):
    """128 channels at 1 kHz, 30 s on screen (30 000 samples a channel): the one curve holds
    about two points per pixel column per channel, only the span on screen; the axes are
    cached pixmaps, and the 128 channel names are thinned so that the ones written do not
    overlap."""
    window, session = stepped_window(make_window, n_channels=128, sfreq=1000.0,
                                     chunk_duration=0.5)
    window.span_spin.setValue(30)
    for _ in range(70):  # 35 s: more than the span
        session.step()
    assert window.refresh_traces()
    traces = window.traces
    xs, ys = traces.curve.getData()
    rows = channel_rows(ys, 128)
    width = traces.getPlotItem().getViewBox().width()
    assert len(rows) == 128
    bin_size = int(30 * 1000) // int(width)
    assert max(len(row) for row in rows) <= 2 * width + bin_size  # full bins + the newest tail
    finite = xs[np.isfinite(xs)]
    assert finite.min() >= -30.0 and finite.max() <= 0.0
    for name in ("left", "bottom"):
        axis = traces.getPlotItem().getAxis(name)
        assert axis.cacheMode() == QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache
    axis = traces.getPlotItem().getAxis("left")
    major, minor = axis._tickLevels
    assert len(major) + len(minor) == 128 and 1 < len(major) < 128
    row_px = traces.getPlotItem().getViewBox().height() / 129
    spacing = min(np.diff(sorted(position for position, _ in major)))  # rows between names
    assert spacing * row_px >= QtGui.QFontMetricsF(axis.font()).height()
    close_window(window)


def test_redraws_slow_down_while_the_generator_is_behind_and_come_back(make_window):
    """A tiny model with the ``latest`` trigger keeps the generator busy all the time: the
    window sees it behind and lowers its trace and spectrum rates; with generation paused the
    generator is idle, and the full rates come back."""
    window = make_window(tiny_config())
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase == "running", 120), window.banner.text()
    assert wait_until(lambda: window.generator_load.behind, 60), window.generator_load
    assert window.spectrum_timer.interval() == BEHIND.spectrum_ms > KEEPING_UP.spectrum_ms
    frame = window.traces.frame_seconds  # the same redraw cost, a longer interval
    assert window.trace_timer.interval() >= BEHIND.traces_ms
    assert window.trace_timer.interval() > KEEPING_UP.traces_interval(frame) or \
        window.trace_timer.interval() == SLOWEST_TRACES_MS
    assert wait_until(lambda: window.traces.n_redraws >= 3, 30)  # the traces still move
    window.controls.generation_button.setChecked(True)  # "Stop generation"
    assert wait_until(lambda: not window.generator_load.behind, 30), window.generator_load
    assert window.spectrum_timer.interval() == KEEPING_UP.spectrum_ms

    def keeping_up_interval() -> int:
        return KEEPING_UP.traces_interval(window.traces.frame_seconds, window.cpu_budget.stretch)

    assert wait_until(lambda: abs(window.trace_timer.interval() - keeping_up_interval()) < 10,
                      10), (window.trace_timer.interval(), keeping_up_interval())
    close_window(window)


def test_the_generator_load_follows_drops_and_the_busy_share():
    """Behind after a dropped window or when busy most of the recent time; caught up once
    the drop is old and the busy share has fallen (explicit clock: no waiting)."""
    load = GeneratorLoad()
    t = 100.0
    for _ in range(20):  # idle generator, polled at 25 Hz
        t += 0.04
        assert not load.poll(False, t)
    dropped_at = t
    assert load.dropped(dropped_at)
    for k in range(1, 60):  # a drop counts for DROP_MEMORY seconds
        t = dropped_at + 0.04 * k
        assert load.poll(False, t) == (t - dropped_at < DROP_MEMORY), t - dropped_at
    assert not load.behind
    for _ in range(100):  # busy for 4 s: behind once the share passed 70 %
        t += 0.04
        load.poll(True, t)
    assert load.behind and load.busy_share > 0.7
    t += 0.04
    assert load.poll(False, t)  # one idle look does not end it (hysteresis)
    for _ in range(50):
        t += 0.04
        load.poll(False, t)
    assert not load.behind and load.busy_share < 0.4
    # for the same cost per redraw, the rates behind are never above those keeping up
    for cost in (0.0, 0.001, 0.003, 0.01, 0.05):
        assert BEHIND.traces_interval(cost) > KEEPING_UP.traces_interval(cost) \
            or BEHIND.traces_interval(cost) == SLOWEST_TRACES_MS
    assert BEHIND.spectrum_ms > KEEPING_UP.spectrum_ms


def test_the_cpu_budget_stretches_the_trace_interval_and_relaxes_it():
    """A GUI thread above its budget gets longer trace intervals (by at most 2x a second),
    back within it they relax to the plain interval; never past the slowest rate."""
    budget = CpuBudget()
    now, cpu = 50.0, 3.0
    assert budget.update(cpu, now, 0.12) == 1.0  # the first look only marks
    plain = KEEPING_UP.traces_interval(0.002)
    stretches = []
    for _ in range(4):  # 30 % of a core against a 12 % budget
        now, cpu = now + 1.0, cpu + 0.30
        stretches.append(budget.update(cpu, now, 0.12))
    assert stretches[0] == 2.0 and stretches == sorted(stretches)
    assert budget.update(cpu + 0.1, now + 0.5, 0.12) == stretches[-1]  # once a second only
    assert KEEPING_UP.traces_interval(0.002, budget.stretch) == SLOWEST_TRACES_MS
    for _ in range(10):  # 3 % of a core: well within the budget
        now, cpu = now + 1.0, cpu + 0.03
        budget.update(cpu, now, 0.12)
    assert budget.stretch == 1.0 and KEEPING_UP.traces_interval(0.002, budget.stretch) == plain
    budget.update(cpu + 0.10, now + 1.0, 0.12)  # 10 %: within, no change
    assert budget.stretch == 1.0


def test_fewer_verdicts_and_large_images_while_the_generator_is_behind(make_window):
    """While the generator keeps up, the demo's judge (its shipped classifier) runs on every
    image and every image is shown large; while it is behind, at most one image per
    ``verdict_ms`` is judged and one per ``image_ms`` shown large (the others reach the history
    strip, and the newest is shown when the interval is over). Explicit clock: no waiting."""
    from test_verdict import _marker, _result

    from dd_live.assets import demo_model_dir
    from dd_live.verdict import ThoughtJudge

    window = make_window(AppConfig())
    now = [10.0]
    window.clock = lambda: now[0]
    judge = ThoughtJudge.from_model_folder(demo_model_dir(), 250.0)
    window.verdict.attach(judge)
    window.verdict.on_event(_marker(5000, "state:motor"))
    window._set_rates(KEEPING_UP)
    for k in range(3):
        window._on_image(_result(k, 5100 + k, "motor"))
        assert window.gallery.shown_index == k
    assert judge.n_judged == 3 and not window.image_timer.isActive()
    window._set_rates(BEHIND)
    for k in range(3, 6):
        window._on_image(_result(k, 5100 + k, "motor"))
    assert judge.n_judged == 3  # the last judged image was less than verdict_ms ago
    assert window.gallery.shown_index == 2 and window.image_timer.isActive()
    assert window.gallery.strip.count() == 6  # every image reaches the history strip
    window.image_timer.stop()
    window._show_newest_image()  # the timer's timeout: the newest, large
    assert window.gallery.shown_index == 5
    now[0] += BEHIND.verdict_ms / 1000
    window._on_image(_result(6, 5106, "motor"))
    window._on_image(_result(7, 5107, "motor"))
    assert judge.n_judged == 4
    assert window.gallery.shown_index == 6  # image_ms passed too: shown at once
    assert len(window.gallery.results) == 8
