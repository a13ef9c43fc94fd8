"""The desktop window, offscreen, with real sessions (synthetic source, tiny models).

Waits are bounded by deadlines and end as soon as the awaited condition holds; nothing here
times anything.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mne
import numpy as np
import pytest

# no importorskip: where Qt cannot load, the GUI tests fail instead of silently skipping
from PySide6 import QtCore, QtWidgets

from dd_live.config import AppConfig, BufferConfig, GeneratorConfig
from dd_live.errors import GenerationError
from dd_live.gui import MainWindow, run_app
from dd_live.gui.traces import PeakCache, peak_decimate, stack_traces
from dd_live.session import LiveSession
from dd_live.sources import SyntheticSource
from dd_live.sources.base import empty_chunk
from dd_live.stream import RingBuffer

N_CHANNELS = 16
SFREQ = 250.0
POLL_INTERVAL = 0.01  # s between two event-loop passes while a test waits
SYNTHETIC_SPEC = f"synthetic?n_channels={N_CHANNELS}&sfreq={SFREQ:g}"


@pytest.fixture(scope="module")
def app():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.fixture
def settings(tmp_path):
    """Settings in a temp ini file, never the user's."""
    return QtCore.QSettings(str(tmp_path / "dd-live.ini"), QtCore.QSettings.Format.IniFormat)


@pytest.fixture
def make_window(app, settings):
    """``make_window(config, **kwargs)``: a MainWindow (temp settings by default); any still
    running at the end of the test is shut down, so no session thread outlives its test."""
    windows = []

    def make(config, **kwargs):
        kwargs.setdefault("settings", settings)
        window = MainWindow(config, **kwargs)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.phase != "idle":
            close_window(window)


def wait_until(condition, timeout: float) -> bool:
    """Run the event loop until ``condition()`` holds or ``timeout`` seconds passed.

    Not ``QTest.qWait``: PySide6 holds the GIL inside it, which starves the session's threads
    (a model import on the start thread never finished while the test qWait-ed).
    """
    app = QtWidgets.QApplication.instance()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(POLL_INTERVAL)
    return True


def close_window(window: MainWindow, timeout: float = 20.0) -> None:
    """Close through the ordered shutdown path and wait until it has really closed."""
    closed = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    assert wait_until(lambda: closed, timeout), f"the window did not close: {window!r}"


def tiny_config(**sections) -> AppConfig:
    return AppConfig().replace(source={"spec": SYNTHETIC_SPEC},
                               generator=GeneratorConfig(model="tiny", steps=2), **sections)


def channel_rows(ys: np.ndarray, n_channels: int) -> list[np.ndarray]:
    """Split the one NaN-separated curve back into its channel segments."""
    rows = [row[np.isfinite(row)] for row in np.split(ys, np.flatnonzero(np.isnan(ys)) + 1)]
    return [row for row in rows if row.size][:n_channels]


class FailingDecoder:
    """A decoder whose every call fails, as a broken model would."""

    n_channels = 16
    n_times = 64
    description = "a decoder that always fails"

    def __call__(self, eeg, seed):
        raise GenerationError("the sampler produced NaN latents (test decoder)")


