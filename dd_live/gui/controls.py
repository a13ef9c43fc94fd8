"""The side panel: source, filter, windows, generator, run buttons; remembered in QSettings.

:meth:`ControlPanel.config` turns the widgets into an :class:`~dd_live.config.AppConfig`
(validated there: a bad combination raises ``ConfigError`` with its message). Values come
from three places, later ones winning: built-in defaults, remembered settings (QSettings),
and settings the caller's config sets to something other than the default (a command-line
``--model`` beats what the window remembered).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from PySide6 import QtCore, QtWidgets

from dd_live.config import SCHEDULER_NAMES, WINDOW_MODES, AppConfig
from dd_live.sources import DEFAULT_STATES

logger = logging.getLogger(__name__)

SOURCE_KINDS = ("synthetic", "brainflow", "lsl", "file")
SOURCE_LABELS = ("synthetic (simulated thought)", "BrainFlow board", "LSL stream", "file replay")
AUTO_STATE = "auto"
NO_STATE = "none"
NOTCH_CHOICES = ("auto", "off", "50", "60")
SETTINGS_GROUP = "controls"
MAX_SEED = 2**31 - 1


def _spin(low: float, high: float, value: float, step: float = 1.0, decimals: int = 2,
          suffix: str = "") -> QtWidgets.QDoubleSpinBox:
    box = QtWidgets.QDoubleSpinBox()
    box.setRange(low, high)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    return box


def _int_spin(low: int, high: int, value: int) -> QtWidgets.QSpinBox:
    box = QtWidgets.QSpinBox()
    box.setRange(low, high)
    box.setValue(value)
    return box


COMBO_MIN_CHARS = 8  # a combo box's narrowest width, in characters


def _combo(items, editable: bool = False) -> QtWidgets.QComboBox:
    box = QtWidgets.QComboBox()
    box.addItems(list(items))
    box.setEditable(editable)
    # the longest entry does not set the dock's width (its list still shows it whole): a
    # narrow controls dock leaves the traces room on a 1366 px screen
    box.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(COMBO_MIN_CHARS)
    return box


def _get(widget: QtWidgets.QWidget) -> Any:
    if isinstance(widget, QtWidgets.QComboBox):
        return widget.currentText()
    if isinstance(widget, QtWidgets.QAbstractSpinBox):
        return widget.value()
    if isinstance(widget, QtWidgets.QLineEdit):
        return widget.text()
    if isinstance(widget, QtWidgets.QAbstractButton):
        return widget.isChecked()
    raise TypeError(f"no value for {type(widget).__name__}")


def _set(widget: QtWidgets.QWidget, value: Any) -> None:
    """Set a widget from a value (QSettings ini files give strings back)."""
    if isinstance(widget, QtWidgets.QComboBox):
        text = str(value)
        index = widget.findText(text)
        if index >= 0:
            widget.setCurrentIndex(index)
        elif widget.isEditable():
            widget.setEditText(text)
    elif isinstance(widget, QtWidgets.QSpinBox):
        widget.setValue(int(float(value)))
    elif isinstance(widget, QtWidgets.QDoubleSpinBox):
        widget.setValue(float(value))
    elif isinstance(widget, QtWidgets.QLineEdit):
        widget.setText(str(value))
    elif isinstance(widget, QtWidgets.QAbstractButton):
        widget.setChecked(value if isinstance(value, bool) else str(value).lower() == "true")


def split_spec(spec: str) -> tuple[str, str]:
    """``(kind, rest)`` of a source spec: ``("synthetic", "visual?sfreq=500")``,
    ``("file", "a.fif")``, ``("lsl", "lsl-type:EEG")``."""
    spec = spec.strip()
    if spec.lower().startswith("synthetic?"):
        return "synthetic", spec[len("synthetic"):]
    kind, sep, body = spec.partition(":")
    kind = kind.lower()
    if not sep:
        return ("synthetic", "") if kind == "synthetic" else ("file", spec)
    if kind in ("synthetic", "brainflow", "file"):
        return kind, body
    if kind in ("lsl", "lsl-type", "lsl-id"):
        return "lsl", spec.strip()
    return "file", spec.strip()


class ControlPanel(QtWidgets.QWidget):
    """All settings of the next run, plus the run buttons.

    Widgets the main window connects to: ``start_button``, ``generation_button`` (checked =
    generation paused), ``state_combo`` (the simulated thought), ``lsl_refresh``,
    ``brainflow_refresh``.
    """

    def __init__(self, config: AppConfig, parent=None) -> None:
        super().__init__(parent)
        self.base_config = config
        self._persistent: dict[str, QtWidgets.QWidget] = {}
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self._run_box())
        layout.addWidget(self._source_box())
        layout.addWidget(self._filter_box())
        layout.addWidget(self._window_box())
        layout.addWidget(self._generator_box())
        layout.addStretch(1)
        self.apply_config(config)
        self._window_mode_changed(self.window_mode.currentText())

    def __repr__(self) -> str:
        return f"<ControlPanel: source {self.source_spec()!r}>"

    def _keep(self, key: str, widget: QtWidgets.QWidget) -> QtWidgets.QWidget:
        self._persistent[key] = widget
        return widget

    # -- building ----------------------------------------------------------------------------
    def _run_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("run")
        grid = QtWidgets.QGridLayout(box)
        self.start_button = QtWidgets.QPushButton("Start")
        self.start_button.setStyleSheet("font-weight: bold;")
        self.generation_button = QtWidgets.QPushButton("Stop generation")
        self.generation_button.setCheckable(True)
        self.generation_button.setEnabled(False)
        self.record_check = self._keep("record/enabled", QtWidgets.QCheckBox("record to"))
        self.record_check.setToolTip("write EEG, events and images to a session folder "
                                     "(applies at the next start)")
        self.record_root = self._keep("record/root", QtWidgets.QLineEdit())
        grid.addWidget(self.start_button, 0, 0)
        grid.addWidget(self.generation_button, 0, 1)
        grid.addWidget(self.record_check, 1, 0)
        grid.addWidget(self.record_root, 1, 1)
        return box

    def _source_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("source")
        form = QtWidgets.QFormLayout(box)
        self.kind_combo = self._keep("source/kind", _combo(SOURCE_LABELS))
        form.addRow("input", self.kind_combo)
        self.source_pages = QtWidgets.QStackedWidget()
        # synthetic
        page = QtWidgets.QWidget()
        row = QtWidgets.QFormLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        states = [AUTO_STATE, NO_STATE] + [s.name for s in DEFAULT_STATES]
        self.state_combo = self._keep("source/synthetic_state", _combo(states))
        self.state_combo.setToolTip("the simulated thought; 'auto' changes it every few seconds "
                                    "(can change while running)")
        self.auto_period = self._keep("source/auto_period", _spin(1, 60, 4, 1, 0, " s"))
        self.synthetic_options = self._keep("source/synthetic_options", QtWidgets.QLineEdit())
        self.synthetic_options.setPlaceholderText("n_channels=16&sfreq=250")
        row.addRow("thought", self.state_combo)
        row.addRow("auto every", self.auto_period)
        row.addRow("options", self.synthetic_options)
        self.source_pages.addWidget(page)
        # BrainFlow
        page = QtWidgets.QWidget()
        row = QtWidgets.QFormLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        self.board_combo = self._keep("source/board", _combo(["synthetic (-1)"], editable=True))
        self.brainflow_refresh = QtWidgets.QPushButton("refresh")
        self.board_params = self._keep("source/board_params", QtWidgets.QLineEdit())
        self.board_params.setPlaceholderText("serial_port=/dev/ttyUSB0")
        row.addRow("board", self._with_button(self.board_combo, self.brainflow_refresh))
        row.addRow("params", self.board_params)
        self.source_pages.addWidget(page)
        # LSL
        page = QtWidgets.QWidget()
        row = QtWidgets.QFormLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        self.lsl_combo = self._keep("source/lsl", _combo([], editable=True))
        self.lsl_combo.lineEdit().setPlaceholderText("stream name (refresh to list)")
        self.lsl_refresh = QtWidgets.QPushButton("refresh")
        row.addRow("stream", self._with_button(self.lsl_combo, self.lsl_refresh))
        self.source_pages.addWidget(page)
        # file
        page = QtWidgets.QWidget()
        row = QtWidgets.QFormLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        self.file_edit = self._keep("source/file", QtWidgets.QLineEdit())
        browse = QtWidgets.QPushButton("…")
        browse.clicked.connect(self._browse_file)
        row.addRow("path", self._with_button(self.file_edit, browse))
        self.source_pages.addWidget(page)
        form.addRow(self.source_pages)
        # what stays fixed while a session runs (the simulated thought may change)
        self._locked_while_running = [self.kind_combo] + [
            self.source_pages.widget(i) for i in range(1, self.source_pages.count())]
        self.kind_combo.currentIndexChanged.connect(self.source_pages.setCurrentIndex)
        return box

    def _filter_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("filter (causal, applies at start)")
        self._locked_while_running.append(box)
        form = QtWidgets.QFormLayout(box)
        self.filter_check = self._keep("filter/enabled", QtWidgets.QCheckBox("band-pass + notch"))
        self.l_freq = self._keep("filter/l_freq", _spin(0, 500, 5, 0.5, 1, " Hz"))
        self.l_freq.setSpecialValueText("off")
        self.h_freq = self._keep("filter/h_freq", _spin(0, 5000, 95, 1, 1, " Hz"))
        self.h_freq.setSpecialValueText("off")
        self.notch_combo = self._keep("filter/notch", _combo(NOTCH_CHOICES))
        form.addRow(self.filter_check)
        form.addRow("high-pass", self.l_freq)
        form.addRow("low-pass", self.h_freq)
        form.addRow("notch (Hz)", self.notch_combo)
        return box

    def _window_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("windows")
        self._locked_while_running.append(box)
        form = QtWidgets.QFormLayout(box)
        self.window_mode = self._keep("window/mode", _combo(WINDOW_MODES))
        self.window_mode.setToolTip("latest: the newest window whenever the generator is free; "
                                    "interval: one every hop; marker: one per marker; "
                                    "recorded: the windows a replayed session recorded")
        self.window_length = self._keep("window/length", _spin(0.05, 10, 0.44, 0.01, 2, " s"))
        self.window_hop = self._keep("window/hop", _spin(0.02, 60, 0.5, 0.1, 2, " s"))
        self.window_min_hop = self._keep("window/min_hop", _spin(0.001, 60, 0.02, 0.01, 3, " s"))
        self.window_min_hop.setToolTip("latest: at least this long between two windows")
        self.marker_match = self._keep("window/marker_match", QtWidgets.QLineEdit())
        self.marker_match.setPlaceholderText("all markers")
        form.addRow("trigger", self.window_mode)
        form.addRow("length", self.window_length)
        form.addRow("hop", self.window_hop)
        form.addRow("min hop", self.window_min_hop)
        form.addRow("marker", self.marker_match)
        self.window_mode.currentTextChanged.connect(self._window_mode_changed)
        return box

    def _generator_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("generator")
        self._locked_while_running.append(box)
        form = QtWidgets.QFormLayout(box)
        self.mode_combo = self._keep("generator/mode", _combo(("generate", "retrieve")))
        self.model_edit = self._keep("generator/model", QtWidgets.QLineEdit())
        self.model_edit.setToolTip("'tiny' (random tiny models: images carry no meaning), "
                                   "'demo', a dd-live model folder, or the DreamDiffusion "
                                   "release's generation checkpoint file (.pth/.ckpt)")
        model_browse = QtWidgets.QPushButton("…")
        model_browse.clicked.connect(lambda: self._browse_folder(self.model_edit))
        self.gallery_edit = self._keep("generator/gallery", QtWidgets.QLineEdit())
        self.gallery_edit.setPlaceholderText("image folder (retrieval)")
        self.scheduler_combo = self._keep("generator/scheduler", _combo(SCHEDULER_NAMES))
        self.steps_spin = self._keep("generator/steps", _int_spin(1, 1000, 20))
        self.guidance_spin = self._keep("generator/guidance_scale", _spin(0, 30, 1, 0.5, 1))
        self.seed_spin = self._keep("generator/seed", _int_spin(0, MAX_SEED, 0))
        self.fixed_seed = self._keep("generator/fixed_seed", QtWidgets.QCheckBox("same seed"))
        self.fast_decode = self._keep("generator/tiny_vae", QtWidgets.QLineEdit())
        self.fast_decode.setPlaceholderText("off (TAESD folder = fast decode)")
        form.addRow("mode", self.mode_combo)
        form.addRow("model", self._with_button(self.model_edit, model_browse))
        form.addRow("gallery", self.gallery_edit)
        form.addRow("scheduler", self.scheduler_combo)
        form.addRow("steps", self.steps_spin)
        form.addRow("guidance", self.guidance_spin)
        form.addRow("seed", self.seed_spin)
        form.addRow("", self.fixed_seed)
        form.addRow("fast decode", self.fast_decode)
        return box

    @staticmethod
    def _with_button(widget: QtWidgets.QWidget, button: QtWidgets.QWidget) -> QtWidgets.QWidget:
        holder = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        if isinstance(button, QtWidgets.QPushButton):  # as narrow as its text (not Qt's 80 px)
            button.setMinimumWidth(button.fontMetrics().horizontalAdvance(button.text()) + 16)
            button.setMaximumWidth(button.minimumWidth())
        row.addWidget(widget, 1)
        row.addWidget(button)
        return holder

    def _window_mode_changed(self, mode: str) -> None:
        self.window_hop.setEnabled(mode == "interval")
        self.window_min_hop.setEnabled(mode == "latest")
        self.marker_match.setEnabled(mode == "marker")

    def _browse_file(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(
            self, "EEG recording", self.file_edit.text(),
            "EEG (*.fif *.fif.gz *.edf *.bdf *.gdf *.vhdr *.set *.cnt *.xdf *.xdfz *.txt *.csv)"
            ";;all files (*)")
        if path:
            self.file_edit.setText(path)

    def _browse_folder(self, edit: QtWidgets.QLineEdit) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "model folder", edit.text())
        if path:
            edit.setText(path)

    # -- discovery results -------------------------------------------------------------------
    def set_lsl_streams(self, streams: list[dict]) -> None:
        """Fill the stream list from ``list_lsl_streams()`` entries (the spec is by source id
        when the stream has one, else by name)."""
        current = self.lsl_combo.currentText()
        self.lsl_combo.clear()
        for s in streams:
            spec = f"lsl-id:{s['source_id']}" if s.get("source_id") else f"lsl:{s['name']}"
            label = f"{s['name']} ({s.get('type') or '-'}, {s.get('n_channels', '?')} ch " \
                    f"@ {s.get('sfreq', 0):g} Hz, {s.get('hostname', '')})"
            self.lsl_combo.addItem(label, spec)
        if not streams:
            self.lsl_combo.setEditText(current)

    def set_brainflow_boards(self, boards: list[dict]) -> None:
        """Fill the board list from ``list_brainflow_boards()`` entries."""
        current = self.board_combo.currentText()
        self.board_combo.clear()
        for b in boards:
            self.board_combo.addItem(f"{b['name'].lower()} ({b['id']})", str(b["id"]))
        _set(self.board_combo, current)

    # -- widgets <-> config ------------------------------------------------------------------
    def source_kind(self) -> str:
        return SOURCE_KINDS[self.kind_combo.currentIndex()]

    def synthetic_state(self) -> str | None:
        """The chosen simulated thought: a state name, None for none, ``"auto"``."""
        text = self.state_combo.currentText()
        return None if text == NO_STATE else text

    def source_spec(self) -> str:
        kind = self.source_kind()
        if kind == "synthetic":
            state = self.synthetic_state()
            spec = "synthetic" if state in (None, AUTO_STATE) else f"synthetic:{state}"
            options = self.synthetic_options.text().strip().lstrip("?")
            return f"{spec}?{options}" if options else spec
        if kind == "brainflow":
            board = self._chosen(self.board_combo)
            if board.endswith(")") and "(" in board:  # "cyton (0)" typed or restored
                board = board.rsplit("(", 1)[1].rstrip(")")
            params = self.board_params.text().strip()
            return f"brainflow:{board}" + (f"?{params}" if params else "")
        if kind == "lsl":
            chosen = self._chosen(self.lsl_combo)
            return chosen if chosen.startswith(("lsl:", "lsl-type:", "lsl-id:")) else f"lsl:{chosen}"
        return f"file:{self.file_edit.text().strip()}"

    @staticmethod
    def _chosen(combo: QtWidgets.QComboBox) -> str:
        index = combo.currentIndex()
        if index >= 0 and combo.itemText(index) == combo.currentText():
            data = combo.itemData(index)
            if data:
                return str(data)
        return combo.currentText().strip()

    def config(self) -> AppConfig:
        """The settings of the next run (raises ConfigError on a bad combination)."""
        notch = self.notch_combo.currentText()
        return self.base_config.replace(
            source={"spec": self.source_spec()},
            filter={"enabled": self.filter_check.isChecked(),
                    "l_freq": self.l_freq.value() or None,
                    "h_freq": self.h_freq.value() or None,
                    "notch": notch if notch in ("auto", "off") else float(notch)},
            window={"mode": self.window_mode.currentText(),
                    "length": self.window_length.value(),
                    "hop": self.window_hop.value(),
                    "min_hop": self.window_min_hop.value(),
                    "marker_match": self.marker_match.text().strip()},
            generator={"mode": self.mode_combo.currentText(),
                       "model": self.model_edit.text().strip() or "tiny",
                       "gallery": self.gallery_edit.text().strip() or None,
                       "scheduler": self.scheduler_combo.currentText(),
                       "steps": self.steps_spin.value(),
                       "guidance_scale": self.guidance_spin.value(),
                       "seed": self.seed_spin.value(),
                       "fixed_seed": self.fixed_seed.isChecked(),
                       "tiny_vae": self.fast_decode.text().strip() or None},
            record={"enabled": self.record_check.isChecked(),
                    "root": self.record_root.text().strip() or "runs"},
        )

    def apply_config(self, config: AppConfig, only_changed: bool = False) -> None:
        """Set the widgets from ``config``; ``only_changed``: only settings that differ from
        the built-in defaults (so they win over remembered ones)."""
        default = AppConfig()
        values = _flatten(config)
        defaults = _flatten(default)
        for key, value in values.items():
            if only_changed and value == defaults.get(key):
                continue
            self._apply_setting(key, value)

    def _apply_setting(self, key: str, value: Any) -> None:
        if key == "source/spec":
            kind, rest = split_spec(value)
            self.kind_combo.setCurrentIndex(SOURCE_KINDS.index(kind))
            target = {"synthetic": self.state_combo, "brainflow": self.board_combo,
                      "lsl": self.lsl_combo, "file": self.file_edit}[kind]
            if kind in ("brainflow", "synthetic"):
                rest, _, params = rest.partition("?")
                (self.board_params if kind == "brainflow" else self.synthetic_options).setText(
                    params)
            if kind != "synthetic" or rest:
                _set(target, rest)
        elif key == "filter/notch":
            _set(self.notch_combo,
                 "off" if value is None else value if isinstance(value, str) else f"{value:g}")
        elif key in ("filter/l_freq", "filter/h_freq"):
            _set(self._persistent[key], value or 0.0)
        elif key in self._persistent:
            _set(self._persistent[key], "" if value is None else value)

    # -- QSettings ---------------------------------------------------------------------------
    def save(self, settings: QtCore.QSettings) -> None:
        settings.beginGroup(SETTINGS_GROUP)
        for key, widget in self._persistent.items():
            settings.setValue(key, _get(widget))
        settings.endGroup()

    def restore(self, settings: QtCore.QSettings) -> None:
        settings.beginGroup(SETTINGS_GROUP)
        for key, widget in self._persistent.items():
            if settings.contains(key):
                try:
                    _set(widget, settings.value(key))
                except (TypeError, ValueError):
                    logger.warning("ignoring the remembered value of %s: %r", key,
                                   settings.value(key))
        settings.endGroup()

    def set_running(self, running: bool) -> None:
        """Lock what only applies at start while a session runs."""
        for widget in self._locked_while_running:
            widget.setEnabled(not running)
        self.record_root.setEnabled(not running)
        self.generation_button.setEnabled(running)
        if not running:
            self.generation_button.setChecked(False)
        self.start_button.setText("Stop" if running else "Start")


def _flatten(config: AppConfig) -> dict[str, Any]:
    return {f"{section}/{key}": value
            for section, values in dataclasses.asdict(config).items()
            for key, value in values.items()}
