"""The window shows the channel stage: bad channels shaded and marked in the traces, a
right-click toggle for the channels the model reads, the channel map as the traces' tooltip.

A real MainWindow offscreen, a real session replaying a FIF file written here (one channel
rails 1 s in) with the tiny random model.
"""

from __future__ import annotations

import mne
from PySide6 import QtCore, QtWidgets

from dd_live.config import AppConfig, GeneratorConfig
from dd_live.gui import MainWindow
from dd_live.gui.traces import BAD_MARK
from dd_live.sources.synthetic import STANDARD_NAMES, synthetic_eeg
from tests.test_gui import wait_until

SFREQ = 250.0
NAMES = STANDARD_NAMES[:16]




def test_bad_channel_is_shown_and_a_channel_can_be_marked_by_hand(tmp_path):
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    assert app is not None
    data = synthetic_eeg(None, len(NAMES), SFREQ, int(30 * SFREQ), seed=11)
    data[3, int(1 * SFREQ):] = 0.187  # C4 rails
    path = tmp_path / "rail_raw.fif"
    mne.io.RawArray(data, mne.create_info(list(NAMES), SFREQ, "eeg"), verbose="error").save(
        path, fmt="single", verbose="error")
    config = AppConfig().replace(source={"spec": f"file:{path}?speed=4"},
                                 generator=GeneratorConfig(model="tiny", steps=2))
    settings = QtCore.QSettings(str(tmp_path / "dd-live.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(config, settings=settings)
    window.show()
    window.start_session()
    try:
        assert wait_until(lambda: window.phase == "running", 60), window.banner.text()
        traces = window.traces
        assert "channel map: 8 of 8 model channels fed directly" in traces.toolTip()
        assert traces.toggleable == NAMES[:8]
        assert wait_until(lambda: traces.bad == ("C4",), 30)
        ticks = dict(traces.getPlotItem().getAxis("left")._tickLevels[0])
        assert ticks[float(len(NAMES) - 1 - 3)] == "C4" + BAD_MARK
        assert ticks[float(len(NAMES) - 1 - 2)] == "C3"
        assert len(traces._bad_bands) == 1
        # the right-click menu marks O1 bad by hand, and good again
        menu = traces.channel_menu()
        actions = {a.text(): a for a in menu.actions() if a.isCheckable()}
        assert list(actions) == list(NAMES[:8]) and actions["C4"].isChecked()
        actions["O1"].setChecked(True)
        assert window.session.bad_channels == ("C4", "O1") and traces.bad == ("C4", "O1")
        n_images = len(window.gallery.results)
        assert wait_until(lambda: len(window.gallery.results) >= n_images + 2, 60)
        assert "O1" in window.session.replaced_channels
        again = {a.text(): a for a in traces.channel_menu().actions() if a.isCheckable()}
        assert again["O1"].isChecked()
        again["O1"].setChecked(False)
        assert window.session.bad_channels == ("C4",) and traces.bad == ("C4",)
    finally:
        closed = []
        window.closed.connect(lambda: closed.append(True))
        window.close()
        assert wait_until(lambda: closed, 20)