class SilenceableSource(SyntheticSource):
    """Synthetic EEG that delivers nothing while ``silent`` is set (a lost headset)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.silent = threading.Event()

    def _read(self):
        if self.silent.is_set():
            time.sleep(self.chunk_size / self.info.sfreq)
            return empty_chunk(self.info.n_channels)
        return super()._read()


# -- pure helpers ----------------------------------------------------------------------------
def test_peak_decimate_keeps_spikes_and_stack_separates_channels():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 10_000)) * 1e-6
    data[1, 5_003] = 1e-3  # one spike that plain subsampling would miss
    positions, values = peak_decimate(data, 200)
    assert values.shape == (3, 400) and positions.shape == (400,)
    assert values[1].max() == pytest.approx(1e-3)
    assert np.all(np.diff(positions) > 0)
    xs, ys = stack_traces(positions, values, scale=50e-6, gains=np.array([1.0, 0.5, 2.0]))
    assert np.isnan(ys).sum() == 3
    rows = channel_rows(ys, 3)
    assert [round(float(np.median(r))) for r in rows] == [2, 1, 0]  # first channel on top
    short_positions, short = peak_decimate(data[:, :100], 200)
    assert short is not None and short.shape == (3, 100) and short_positions[-1] == 99


# -- the real window with a real session ------------------------------------------------------
def test_window_runs_live_session(make_window, tmp_path):
    window = make_window(tiny_config())
    window.show()
    window.start_session()
    assert window.phase == "starting"
    assert wait_until(lambda: window.phase != "starting", 60)
    assert window.phase == "running", window.banner.text()
    assert wait_until(lambda: window.traces.n_redraws >= 5, 10)
    _, ys_before = window.traces.curve.getData()
    assert wait_until(lambda: len(window.gallery.results) >= 1
                      and window.status.sfreq_measured > 0
                      and window.spectrum.n_updates >= 1, 60), window.banner.text()
    xs, ys = window.traces.curve.getData()
    rows = channel_rows(ys, N_CHANNELS)
    assert len(rows) == N_CHANNELS and np.isnan(ys).sum() == N_CHANNELS
    assert not np.array_equal(ys_before, ys), "the traces did not change between redraws"
    assert xs[np.isfinite(xs)].max() <= 0 and xs[np.isfinite(xs)].min() >= -window.traces.span
    assert "Hz" in window.status.rate.text() and window.status.sfreq_measured > 0
    assert "carry no meaning" in window.gallery.note.text()
    assert window.gallery.nearest.isHidden()  # no gallery: no nearest-images strip
    newest = window.gallery.results[-1]
    window.gallery.select(newest.index)  # as a click on its thumbnail does
    details = window.gallery.details.text()
    assert f"samples {newest.window_start}–{newest.window_stop}" in details
    assert "sample " in details and "total " in details  # per-stage timings
    assert window.status.latency.text().startswith("latency ") and " ms" in window.status.latency.text()
    assert all(words in window.status.latency.toolTip() for words in ("reading the EEG", "drawing"))
    assert window.refresh_traces()
    x0, x1 = window.traces.window_region.getRegion()
    assert x1 - x0 == pytest.approx((newest.window_stop - newest.window_start) / SFREQ, rel=1e-6)
    on_screen = (window.session.raw.n_written - newest.window_stop) / SFREQ < window.traces.span
    assert window.traces.window_region.isVisible() == on_screen
    shot = window.save_screenshot(tmp_path / "main_window.png")
    assert shot.stat().st_size > 10_000
    window.channel_combo.setCurrentIndex(1)
    window.gain_spin.setValue(2.5)
    assert window.traces.gains[1] == 2.5
    channel = window.channel_combo.currentText()
    session = window.session
    close_window(window)
    assert session.state == "stopped"
    assert not session.acquisition._thread or not session.acquisition._thread.is_alive()
    assert make_window(AppConfig())._gains == {channel: 2.5}  # a view preference: remembered


def test_generation_error_is_shown(make_window):
    window = make_window(
        tiny_config(),
        session_factory=lambda config: LiveSession(config, decoder=FailingDecoder()))
    window.show()
    window.start_session()
    assert wait_until(lambda: "generation failed" in window.banner.text(), 30)
    assert window.banner.isVisible()
    assert "NaN latents" in window.banner.text()
    close_window(window)


def test_stalled_stream_is_shown_and_cleared(make_window):
    source = SilenceableSource(N_CHANNELS, SFREQ)
    config = tiny_config(buffer=BufferConfig(seconds=10, stall_timeout=0.3))
    window = make_window(config, session_factory=lambda cfg: LiveSession(
        cfg, source=source, generate=False))
    window.show()
    window.start_session()
    assert wait_until(lambda: window.traces.n_redraws >= 3, 30)
    source.silent.set()
    assert wait_until(lambda: "stalled" in window.banner.text(), 10)
    assert window.banner.isVisible()
    source.silent.clear()
    assert wait_until(lambda: not window.banner.isVisible(), 10), window.banner.text()
    close_window(window)


def test_settings_remember_the_view_and_the_setup_only_when_asked(make_window, settings):
    window = make_window(AppConfig())
    window.controls.steps_spin.setValue(7)
    window.controls.notch_combo.setCurrentText("60")
    window.span_spin.setValue(20)
    window.set_layout("signals")
    close_window(window)
    reopened = QtCore.QSettings(settings.fileName(), QtCore.QSettings.Format.IniFormat)
    again = make_window(AppConfig(), settings=reopened)
    assert again.span_spin.value() == 20 and again.layout_mode == "signals"  # the view: kept
    assert again.controls.steps_spin.value() == 20  # the setup: not remembered by default
    assert again.controls.config().filter.notch == AppConfig().filter.notch
    again.remember_action.setChecked(True)  # Settings -> Remember this setup
    again.controls.steps_spin.setValue(7)
    again.controls.state_combo.setCurrentText("visual")
    close_window(again)
    remembered = make_window(AppConfig(), settings=reopened)
    assert remembered.controls.steps_spin.value() == 7
    assert remembered.controls.source_spec() == "synthetic:visual"
    close_window(remembered)
    # a setting the caller's config sets (a command-line flag) beats the remembered one
    explicit = make_window(AppConfig(generator=GeneratorConfig(steps=3)), settings=reopened)
    assert explicit.controls.steps_spin.value() == 3
    assert explicit.controls.config().generator.steps == 3
    explicit.reset_action.trigger()  # Settings -> Reset settings
    assert explicit.span_spin.value() == 10 and not explicit.remember_action.isChecked()
    close_window(explicit)
    after_reset = make_window(AppConfig(), settings=reopened)
    assert after_reset.controls.steps_spin.value() == 20
    assert after_reset.controls.source_spec() == "synthetic"
    close_window(after_reset)


def test_trace_redraws_do_not_leak_references_to_none(app, make_window):
    """PySide6 6.12.0 on Python 3.11 loses a reference to ``None`` on each plot redraw and
    crashes once ~66 000 are gone (within a minute of live plots). Counting redraws cannot see
    that; ``sys.getrefcount(None)`` can: it must stay flat (to within a few) over 50 redraws."""
    warmup, ticks = 10, 50
    source = SyntheticSource(N_CHANNELS, SFREQ, realtime=False, chunk_duration=1 / 30)
    window = make_window(tiny_config(), session_factory=lambda cfg: LiveSession(
        cfg, source=source, generate=False, threaded=False))
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase != "starting", 10)
    assert window.phase == "running", window.banner.text()
    for timer in (window.trace_timer, window.spectrum_timer, window.status_timer):
        timer.stop()  # the test drives the ticks itself
    session = window.session

    def redraw(n: int) -> None:
        for _ in range(n):
            session.step()
            assert window.refresh_traces()
            app.processEvents()

    redraw(warmup)  # caches, fonts and axis ticks settle
    gc.collect()
    before = sys.getrefcount(None)
    redraw(ticks)
    gc.collect()
    lost = sys.getrefcount(None) - before
    assert window.traces.n_redraws == warmup + ticks
    assert session.raw.n_written == (warmup + ticks) * source.chunk_size
    assert abs(lost) < ticks // 5, f"{lost} references to None gained over {ticks} redraws"
    close_window(window)


def test_lsl_discovery_lists_a_visible_stream(make_window, stream_name):
    import pylsl

    info = pylsl.StreamInfo(stream_name, "EEG", 4, 250, "float32", stream_name)
    outlet = pylsl.StreamOutlet(info)
    window = make_window(AppConfig())
    window.controls.lsl_refresh.click()
    combo = window.controls.lsl_combo
    assert wait_until(lambda: window.controls.lsl_refresh.isEnabled()
                      and any(stream_name in combo.itemText(i) for i in range(combo.count())), 15)
    window.controls.kind_combo.setCurrentIndex(2)
    combo.setCurrentIndex(next(i for i in range(combo.count()) if stream_name in combo.itemText(i)))
    assert window.controls.source_spec() == f"lsl-id:{stream_name}"
    close_window(window)
    del outlet


def test_run_app_closes_itself_after_duration(app, settings, tmp_path):
    shot = tmp_path / "run_app.png"
    code = run_app(tiny_config(), duration=2.0, screenshot=shot, settings=settings,
                   session_factory=lambda cfg: LiveSession(cfg, generate=False))
    assert code == 0
    assert shot.is_file() and shot.stat().st_size > 5_000


def test_run_app_reports_a_bad_start(app, settings, capsys):
    config = AppConfig().replace(source={"spec": "lsl:no-such-stream?timeout=0.2"})
    code = run_app(config, duration=1.5, settings=settings)
    assert code == 1
    assert "could not start" in capsys.readouterr().err


def test_ctrl_c_takes_the_ordered_shutdown(app, settings, caplog):
    sessions = []

    def factory(config):
        sessions.append(LiveSession(config, generate=False))
        return sessions[-1]

    def press_ctrl_c():
        if sessions and sessions[0].state == "running":
            signal.raise_signal(signal.SIGINT)
        else:
            QtCore.QTimer.singleShot(50, press_ctrl_c)

    # the handler the window found (Python's default, or SIG_IGN when the suite itself was
    # started as a background job) is the one it must put back
    before = signal.getsignal(signal.SIGINT)
    QtCore.QTimer.singleShot(50, press_ctrl_c)
    with caplog.at_level(logging.INFO, logger="dd_live"):
        code = run_app(tiny_config(), duration=30, settings=settings, session_factory=factory)
    assert code == 0
    assert "closing the window (ordered shutdown)" in caplog.text
    assert sessions[0].state == "stopped"
    assert signal.getsignal(signal.SIGINT) is before


def test_record_button_records_while_running(make_window, tmp_path):
    """The record box starts and stops a session folder mid-run; MNE opens what it wrote."""
    window = make_window(tiny_config())
    window.controls.record_check.setChecked(False)
    window.controls.record_root.setText(str(tmp_path / "runs"))
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase == "running", 60)
    window.controls.record_check.setChecked(True)
    folder = window.session.recording_path
    assert folder is not None and folder.parent == tmp_path / "runs"
    assert wait_until(lambda: window.session.raw.n_written > 2 * SFREQ, 30)
    window.controls.record_check.setChecked(False)
    assert window.session.recording_path is None
    assert "session saved to" in window.statusBar().currentMessage()
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", verbose="error")
    assert raw.n_times > 0
    close_window(window)


LAPTOP_PROBE = """
import json, sys, time
from PySide6 import QtCore, QtWidgets
from dd_live.config import AppConfig, GeneratorConfig
from dd_live.gui import MainWindow

