"""The dd-live window: the image first, traces and spectrum beside it, controls in a dock.

The window observes a :class:`~dd_live.session.LiveSession`: the session's callbacks reach it
as queued Qt signals (:class:`~dd_live.gui.bridge.SessionBridge`), the traces are redrawn by a
timer from copies of the ring buffers, and starting or stopping a session (which may load a
model, or drain the generator) runs on a helper thread, so the GUI thread never waits on
the session's threads. Closing the window takes the session's ordered shutdown path.

The window costs the generator little (``dd_live.gui.pacing``): views that are not on screen
(the traces and spectrum behind a full-screen image, a collapsed splitter, a minimised window)
are not redrawn, a view whose data did not change is not re-sent, the spectrum is estimated
about once a second, and the redraw rate drops while the generator is behind.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from PySide6 import QtCore, QtGui, QtWidgets

from dd_live.config import NO_MODEL, AppConfig
from dd_live.errors import DDLiveError
from dd_live.gui.bridge import SessionBridge, TaskRunner
from dd_live.gui.controls import AUTO_STATE, ControlPanel
from dd_live.gui.gallery import ImageGallery
from dd_live.gui.pacing import LOADING, CpuBudget, GeneratorLoad, RedrawRates
from dd_live.gui.replay import ReplayBar
from dd_live.gui.settings import (
    APPLICATION,
    ORGANIZATION,
    REMEMBER_SETUP_KEY,
    default_settings,
    remembers_setup,
)
from dd_live.gui.spectrum import SpectrumView
from dd_live.gui.status import Banner, StatusPanel, elided
from dd_live.gui.traces import SPAN_RANGE, TracesView
from dd_live.gui.verdict import VerdictPanel

if TYPE_CHECKING:  # the session's stack (scipy's filters, the sources) loads after the window
    from dd_live.session import LiveSession

logger = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 250
RETIME_MS = 5  # the trace timer is re-timed when its interval should move by this much
STATUS_MESSAGE_MS = 4000
LSL_DISCOVERY_TIMEOUT = 1.0  # s
TINY_NOTE = "tiny random models: images carry no meaning"
STREAM_TROUBLE = {  # event kind / acquisition state -> banner level
    "stall": "warning", "stalled": "warning",
    "disconnect": "error", "disconnected": "error", "error": "error",
}
STREAM_BACK = ("resume", "reconnect", "running")

LAYOUTS = {"picture": 0.5, "signals": 0.3}  # layout -> image panel's share of the window width
DEFAULT_LAYOUT = "picture"
SCREEN_SHARE = 0.9  # the window first takes this share of the screen's free area
SMALL_SCREEN_SHARE = 0.95  # ... and this much on a small screen (narrower than SMALL_SCREEN)
SMALL_SCREEN = 1600  # px
MIN_SIZE = (960, 600)  # px, the first size never smaller (unless the screen is)
__all__ = ["APPLICATION", "ORGANIZATION", "MainWindow", "default_settings", "make_session"]

SessionFactory = Callable[[AppConfig], "LiveSession"]


def make_session(config: AppConfig) -> LiveSession:
    """The window's default session: generation off when the model is ``"none"``."""
    from dd_live.session import LiveSession

    return LiveSession(config, generate=config.generator.model != NO_MODEL)


def load_decoder(generator_config, progress: Callable[[str], None]):
    """Build and warm up the session's EEG decoder (``dd_live.decoding``), naming each stage."""
    from dd_live.decoding import EEGDecoder

    progress(f"loading model {generator_config.model!r}")
    decoder = EEGDecoder.from_config(generator_config)
    decoder.warmup(progress=progress)
    return decoder


def _previewable(session: LiveSession, config: AppConfig) -> bool:
    """Whether the stream can be shown while the model loads: the session loads a model and
    opens its own source, and reopening that source for the real run is cheap (not a board)."""
    loads_model = getattr(session, "decoder", None) is None and getattr(session, "_generate", False)
    own_source = getattr(session, "_source", None) is None
    spec = config.source.spec.strip().lower()
    speed = parse_qs(spec.partition("?")[2]).get("speed", ["1"])[-1]
    as_fast_as_possible = speed in ("0", "0.0", "inf")  # a preview would race through the file
    return bool(loads_model and own_source and not spec.startswith("brainflow")
                and not as_fast_as_possible)


