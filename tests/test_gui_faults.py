"""The window through stream and recorder faults: a real MainWindow offscreen with real
sessions (no model: these faults concern the stream, traces and recording, not the images).

- The LSL stream comes back with 8 instead of 16 channels (real pylsl outlets in a
  subprocess, tests/lsl_outlet.py): the traces, the channel gains list and the channel stage
  follow the session's new segment without a restart.
- The recorder's disk fills up (the EEG file's descriptor is pointed at ``/dev/full``, which
  fails every write with ENOSPC, as a full disk does): the recording indicator says
  "recording stopped: ...", the record box is unticked, the live session goes on.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from test_fault_lsl import Outlet, phase
from test_gui import SYNTHETIC_SPEC, channel_rows, close_window, wait_until

from dd_live.config import NO_MODEL, AppConfig, GeneratorConfig
from dd_live.gui.traces import TracesView


@pytest.fixture
def app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


@pytest.fixture
def make_window(app, tmp_path):
    from PySide6 import QtCore

    from dd_live.gui import MainWindow

    windows = []

    def make(config):
        settings = QtCore.QSettings(str(tmp_path / "dd-live.ini"),
                                    QtCore.QSettings.Format.IniFormat)
        window = MainWindow(config, settings=settings, dialogs=False)
        windows.append(window)
        return window

    yield make
    for window in windows:
        if window.phase != "idle":
            close_window(window)


def drawn_rows(traces: TracesView) -> int:
    """How many channel rows the traces' one curve draws now."""
    _, ys = traces.curve.getData()
    return len(channel_rows(np.asarray(ys, dtype=float), 10_000)) if ys is not None else 0


def test_window_follows_a_stream_that_comes_back_with_another_layout(make_window, stream_name):
    first = phase(stream_name, n_channels=16, n_samples=600, pause_after=0.5)
    second = phase(stream_name, n_channels=8, first=900, n_samples=1500, speed=2.0)
    outlet = Outlet([first, second])
    try:
        config = AppConfig().replace(source={"spec": f"lsl:{stream_name}"},
                                     generator=GeneratorConfig(model=NO_MODEL))
        window = make_window(config)
        window.show()
        window.start_session()
        assert wait_until(lambda: window.phase == "running", 30), window.banner.text()
        traces = window.traces
        assert traces.ch_names == ("COUNTER", *(f"E{c}" for c in range(1, 16)))
        assert wait_until(lambda: window.session.raw.n_written >= 600, 30)
        assert wait_until(lambda: drawn_rows(traces) == 16, 10)
        window.channel_combo.setCurrentIndex(15)
        window.gain_spin.setValue(3.0)  # a gain on E15, a channel the new layout lacks
        old_raw = window.session.raw
        outlet.release()  # the first outlet goes; the same stream comes back with 8 channels
        assert wait_until(lambda: window.session.raw is not old_raw
                          and window.session.raw.n_written > 250, 30), window.banner.text()
        redraws = traces.n_redraws
        assert wait_until(lambda: traces.n_redraws > redraws + 2, 10)
        new_names = ("COUNTER", *(f"E{c}" for c in range(1, 8)))
        assert traces.ch_names == new_names  # the left axis names the new rows
        ticks = dict(traces.getPlotItem().getAxis("left")._tickLevels[0])
        assert [ticks[float(7 - i)] for i in range(8)] == list(new_names)
        assert drawn_rows(traces) == 8  # the curve draws the new buffer's rows, no more
        assert traces.gains.tolist() == [1.0] * 8
        combo = window.channel_combo
        assert [combo.itemText(i) for i in range(combo.count())] == list(new_names)
        assert "8 ch" in window.windowTitle()
        assert wait_until(lambda: window.spectrum.refresh(window.session.filtered, 500.0), 10)
        assert window.phase == "running" and window.session.state == "running"
        assert "new segment" in window.statusBar().currentMessage()
    finally:
        outlet.close()


def test_recorder_failure_stops_recording_not_the_session(make_window, tmp_path):
    config = AppConfig().replace(source={"spec": SYNTHETIC_SPEC},
                                 generator=GeneratorConfig(model=NO_MODEL),
                                 record={"enabled": True, "root": str(tmp_path / "runs"),
                                         "name": "s"})
    window = make_window(config)
    window.show()
    window.start_session()
    assert wait_until(lambda: window.phase == "running", 30), window.banner.text()
    assert window.controls.record_check.isChecked()
    session = window.session
    folder = session.recording_path
    assert folder is not None and wait_until(lambda: session.raw.n_written > 100, 30)
    assert window.status.recording.text().startswith("● recording to")
    # the disk is full from now on: every write to the EEG file fails with ENOSPC (the
    # recorder's own file object, its descriptor pointed at /dev/full)
    full = os.open("/dev/full", os.O_WRONLY)
    try:
        os.dup2(full, session.recorder._eeg.fileno())
    finally:
        os.close(full)
    indicator = window.status.recording
    assert wait_until(lambda: indicator.text().startswith("recording stopped:"), 30)
    assert "No space left on device" in indicator.toolTip()
    assert str(folder / "eeg.eeg") in indicator.toolTip()  # names the file
    assert not window.controls.record_check.isChecked()
    assert "recorder" not in window.banner.messages and "session" not in window.banner.messages
    assert "session failed" not in window.statusBar().currentMessage()
    # the live session goes on, without recording; the indicator keeps saying why
    n_written = session.raw.n_written
    assert wait_until(lambda: session.raw.n_written > n_written + 250, 30)
    window.refresh_status()
    assert session.recording_path is None and session.state == "running"
    assert window.phase == "running" and indicator.text().startswith("recording stopped:")
    # ticking the box records again, into a new folder
    window.controls.record_check.setChecked(True)
    assert session.recording_path not in (None, folder)
    window.refresh_status()
    assert indicator.text().startswith("● recording to")
    close_window(window)


def test_traces_skip_a_buffer_of_another_layout_until_renamed(app):
    """Between the session's new buffers and the window hearing of them (a queued signal), a
    redraw meets a buffer with another channel count: it draws nothing instead of failing."""
    from dd_live.stream import RingBuffer

    traces = TracesView()
    traces.set_channels([f"E{c}" for c in range(16)], 250.0)
    buffer = RingBuffer(8, 1000)
    buffer.write(np.zeros((8, 500), dtype=np.float32), np.arange(500) / 250.0)
    assert traces.refresh(buffer) is False and traces.n_redraws == 0
    traces.set_channels([f"E{c}" for c in range(8)], 250.0)
    assert traces.refresh(buffer) is True and drawn_rows(traces) == 8