app = QtWidgets.QApplication(sys.argv[:1])
settings = QtCore.QSettings(sys.argv[1], QtCore.QSettings.Format.IniFormat)
config = AppConfig().replace(source={"spec": sys.argv[2]},
                             generator=GeneratorConfig(model="tiny", steps=1))
window = MainWindow(config, settings=settings)
window.show()
window.start_session()

def wait(condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    return condition()

def rect(widget):
    top_left = widget.mapToGlobal(QtCore.QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]

assert wait(lambda: len(window.gallery.results) >= 2, 90), window.banner.text()
window.refresh_status()
screen = window.screen().geometry()
out = {"screen": [screen.x(), screen.y(), screen.width(), screen.height()],
       "window": rect(window), "image": rect(window.gallery.image),
       "pixmap": [window.gallery.image.pixmap().width(), window.gallery.image.pixmap().height()],
       "strip": rect(window.gallery.strip), "status": rect(window.statusBar()),
       "status_text": [label.text() for label in window.statusBar().findChildren(QtWidgets.QLabel)]}
window.fullscreen_action.trigger()  # F11
assert wait(lambda: window.gallery.image.width() > 0.9 * screen.width(), 10)
out["fullscreen_image"] = rect(window.gallery.image)
window.fullscreen_action.trigger()
assert wait(lambda: window.signals.isVisible() and window.dock.isVisible(), 10)
out["after_fullscreen_image"] = rect(window.gallery.image)
out["after_fullscreen_window"] = rect(window)
window.gallery.select(window.gallery.results[0].index)  # a click on the oldest thumbnail
out["pinned"] = window.gallery.shown_index == window.gallery.results[0].index
window.close()
assert wait(lambda: window.phase == "idle" and not window.isVisible(), 30)
print("GEOMETRY " + json.dumps(out))
"""


def inside(inner, outer) -> bool:
    x, y, w, h = inner
    ox, oy, ow, oh = outer
    return ox <= x and oy <= y and x + w <= ox + ow and y + h <= oy + oh and w > 0 and h > 0


def test_window_fits_a_1280x720_screen_picture_first(tmp_path):
    """On a 1280x720 screen (Qt's offscreen platform configured to that size, in a fresh
    process), the window sizes itself to fit; the image, the history strip and the status bar
    are on the screen, the image panel takes >= 40 % of the screen width, full screen gives the
    image the whole width, and a clicked thumbnail stays shown."""
    screen = tmp_path / "screen.json"
    screen.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0, "width": 1280,
                                               "height": 720, "logicalDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    proc = subprocess.run([sys.executable, "-c", LAPTOP_PROBE, str(tmp_path / "s.ini"),
                           SYNTHETIC_SPEC], capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("GEOMETRY ")]
    g = json.loads(line[len("GEOMETRY "):])
    assert g["screen"] == [0, 0, 1280, 720]
    assert inside(g["window"], g["screen"]), g
    for part in ("image", "strip", "status"):
        assert inside(g[part], g["window"]), (part, g)
    assert g["image"][2] >= 0.4 * 1280, g
    assert min(g["pixmap"]) >= 0.9 * min(g["image"][2:]), g  # upscaled to fill the panel
    assert g["fullscreen_image"][2] >= 0.9 * 1280, g
    assert g["after_fullscreen_image"][2] >= 0.4 * 1280, g
    assert inside(g["after_fullscreen_window"], g["screen"]), g
    texts = " | ".join(g["status_text"])
    for words in ("images/s", "latency ", " ms", "buffer ", " s of 30 s", "not recording"):
        assert words in texts, texts
    assert "enc/smp" not in texts
    assert g["pinned"]


def test_peak_cache_equals_decimating_the_whole_span():
    """Incremental min/max bins (each computed once) equal decimating the span from scratch."""
    rng = np.random.default_rng(0)
    buffer = RingBuffer(3, 5000)
    cache = PeakCache()
    written = 0
    for chunk in rng.integers(1, 90, 200):
        data = rng.standard_normal((3, chunk))
        buffer.write(data, np.arange(written, written + chunk) / 1000.0)
        written += chunk
        positions, values, n_written = cache.update(buffer, 2000, 100)  # bins of 20 samples
        end = (written // 20) * 20
        first = -(-max(written - 2000, 0) // 20) * 20
        full, _ = buffer.get(first, end)
        expected = np.stack([full.reshape(3, -1, 20).min(2), full.reshape(3, -1, 20).max(2)], 2)
        n_full = expected.shape[1]
        np.testing.assert_array_equal(values[:, : 2 * n_full], expected.reshape(3, -1))
        tail, _ = buffer.get(end, written)
        np.testing.assert_array_equal(values[:, 2 * n_full :], tail)
        assert n_written == written
        assert positions[0] == first
        assert positions[-1] == (written - 1 if written > end else end - 10)


def test_replay_bar_pauses_seeks_and_sets_the_speed(make_window, tmp_path):
    """A recording replayed in the window: the replay bar shows, pauses the file (no samples
    arrive), seeks with the scrub bar, changes the speed, and plays on."""
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz"], SFREQ, "eeg")
    data = np.random.default_rng(0).normal(0, 10e-6, (4, int(20 * SFREQ)))
    path = tmp_path / "rec_raw.fif"
    mne.io.RawArray(data, info, verbose="error").save(path, verbose="error")
    window = make_window(AppConfig().replace(source={"spec": f"file:{path}"},
                                             generator={"model": "none"}))
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase == "running", 30), window.banner.text()
    bar, source = window.replay_bar, window.session.source
    assert bar.isVisible() and window.session.decoder is None
    assert "no model" in window.gallery.note.text()
    assert wait_until(lambda: window.session.raw.n_written > 0, 10)
    bar.pause_button.click()
    assert source.paused and bar.pause_button.text() == "Play"
    wait_until(lambda: False, 0.2)  # a chunk read before the pause may still land
    n_paused = window.session.raw.n_written
    wait_until(lambda: False, 0.5)
    assert window.session.raw.n_written == n_paused  # nothing arrives while paused
    bar.slider.setValue(150)  # the scrub bar at 15.0 s
    bar.slider.sliderReleased.emit()
    assert source.position == pytest.approx(15.0)
    assert "0:15.0 / 0:20.0" in bar.position_label.text()
    bar.speed_combo.setCurrentText("4")
    assert source.speed == 4.0
    bar.pause_button.click()
    assert not source.paused
    assert wait_until(lambda: window.session.raw.n_written > n_paused, 10)
    window.refresh_status()
    assert bar.slider.value() >= 150
    close_window(window)


def test_a_start_error_is_a_dialog_not_a_traceback(make_window, caplog):
    """A stream that is not there: the window shows the reason in a dialog and a banner; no
    traceback is printed; the window stays usable (Start again)."""
    window = make_window(AppConfig().replace(source={"spec": "lsl:no-such-stream?timeout=0.2"},
                                             generator={"model": "none"}))
    window.show()
    window.start_session()
    assert wait_until(lambda: window.error_dialog is not None, 30)
    dialog = window.error_dialog
    assert dialog.isVisible()
    assert "no-such-stream" in dialog.informativeText()
    assert "dd-live devices" in dialog.informativeText()  # how to find the right name
    assert "could not start" in window.banner.text()
    assert window.phase == "idle" and window.controls.start_button.isEnabled()
    tracebacks = [r for r in caplog.records if r.exc_info and r.levelno >= logging.INFO]
    assert not tracebacks, tracebacks  # a traceback only with -v (debug)
    dialog.close()


@pytest.mark.parametrize("mode", ["latest", "interval", "marker", "recorded"])
def test_the_window_runs_the_settings_it_was_given(app, mode, tmp_path):
    """What the command line and config files say reaches the session unchanged through the
    window's controls (a window that silently ran another trigger mode was a bug)."""
    from dd_live.config import WINDOW_MODES
    from dd_live.gui.controls import ControlPanel

    assert mode in WINDOW_MODES
    config = AppConfig().replace(
        source={"spec": SYNTHETIC_SPEC}, window={"mode": mode, "length": 0.5, "hop": 0.25,
                                                 "min_hop": 0.1},
        generator={"model": "none", "steps": 4, "seed": 7, "scheduler": "ddim"},
        record={"enabled": True, "root": str(tmp_path)})
    panel = ControlPanel(config)
    assert panel.config() == config
    assert panel.window_min_hop.isEnabled() == (mode == "latest")


def test_traces_show_while_the_model_loads(make_window):
    """The stream is on screen before the model is ready: a stream-only session runs while the
    model loads (held here until the traces were drawn), then the real session takes over."""
    from dd_live.gui.main_window import load_decoder

    window = make_window(tiny_config())
    gate = threading.Event()
    stages = []

    def gated_load(generator_config, progress):
        assert gate.wait(60), "the test never released the model load"
        return load_decoder(generator_config, lambda stage: (stages.append(stage),
                                                              progress(stage)))

    window.load_decoder = gated_load
    window.show()
    window.start_session()
    assert wait_until(lambda: window.traces.n_redraws >= 3, 30), window.banner.text()
    assert window.phase == "starting" and window.preview is not None
    assert window.status.progress.isVisible() and window.status.progress_label.text()
    _, ys = window.traces.curve.getData()
    assert len(channel_rows(ys, N_CHANNELS)) == N_CHANNELS  # live traces, no model yet
    gate.set()
    assert wait_until(lambda: window.phase == "running", 60), window.banner.text()
    assert window.preview is None and window.session.decoder is not None
    assert window.session.config.generator.model == "tiny"
    assert stages and stages[0].startswith("loading model")
    assert not window.status.progress.isVisible()
    assert wait_until(lambda: len(window.gallery.results) >= 1, 60), window.banner.text()
    close_window(window)


def test_controls_dock_collapses_and_the_layout_switches(make_window):
    window = make_window(AppConfig())
    window.resize(1280, 720)
    window.show()
    assert wait_until(lambda: window.gallery.image.width() > 0, 5)
    window.set_layout("picture")
    wait_until(lambda: False, 0.05)
    picture = window.gallery.image.width()
    window.controls_action.trigger()  # View -> Controls panel (Ctrl+B)
    assert wait_until(lambda: not window.dock.isVisible(), 5)
    window.set_layout("signals")
    wait_until(lambda: False, 0.05)
    assert window.gallery.width() < window.signals.width()
    window.set_layout("picture")
    wait_until(lambda: False, 0.05)
    assert window.gallery.image.width() >= picture and window.gallery.width() >= 0.45 * 1280
    window.controls_action.trigger()
    assert wait_until(lambda: window.dock.isVisible(), 5)
    close_window(window)


def test_reset_settings_from_the_command_line(tmp_path, monkeypatch, capsys):
    from dd_live.cli import main
    from dd_live.gui.settings import default_settings

    for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
        QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, str(tmp_path))
    try:
        remembered = default_settings()
        remembered.setValue("view/span", 20)
        remembered.sync()
        assert main(["run", "--reset-settings", "--headless", "--source",
                     "synthetic?n_channels=2&sfreq=250", "--model", "none",
                     "--duration", "0.3"]) == 0
        assert "forgot the remembered window settings" in capsys.readouterr().err
        assert not default_settings().contains("view/span")
    finally:
        default = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
        for fmt in (QtCore.QSettings.Format.NativeFormat, QtCore.QSettings.Format.IniFormat):
            QtCore.QSettings.setPath(fmt, QtCore.QSettings.Scope.UserScope, default)


def test_full_screen_keys_and_typing_an_f(make_window):
    """F11 shows the image full screen and Esc leaves; an F typed into a text field is text."""
    from PySide6 import QtTest

    window = make_window(AppConfig())
    window.show()
    window.activateWindow()
    assert wait_until(window.isActiveWindow, 5)  # shortcuts reach the active window only
    window.controls.kind_combo.setCurrentIndex(3)  # file replay: a path field
    edit = window.controls.file_edit
    edit.setFocus()
    QtTest.QTest.keyClick(edit, QtCore.Qt.Key.Key_F)
    assert edit.text() == "f" and not window.image_fullscreen
    window.traces.setFocus()
    QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_F11)
    assert window.image_fullscreen and not window.signals.isVisible()
    QtTest.QTest.keyClick(window, QtCore.Qt.Key.Key_Escape)
    assert not window.image_fullscreen and window.signals.isVisible()
    close_window(window)