class MainWindow(QtWidgets.QMainWindow):
    """The desktop window of dd-live.

    Args:
        config: the settings to start from (values that differ from the built-in defaults win
            over remembered ones).
        session_factory: ``config -> LiveSession`` (default ``LiveSession(config)``); tests
            pass sessions with their own source or decoder.
        settings: where settings are remembered; default :func:`default_settings`. Tests pass
            ``QSettings(path, QSettings.Format.IniFormat)``. Only view preferences are restored
            from it, unless the user ticked *Remember this setup* (see ``dd_live.gui.settings``).
        dialogs: show start errors in a dialog too (scripts with a ``--duration`` set False).
    """

    closed = QtCore.Signal()  # emitted once the window has really closed (session stopped)
    running = QtCore.Signal()  # the session runs: samples flow
    preview_ready = QtCore.Signal(object)  # a stream-only session shows the signal meanwhile
    start_failed = QtCore.Signal(str)  # why the session could not start

    def __init__(self, config: AppConfig | None = None,
                 session_factory: SessionFactory | None = None,
                 settings: QtCore.QSettings | None = None, parent=None,
                 dialogs: bool = True) -> None:
        super().__init__(parent)
        self.config = config or AppConfig()
        self.session_factory = session_factory or make_session
        self.settings = settings if settings is not None else default_settings()
        self.dialogs = dialogs
        self.error_dialog: QtWidgets.QMessageBox | None = None
        self.layout_mode = DEFAULT_LAYOUT
        self.image_fullscreen = False
        self._before_fullscreen: dict[str, object] = {}
        self._layout_applied = False
        self.session: LiveSession | None = None
        self.phase = "idle"  # idle, starting, running, stopping
        self.n_generation_errors = 0
        self.start_error: str | None = None  # why the last start failed, for exit codes
        self._close_requested = False
        self._auto_index = 0
        self.setWindowTitle("dd-live — EEG to image")
        self._fit_to_screen()

        self.load_decoder = load_decoder  # (generator config, progress) -> warmed-up decoder
        self.preview: LiveSession | None = None  # shows the stream while the model loads
        self._starting: LiveSession | None = None
        self.preview_ready.connect(self._on_preview, QtCore.Qt.ConnectionType.QueuedConnection)
        self.bridge = SessionBridge(self)
        self.bridge.connect_to(image=self._on_image, event=self._on_event, state=self._on_state,
                               error=self._on_error, window_rejected=self._on_rejected,
                               window_dropped=self._on_dropped)
        self.generator_load = GeneratorLoad()  # behind or keeping up: sets the redraw rates
        self.cpu_budget = CpuBudget()  # stretches the trace interval past the GUI's CPU budget
        self.clock = time.monotonic  # s, paces the verdict and the CPU budget (tests: their own)
        self._last_verdict = -math.inf  # ms (self.clock) when an image was last judged
        self._last_shown = -math.inf  # ms (self.clock) when a new image was last shown large
        self.tasks = TaskRunner(self)

        self.banner = Banner()
        self.traces = TracesView()
        self.spectrum = SpectrumView()
        self.gallery = ImageGallery(on_select=self._on_gallery_select)
        self.gallery.image.double_clicked.connect(self.toggle_image_fullscreen)
        self.verdict = VerdictPanel()  # the demo's legend and live verdict, under the image
        gallery_layout = self.gallery.layout()
        gallery_layout.insertWidget(gallery_layout.indexOf(self.gallery.details), self.verdict)
        self.replay_bar = ReplayBar()
        self._build_layout()
        self.controls = ControlPanel(self.config)
        self._build_dock()
        self._build_toolbar()
        self._build_menus()
        self.status = StatusPanel(self.statusBar())
        self._build_timers()
        self._connect_controls()
        self._restore()
        self.status.show_message("ready: choose a source and press Start")

    def __repr__(self) -> str:
        return f"<MainWindow: {self.phase} | {self.session!r}>"

    # -- layout ------------------------------------------------------------------------------
    def _fit_to_screen(self) -> None:
        """Size the window to the screen's free area (90 %, 95 % on a laptop screen narrower
        than 1600 px) and centre it there: a 1920x1080 screen gets a 1728x~970 window, a
        1366x768 laptop 1297x~730."""
        screen = QtGui.QGuiApplication.primaryScreen()
        if screen is None:
            self.resize(*MIN_SIZE)
            return
        available = screen.availableGeometry()
        share = SMALL_SCREEN_SHARE if available.width() < SMALL_SCREEN else SCREEN_SHARE
        width = min(max(int(available.width() * share), MIN_SIZE[0]), available.width())
        height = min(max(int(available.height() * share), MIN_SIZE[1]), available.height())
        self.resize(width, height)
        self.move(available.x() + (available.width() - width) // 2,
                  available.y() + (available.height() - height) // 2)

    def _build_layout(self) -> None:
        self.signals = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.signals.setObjectName("signals")
        self.signals.addWidget(self.traces)
        self.signals.addWidget(self.spectrum)
        self.signals.setStretchFactor(0, 4)
        self.signals.setStretchFactor(1, 1)
        self.traces.setMinimumSize(200, 150)
        self.spectrum.setMinimumHeight(80)
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.setObjectName("main")
        self.splitter.addWidget(self.signals)
        self.splitter.addWidget(self.gallery)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        central = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(central)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.banner)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.replay_bar)
        self.setCentralWidget(central)

    def _build_dock(self) -> None:
        scroll = QtWidgets.QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.controls.minimumSizeHint().width() + 20)
        self.dock = QtWidgets.QDockWidget("controls", self)
        self.dock.setObjectName("controls")
        self.dock.setWidget(scroll)
        self.dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                              | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, self.dock)

    def _build_menus(self) -> None:
        view = self.menuBar().addMenu("&View")
        self.controls_action = self.dock.toggleViewAction()
        self.controls_action.setText("Controls panel")
        self.controls_action.setShortcut(QtGui.QKeySequence("Ctrl+B"))
        view.addAction(self.controls_action)
        group = QtGui.QActionGroup(self)
        self.layout_actions: dict[str, QtGui.QAction] = {}
        for mode, text in (("picture", "Picture first (image takes half the window)"),
                           ("signals", "Signals first (wide traces)")):
            action = QtGui.QAction(text, self, checkable=True)
            action.triggered.connect(lambda _checked, m=mode: self.set_layout(m))
            group.addAction(action)
            view.addAction(action)
            self.layout_actions[mode] = action
        self.layout_actions[self.layout_mode].setChecked(True)
        self.fullscreen_action = QtGui.QAction("Image full screen", self, checkable=True)
        self.fullscreen_action.setShortcuts([QtGui.QKeySequence("F11"), QtGui.QKeySequence("F")])
        self.fullscreen_action.triggered.connect(lambda _checked: self.toggle_image_fullscreen())
        view.addAction(self.fullscreen_action)
        self.addAction(self.fullscreen_action)  # the keys work with the menu bar hidden too
        leave = QtGui.QAction("Leave full screen", self)
        leave.setShortcut(QtGui.QKeySequence("Esc"))
        leave.triggered.connect(lambda: self.image_fullscreen and self.toggle_image_fullscreen())
        self.addAction(leave)
        settings = self.menuBar().addMenu("&Settings")
        self.remember_action = QtGui.QAction(
            "Remember this setup (source, filter, windows, model, recording)", self,
            checkable=True)
        self.remember_action.setToolTip("off: only the layout and view are remembered; the "
                                        "command line wins either way")
        settings.addAction(self.remember_action)
        self.reset_action = QtGui.QAction("Reset settings", self)
        self.reset_action.triggered.connect(self.reset_settings)
        settings.addAction(self.reset_action)

    # -- layout modes and full screen ---------------------------------------------------------
    def set_layout(self, mode: str) -> None:
        """``"picture"``: the image panel takes half the window; ``"signals"``: wide traces."""
        if mode not in LAYOUTS:
            raise ValueError(f"layout must be one of {tuple(LAYOUTS)}, got {mode!r}")
        self.layout_mode = mode
        self.layout_actions[mode].setChecked(True)
        total = sum(self.splitter.sizes()) or self.splitter.width()
        image = min(int(self.width() * LAYOUTS[mode]), total - self.signals.minimumSizeHint().width())
        self.splitter.setSizes([max(total - image, 1), max(image, 1)])
        self._layout_applied = True

    def toggle_image_fullscreen(self) -> None:
        """The image alone on the whole screen (F11, F, double-click; Esc leaves), or back."""
        if not self.image_fullscreen:
            self._before_fullscreen = {
                "state": self.saveState(), "maximized": self.isMaximized(),
                "geometry": self.saveGeometry(),
                "sizes": self.splitter.sizes(), "menu": self.menuBar().isVisible(),
                "status": self.statusBar().isVisible()}
            self.image_fullscreen = True
            for widget in (self.signals, self.dock, self.menuBar(), self.statusBar(),
                           self.replay_bar, *self.findChildren(QtWidgets.QToolBar)):
                widget.hide()
            self.gallery.details.hide()
            self.showFullScreen()
        else:
            self.image_fullscreen = False
            before = self._before_fullscreen
            self.signals.show()
            self.gallery.details.show()
            self.menuBar().setVisible(bool(before.get("menu", True)))
            self.statusBar().setVisible(bool(before.get("status", True)))
            self.replay_bar.attach(self.session.source if self.session is not None
                                   and self.phase == "running" else None)
            for toolbar in self.findChildren(QtWidgets.QToolBar):
                toolbar.show()
            if before.get("state") is not None:
                self.restoreState(before["state"])
            if before.get("maximized"):
                self.showMaximized()
            else:
                self.showNormal()
                if before.get("geometry") is not None:
                    self.restoreGeometry(before["geometry"])
            if before.get("sizes"):
                self.splitter.setSizes(before["sizes"])
        self.fullscreen_action.setChecked(self.image_fullscreen)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().showEvent(event)
        if not self._layout_applied:
            QtCore.QTimer.singleShot(0, lambda: self._layout_applied or self.set_layout(
                self.layout_mode))

    def _build_toolbar(self) -> None:
        bar = self.addToolBar("view")
        bar.setObjectName("view")
        bar.setMovable(False)
        self.span_spin = QtWidgets.QDoubleSpinBox()
        self.span_spin.setRange(*SPAN_RANGE)
        self.span_spin.setDecimals(0)
        self.span_spin.setSuffix(" s")
        self.span_spin.setValue(self.traces.span)
        self.scale_spin = QtWidgets.QDoubleSpinBox()
        self.scale_spin.setRange(0.1, 1e5)
        self.scale_spin.setDecimals(1)
        self.scale_spin.setSuffix(" µV")
        self.scale_spin.setValue(self.traces.scale * 1e6)
        self.scale_spin.setToolTip("signal per row spacing (global scale)")
        self.filtered_check = QtWidgets.QCheckBox("filtered")
        self.filtered_check.setChecked(True)
        self.filtered_check.setToolTip("show the filtered stream (the model's input) or the raw one")
        self.channel_combo = QtWidgets.QComboBox()
        self.channel_combo.setMinimumContentsLength(6)
        self.gain_spin = QtWidgets.QDoubleSpinBox()
        self.gain_spin.setRange(0.01, 100)
        self.gain_spin.setValue(1.0)
        self.gain_spin.setSingleStep(0.5)
        self.gain_spin.setPrefix("× ")
        for label, widget in (("span", self.span_spin), ("scale", self.scale_spin),
                              (None, self.filtered_check), ("gain of", self.channel_combo),
                              (None, self.gain_spin)):
            if label:
                bar.addWidget(QtWidgets.QLabel(f" {label} "))
            bar.addWidget(widget)
        self._view_defaults = (self.traces.span, self.traces.scale * 1e6)
        self.span_spin.valueChanged.connect(self.traces.set_span)
        self.scale_spin.valueChanged.connect(lambda uv: setattr(self.traces, "scale", uv * 1e-6))
        self.channel_combo.currentIndexChanged.connect(self._show_gain)
        self.gain_spin.valueChanged.connect(self._set_gain)

    def _build_timers(self) -> None:
        self.trace_timer = QtCore.QTimer(self)
        self.trace_timer.timeout.connect(self._trace_tick)
        self.spectrum_timer = QtCore.QTimer(self)
        self.spectrum_timer.timeout.connect(self.refresh_spectrum)
        self._set_rates(self.generator_load.rates)
        self.status_timer = QtCore.QTimer(self)
        self.status_timer.setInterval(STATUS_INTERVAL_MS)
        self.status_timer.timeout.connect(self.refresh_status)
        self.image_timer = QtCore.QTimer(self)  # shows the newest image a little later
        self.image_timer.setSingleShot(True)
        self.image_timer.timeout.connect(self._show_newest_image)
        self.auto_timer = QtCore.QTimer(self)
        self.auto_timer.timeout.connect(self._next_auto_state)

    def _connect_controls(self) -> None:
        c = self.controls
        c.start_button.clicked.connect(self.toggle_session)
        c.generation_button.toggled.connect(self._toggle_generation)
        c.record_check.toggled.connect(self._toggle_recording)
        c.state_combo.currentTextChanged.connect(self._state_chosen)
        c.auto_period.valueChanged.connect(lambda s: self.auto_timer.setInterval(int(s * 1000)))
        c.lsl_refresh.clicked.connect(self.refresh_lsl)
        c.brainflow_refresh.clicked.connect(self.refresh_brainflow)
        self.gain_spin.valueChanged.connect(self._remember_gain)

    # -- settings ----------------------------------------------------------------------------
    def _restore(self) -> None:
        """View preferences always; the setup only when the user asked to remember it (and
        then a setting the caller's config gives, e.g. on the command line, still wins)."""
        s = self.settings
        remember = remembers_setup(s)
        self.remember_action.setChecked(remember)
        if remember:
            self.controls.restore(s)
            self.controls.apply_config(self.config, only_changed=True)
        try:
            self.span_spin.setValue(float(s.value("view/span", self.traces.span)))
            self.scale_spin.setValue(float(s.value("view/scale_uv", self.traces.scale * 1e6)))
        except (TypeError, ValueError):
            logger.warning("ignoring remembered view settings that are not numbers")
        self.filtered_check.setChecked(str(s.value("view/filtered", "true")).lower() == "true")
        gains = s.value("view/gains", "")
        self._gains: dict[str, float] = {}
        for item in str(gains or "").split(";"):
            name, _, value = item.rpartition("=")
            try:
                if name:
                    self._gains[name] = float(value)
            except ValueError:
                continue
        mode = str(s.value("layout/mode", DEFAULT_LAYOUT))
        self.layout_mode = mode if mode in LAYOUTS else DEFAULT_LAYOUT
        self.layout_actions[self.layout_mode].setChecked(True)
        geometry = s.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = s.value("window/state")
        if state is not None:
            self.restoreState(state)
        splitter = s.value("layout/splitter")
        if splitter is not None and self.splitter.restoreState(splitter):
            self._layout_applied = True

    def save_settings(self) -> None:
        s = self.settings
        if self.image_fullscreen:
            self.toggle_image_fullscreen()
        if self.remember_action.isChecked():
            self.controls.save(s)
        else:
            s.remove("controls")  # the setup comes from the command line and config files
        s.setValue(REMEMBER_SETUP_KEY, self.remember_action.isChecked())
        s.setValue("view/span", self.span_spin.value())
        s.setValue("view/scale_uv", self.scale_spin.value())
        s.setValue("view/filtered", self.filtered_check.isChecked())
        s.setValue("view/gains", ";".join(f"{name}={gain:g}" for name, gain in self._gains.items()
                                          if gain != 1.0))
        s.setValue("layout/mode", self.layout_mode)
        s.setValue("layout/splitter", self.splitter.saveState())
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.sync()

    def reset_settings(self) -> None:
        """Forget everything remembered and go back to the built-in view and the run's setup."""
        self.settings.clear()
        self.settings.sync()
        self.remember_action.setChecked(False)
        self._gains = {}
        self.traces.gains[:] = 1.0
        self._show_gain(self.channel_combo.currentIndex())
        span, scale_uv = self._view_defaults
        self.span_spin.setValue(span)
        self.scale_spin.setValue(scale_uv)
        self.filtered_check.setChecked(True)
        if self.phase == "idle":
            self.controls.apply_config(self.config)
        self.dock.show()
        self.set_layout(DEFAULT_LAYOUT)
        self.status.show_message("settings reset: built-in view, the setup this run started "
                                 "with", STATUS_MESSAGE_MS)

    # -- session lifecycle -------------------------------------------------------------------
    def toggle_session(self) -> None:
        if self.phase == "running":
            self.stop_session()
        elif self.phase == "idle":
            self.start_session()

    def start_session(self) -> None:
        """Build a session from the controls and start it on a helper thread."""
        if self.phase != "idle":
            return
        from dd_live.session import LiveSession

        try:
            config = self.controls.config()
            session = self.session_factory(config)
        except DDLiveError as exc:
            self.start_error = f"cannot start: {exc}"
            self.banner.show_message("start", "error", elided(self.start_error))
            return
        self.banner.clear("start")
        self.banner.clear("generation")
        self.banner.clear("stream")
        self.n_generation_errors = 0
        self.session = None
        self._starting = session
        self.bridge.attach(session.callbacks)
        self.phase = "starting"
        self.start_error = None
        self.controls.start_button.setEnabled(False)
        self.controls.start_button.setText("starting…")
        self.status.show_message(f"starting… ({config.source.spec}, model {config.generator.model})")
        self.status.set_progress("starting…")
        loads_model = (getattr(session, "decoder", None) is None
                       and getattr(session, "_generate", False))
        preview = LiveSession(config.replace(record={"enabled": False}), generate=False) \
            if _previewable(session, config) else None

        def progress(stage: str) -> None:
            self.bridge.state.emit(("start", "starting", stage))

        def start() -> LiveSession:
            """Helper thread: show the stream at once (a preview session without the model)
            while torch and the model load, then start the real session."""
            try:
                if preview is not None:
                    progress("opening the source")
                    preview.start()
                    self.preview_ready.emit(preview)
                if loads_model:  # the slow imports, named
                    import importlib

                    from dd_live.decoding_onnx import generator_imports  # none for ONNX

                    for module, stage in generator_imports(session.config.generator):
                        progress(stage)
                        importlib.import_module(module)
                    if preview is not None:
                        session.decoder = self.load_decoder(session.config.generator, progress)
            finally:
                if preview is not None:
                    preview.stop()
            return session.start()

        self.tasks.run(start, self._on_started, name="dd-live-start")

    def _on_preview(self, preview: LiveSession) -> None:
        """The stream runs (no model yet): show its traces, spectrum and rate meanwhile."""
        if self.phase != "starting" or preview.state != "running":
            return
        self.preview = preview
        self.session = preview
        self._show_stream(preview.info)
        self._set_rates(LOADING)
        for timer in (self.trace_timer, self.spectrum_timer, self.status_timer):
            timer.start()

    def _show_stream(self, info) -> None:
        self.traces.set_channels(info.ch_names, info.sfreq)
        for k, name in enumerate(info.ch_names):
            if name in self._gains:
                self.traces.set_gain(k, self._gains[name])
        self.channel_combo.blockSignals(True)
        self.channel_combo.clear()
        self.channel_combo.addItems(list(info.ch_names))
        self.channel_combo.blockSignals(False)
        self._show_gain(0)

    def _show_channel_stage(self, session) -> None:
        """Bad channels shaded in the traces, a right-click toggle for the channels the model
        reads, the channel map as the traces' tooltip."""
        self.traces.set_bad_channels(getattr(session, "bad_channels", ()))
        if getattr(session, "bad_tracker", None) is not None:
            def toggle(name: str, bad: bool) -> None:
                session.set_channel_bad(name, bad)
                self.traces.set_bad_channels(session.bad_channels)

            self.traces.set_channel_toggle(session.judged_channels, toggle)
        else:
            self.traces.set_channel_toggle((), None)
        text = getattr(session, "channel_map_text", "")
        self.traces.setToolTip(f"channel map: {text}\nright click: mark a channel bad"
                               if text else "")

    def _on_started(self, _result, error: BaseException | None) -> None:
        session = self._starting
        self._starting = None
        self.preview = None
        self.session = session
        self.controls.start_button.setEnabled(True)
        self.status.set_progress(None)
        if error is not None:
            for timer in (self.trace_timer, self.spectrum_timer, self.status_timer):
                timer.stop()
            self.phase = "idle"
            self.session = None
            self.controls.set_running(False)
            reason = str(error) if isinstance(error, DDLiveError) else \
                f"{type(error).__name__}: {error}"
            self.start_error = f"could not start: {reason}"
            self.banner.show_message("start", "error", elided(self.start_error))
            self.status.show_message("could not start")
            self.start_failed.emit(self.start_error)
            if self.dialogs and not self._close_requested:
                self._show_start_error(reason)
            if self._close_requested:
                self.close()
            return
        self.generator_load.reset()
        self._set_rates(self.generator_load.rates)
        self.phase = "running"
        self.controls.set_running(True)
        info = session.info
        self._show_stream(info)
        self._show_channel_stage(session)
        self.status.reset()
        self.gallery.clear()
        self.verdict.attach(self._thought_judge(session))
        self.replay_bar.attach(session.source)
        self.status.set_recording(session.recording_path)
        description = getattr(session.decoder, "description", "") or ""
        tiny = session.decoder is not None and (
            session.config.generator.model == "tiny" or "no meaning" in description)
        self.gallery.set_note((description or TINY_NOTE) if tiny else "")
        self._set_title(session)
        markers = getattr(session.source, "marker_stream_name", None)
        self.status.show_message(f"running: {info.name}" + (f" · {description}" if description
                                                            else "")
                                 + (f" · markers from {markers!r}" if markers else ""))
        for timer in (self.trace_timer, self.spectrum_timer, self.status_timer):
            timer.start()
        self._state_chosen(self.controls.state_combo.currentText())
        if session.decoder is None:
            self.gallery.set_note("no model: the signal is shown (and recorded) without images; "
                                  "choose a model folder in the controls, or run with --model")
        self.running.emit()
        if self._close_requested:
            self.stop_session()

    def _set_title(self, session) -> None:
        info = session.info
        description = getattr(session.decoder, "description", "") or ""
        self.setWindowTitle(f"dd-live — {info.name} ({info.n_channels} ch @ {info.sfreq:g} Hz)"
                            + (f" — {description}" if description else ""))

    def _follow_layout(self) -> None:
        """The stream came back with another layout (the session started a new segment): the
        traces' rows and labels, the channel gains list, the spectrum and the channel stage
        follow the session's new buffers, without restarting anything."""
        session = self.session
        if session is None or session.raw is None:
            return
        info = session.info
        if (tuple(info.ch_names) == self.traces.ch_names and info.sfreq == self.traces.sfreq
                and session.raw.n_channels == len(self.traces.ch_names)):
            return
        logger.info("window: the stream's layout changed to %d channels at %g Hz",
                    info.n_channels, info.sfreq)
        if info.sfreq != self.traces.sfreq:  # the demo's judge reads windows at the rate
            self.verdict.attach(self._thought_judge(session))
        self._show_stream(info)
        self._show_channel_stage(session)
        self.spectrum.clear()
        self.status.reset()
        self._set_title(session)

    def _recording_stopped(self, reason: str) -> None:
        """The recorder stopped by itself (a write error): the live session goes on; the
        recording indicator says why and the record box is unticked (ticking it records anew)."""
        self.status.set_recording(None, reason)
        self.status.show_message(f"recording stopped: {reason}; the live session goes on",
                                 STATUS_MESSAGE_MS * 2)
        check = self.controls.record_check
        check.blockSignals(True)
        check.setChecked(False)
        check.blockSignals(False)

    @staticmethod
    def _thought_judge(session):
        """The demo's judge (the model folder's state classifier and legend), or None."""
        if session.decoder is None:
            return None
        from dd_live.verdict import ThoughtJudge

        try:
            return ThoughtJudge.from_model_folder(session.config.generator.model,
                                                  session.info.sfreq,
                                                  runtime=session.config.generator.runtime)
        except DDLiveError as exc:
            logger.warning("no live verdict: %s", exc)
            return None

    def _show_start_error(self, reason: str) -> None:
        """The start error in a dialog (not a traceback); the window stays usable."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("dd-live could not start")
        box.setText("The session could not start.")
        box.setInformativeText(reason)
        box.setStandardButtons(QtWidgets.QMessageBox.StandardButton.Ok)
        box.setModal(False)
        self.error_dialog = box
        box.open()

    def stop_session(self) -> None:
        """Ordered shutdown of the session on a helper thread; the window stays responsive."""
        if self.phase != "running" or self.session is None:
            return
        self.phase = "stopping"
        self.auto_timer.stop()
        self.controls.start_button.setEnabled(False)
        self.controls.start_button.setText("stopping…")
        self.status.show_message("stopping… (finishing the current image)")
        self.tasks.run(self.session.stop, self._on_stopped, name="dd-live-stop")

    def _on_stopped(self, _result, error: BaseException | None) -> None:
        for timer in (self.trace_timer, self.spectrum_timer, self.status_timer):
            timer.stop()
        if self.session is not None:
            self.refresh_status()
        self.status.set_recording(None)
        self.replay_bar.attach(None)
        self.phase = "idle"
        self.controls.start_button.setEnabled(True)
        self.controls.set_running(False)
        if error is not None:
            self.banner.show_message("stop", "error", f"stopping failed: {error}")
        self.status.show_message("stopped")
        if self._close_requested:
            self.close()

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:  # noqa: N802 (Qt's name)
        """Save settings; if a session runs, stop it first (off the GUI thread), then close."""
        if self.phase != "idle":
            self._close_requested = True
            event.ignore()
            if self.phase == "running":
                self.stop_session()
            return
        self.save_settings()
        event.accept()
        self.closed.emit()

    # -- timers ------------------------------------------------------------------------------
    def _display_buffer(self, filtered: bool):
        session = self.session
        if session is None:
            return None
        if filtered and session.filtered is not None and session.filtered.n_written > 0:
            return session.filtered
        return session.raw

    def on_screen(self, plot: QtWidgets.QAbstractScrollArea) -> bool:
        """Whether a plot shows on screen now: shown (not hidden behind the full-screen image),
        some of its drawing area unobscured (not a splitter pane dragged shut), the window not
        minimised."""
        return (plot.isVisible() and not self.isMinimized()
                and not plot.viewport().visibleRegion().isEmpty())

    def refresh_traces(self) -> bool:
        """One redraw of the traces; False (nothing drawn) while they are not on screen or
        nothing new is there to draw."""
        if not self.on_screen(self.traces):
            return False
        return self.traces.refresh(self._display_buffer(self.filtered_check.isChecked()))

    def refresh_spectrum(self) -> bool:
        """A new spectrum estimate; none while the spectrum is not on screen."""
        if self.session is None or not self.on_screen(self.spectrum.psd_plot):
            return False
        return self.spectrum.refresh(self._display_buffer(True), self.traces.sfreq)

    def _trace_tick(self) -> None:
        """The trace timer: look at the generator (the redraw rates follow its load while the
        session runs), then redraw the traces."""
        worker = getattr(self.session, "worker", None) if self.phase == "running" else None
        if worker is not None:
            was_behind = self.generator_load.behind
            if self.generator_load.poll(worker.busy) != was_behind:
                self._set_rates(self.generator_load.rates)
        stretch = self.cpu_budget.update(time.thread_time(), self.clock(),
                                         self._rates.gui_share)
        if self.refresh_traces():
            interval = self._rates.traces_interval(self.traces.frame_seconds, stretch)
            if abs(interval - self.trace_timer.interval()) >= RETIME_MS:
                self.trace_timer.setInterval(interval)

    def _on_dropped(self, _window) -> None:
        """The generator was busy when a newer window came: it is behind."""
        was_behind = self.generator_load.behind
        self.generator_load.dropped()
        if self.phase == "running" and not was_behind:
            self._set_rates(self.generator_load.rates)

    def _set_rates(self, rates: RedrawRates) -> None:
        """The trace and spectrum timers' intervals (``dd_live.gui.pacing.RedrawRates``)."""
        self._rates = rates
        self.cpu_budget.reset()
        interval = rates.traces_interval(self.traces.frame_seconds)
        logger.debug("window redraws: traces every %d ms, spectrum every %d ms", interval,
                     rates.spectrum_ms)
        self.trace_timer.setInterval(interval)
        self.spectrum_timer.setInterval(rates.spectrum_ms)

    def refresh_status(self) -> None:
        session = self.session
        if session is not None and session.raw is not None:
            self.status.update(session.stats(), self.traces.sfreq, session.config.buffer.seconds)
            self.status.set_recording(session.recording_path,
                                      getattr(session, "recording_error", None))
            if self.replay_bar.isVisible():
                self.replay_bar.refresh()

    # -- session callbacks (GUI thread, queued) ---------------------------------------------
    def _on_image(self, result) -> None:
        now = 1000.0 * self.clock()  # ms
        show = now - self._last_shown >= self._rates.image_ms
        self.gallery.add(result, show=show)
        if show:
            self._last_shown = now
        elif not self.image_timer.isActive():  # the newest is shown when the interval is over
            self.image_timer.start(max(1, int(self._rates.image_ms - (now - self._last_shown))))
        if now - self._last_verdict >= self._rates.verdict_ms:
            self._last_verdict = now
            self.verdict.on_image(result)
        self.banner.clear("generation")
        if not self.generator_load.behind:  # behind: the status timer's 4 updates/s will do
            self.refresh_status()

    def _show_newest_image(self) -> None:
        """Images came faster than ``image_ms``: the newest one, large (unless one is pinned)."""
        gallery = self.gallery
        if gallery.results and not gallery.pinned \
                and gallery.shown_index != gallery.results[-1].index:
            gallery.follow_live()
            self._last_shown = 1000.0 * self.clock()

    def _on_error(self, payload) -> None:
        where, exc = payload
        text = elided(f"{type(exc).__name__}: {exc}")
        if where == "recorder":  # shown by the recording indicator ("recorder" state)
            return
        if where == "generation":
            self.n_generation_errors += 1
            self.banner.show_message("generation", "error", f"generation failed "
                                     f"({self.n_generation_errors}×): {text}")
        else:
            self.banner.show_message(where, "error", f"{where} error: {text}")

    def _on_state(self, payload) -> None:
        part, state, message = payload
        if state == "starting" and self.phase == "starting":
            self.status.set_progress(f"{message}…" if message else "starting…")
        if part == "start":
            return
        if part == "recorder":
            if state == "failed":
                self._recording_stopped(message)
            return
        if part == "session" and state == "running" and self.phase == "running":
            self._follow_layout()  # a new segment after a layout change (no-op otherwise)
        if part == "acquisition":
            self._stream_status(state, message or f"the stream is {state}")
        elif state == "error":
            self.banner.show_message("session", "error", f"session error: {message}")
        else:
            self.status.show_message(f"session {state}" + (f": {message}" if message else ""),
                                     STATUS_MESSAGE_MS)

    def _on_event(self, event) -> None:
        self.verdict.on_event(event)
        if event.kind in STREAM_TROUBLE or event.kind in STREAM_BACK:
            what = {"stall": "stream stalled", "disconnect": "stream lost",
                    "error": "stream error"}.get(event.kind, event.kind)
            text = f"{what}: {event.description}" if event.description else what
            self._stream_status(event.kind, text)
        elif event.kind == "end":
            self.banner.show_message("stream", "info", "the recording ended")
        elif event.kind == "gap":
            self.status.show_message(f"gap of {event.duration:.3f} s in the stream "
                                     f"({event.description})", STATUS_MESSAGE_MS)
        elif event.kind == "marker":
            self.status.show_message(f"marker: {event.description}", STATUS_MESSAGE_MS)
        elif event.kind in ("bad_channel", "channel_ok"):
            if self.session is not None:
                self.traces.set_bad_channels(getattr(self.session, "bad_channels", ()))
            self.status.show_message(event.description, STATUS_MESSAGE_MS)
        elif event.kind in ("mains", "nonfinite", "finite"):
            self.status.show_message(event.description, STATUS_MESSAGE_MS)
        elif event.kind == "degraded":  # the stream's rate: no filter or no images, and why
            self.banner.show_message(f"degraded-{event.extra.get('what', '')}", "warning",
                                     elided(event.description))

    def _stream_status(self, kind: str, text: str) -> None:
        if kind in STREAM_TROUBLE:
            self.banner.show_message("stream", STREAM_TROUBLE[kind], elided(text))
        elif kind in STREAM_BACK and self.banner.messages.get("stream"):
            self.banner.clear("stream")
            self.status.show_message(f"stream back ({text})", STATUS_MESSAGE_MS)

    def _on_rejected(self, payload) -> None:
        window, reasons = payload
        self.status.show_message(f"window {window.start}–{window.stop} rejected: "
                                 f"{', '.join(reasons)}", STATUS_MESSAGE_MS)

    def _on_gallery_select(self, result) -> None:
        self.traces.select_window(result.window_start, result.window_stop)

    # -- controls ----------------------------------------------------------------------------
    def _toggle_generation(self, paused: bool) -> None:
        if self.session is None or self.phase != "running":
            return
        if paused:
            self.session.pause_generation()
            self.controls.generation_button.setText("Resume generation")
        else:
            self.session.resume_generation()
            self.controls.generation_button.setText("Stop generation")

    def _toggle_recording(self, on: bool) -> None:
        """Start or stop recording while running (at start, the config decides)."""
        if self.session is None or self.phase != "running":
            return
        try:
            if on:
                folder = self.session.start_recording(self.controls.record_root.text().strip()
                                                      or "runs")
                self.status.show_message(f"recording to {folder}", 5000)
            else:
                folder = self.session.stop_recording()
                if folder is not None:
                    self.status.show_message(f"session saved to {folder}", 8000)
            self.status.set_recording(self.session.recording_path)
        except Exception as exc:  # a full disk or a bad folder: say so, keep running
            logger.exception("recording could not be toggled")
            self.banner.show_message("record", "error", f"recording failed: {exc}")

    def _synthetic_source(self):
        if self.session is None or self.phase != "running":
            return None
        source = self.session.source
        return source if hasattr(source, "set_state") else None

    def _state_chosen(self, text: str) -> None:
        """The simulated-thought selector: a state, ``none``, or ``auto``."""
        source = self._synthetic_source()
        if text == AUTO_STATE:
            self.auto_timer.setInterval(int(self.controls.auto_period.value() * 1000))
            if source is not None and not self.auto_timer.isActive():
                self.auto_timer.start()
                self._next_auto_state()
            return
        self.auto_timer.stop()
        if source is not None:
            source.set_state(self.controls.synthetic_state())

    def _next_auto_state(self) -> None:
        source = self._synthetic_source()
        if source is None:
            self.auto_timer.stop()
            return
        from dd_live.sources import DEFAULT_STATES

        state = DEFAULT_STATES[self._auto_index % len(DEFAULT_STATES)].name
        self._auto_index += 1
        source.set_state(state)
        self.status.show_message(f"simulated thought: {state}", STATUS_MESSAGE_MS)

    def _show_gain(self, channel: int) -> None:
        if 0 <= channel < len(self.traces.gains):
            self.gain_spin.blockSignals(True)
            self.gain_spin.setValue(float(self.traces.gains[channel]))
            self.gain_spin.blockSignals(False)

    def _set_gain(self, gain: float) -> None:
        channel = self.channel_combo.currentIndex()
        if 0 <= channel < len(self.traces.gains):
            self.traces.set_gain(channel, gain)

    def _remember_gain(self, gain: float) -> None:
        name = self.channel_combo.currentText()
        if name:
            self._gains[name] = float(gain)

    def refresh_lsl(self) -> None:
        """List the LSL streams visible now (on a helper thread: discovery waits ~1 s)."""
        self.controls.lsl_refresh.setEnabled(False)
        self.status.show_message("looking for LSL streams…")

        def done(streams, error) -> None:
            self.controls.lsl_refresh.setEnabled(True)
            if error is not None:
                self.banner.show_message("discovery", "warning", f"LSL discovery failed: {error}")
                return
            self.banner.clear("discovery")
            self.controls.set_lsl_streams(streams)
            self.status.show_message(f"{len(streams)} LSL stream(s) found", STATUS_MESSAGE_MS)

        from dd_live.sources import list_lsl_streams

        self.tasks.run(lambda: list_lsl_streams(LSL_DISCOVERY_TIMEOUT), done, name="dd-live-lsl")

    def refresh_brainflow(self) -> None:
        def done(boards, error) -> None:
            if error is not None:
                self.banner.show_message("discovery", "warning",
                                         f"BrainFlow board list failed: {error}")
                return
            self.controls.set_brainflow_boards(boards)
            self.status.show_message(f"{len(boards)} BrainFlow boards", STATUS_MESSAGE_MS)

        from dd_live.sources import list_brainflow_boards

        self.tasks.run(list_brainflow_boards, done, name="dd-live-brainflow")

    # -- helpers for scripts and tests --------------------------------------------------------
    def save_screenshot(self, path: str | Path) -> Path:
        """Save what the window shows now as a PNG."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.grab().save(str(path)):
            raise DDLiveError(f"could not write the screenshot {path}: is the folder writable?")
        return path
