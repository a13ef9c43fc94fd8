"""The full-screen presenter, offscreen, in real time: the synthetic viewer streams on its own
threads while the real Qt window shows the images; the onsets it stamps land on the samples
where the viewer's responses start."""

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from test_calibration import VIEWER, draw_images, read_table

from dd_live.calibration import (
    CalibrationConfig,
    CalibrationRun,
    find_images,
    make_schedule,
    make_stimuli,
)
from dd_live.config import AppConfig
from dd_live.gui.presenter import present_fullscreen
from dd_live.sources import open_source


def test_presenter_stamps_onsets_at_the_flip_and_esc_keeps_the_session(tmp_path):
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    files = find_images(draw_images(tmp_path / "img", 6))
    config = CalibrationConfig(n_trials=12, lead_in=0.3, test_images=1, break_every=5, break_duration=0.1,
                               seed=0)
    stimuli = make_stimuli(files, config)
    trials = make_schedule(stimuli, config)
    source = open_source(VIEWER)
    app = AppConfig().replace(record={"root": str(tmp_path / "runs")})
    run = CalibrationRun(config, stimuli, app, source=source).start()
    try:
        log = present_fullscreen(run, trials, max_trials=8, photodiode=True)  # stops as Esc would
    finally:
        run.stop()
    assert run.aborted and run.n_presented == 8 and len(log.stamped) == 8
    # every stamp is taken after its image was painted and flushed, and never before it was due
    # (how close is a matter for benchmarks/calibration.py, not for a test)
    assert (np.array(log.stamped) >= np.array(log.painted)).all()
    assert (np.array(log.painted) >= np.array(log.scheduled)).all()
    assert np.all(np.diff(log.stamped) > 0)
    rows = read_table(run.folder)
    # each onset is the sample its flip's time falls on, as the viewer was told it; the
    # viewer's response starts there, or (when the window's thread told it after that sample
    # had been delivered: a loaded machine) at the next sample it had not yet delivered
    onsets = [int(r["onset_sample"]) for r in rows]
    assert onsets == source.requested
    assert all(started >= onset for onset, (started, _) in zip(onsets, source.presented))
    assert [r["image_id"] for r in rows] == [t.stimulus.image_id for t in trials[:8]]


def test_escape_aborts(tmp_path):
    QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    files = find_images(draw_images(tmp_path / "img", 4))
    config = CalibrationConfig(n_trials=500, lead_in=0.2, test_images=1, seed=0)
    stimuli = make_stimuli(files, config)
    app = AppConfig().replace(source={"spec": VIEWER}, record={"root": str(tmp_path / "runs")})
    run = CalibrationRun(config, stimuli, app).start()

    def press_escape():
        window = QtWidgets.QApplication.activeWindow() or next(
            w for w in QtWidgets.QApplication.topLevelWidgets() if w.isVisible())
        QtWidgets.QApplication.sendEvent(window, _key_press(QtCore.Qt.Key.Key_Escape))

    QtCore.QTimer.singleShot(900, press_escape)
    try:
        present_fullscreen(run, make_schedule(stimuli, config))
    finally:
        run.stop()
    assert run.aborted and 0 < run.n_presented < 500
    assert len(read_table(run.folder)) == len(run.rows) >= run.n_presented - 1


def _key_press(key):
    return QtGui.QKeyEvent(QtCore.QEvent.Type.KeyPress, key, QtCore.Qt.KeyboardModifier.NoModifier)


def test_cli_calibrate_wires_the_full_screen_window(tmp_path, capsys):
    """`dd-live calibrate` without --headless: the command line hands the full-screen window
    (with its options) to the calibration run, which holds no Qt itself. A screen that does not
    exist is refused by the window (so the option reached it); on screen 0 the trials are
    shown and placed."""
    from dd_live import cli

    images = draw_images(tmp_path / "img", 4)
    argv = ["calibrate", "--source", VIEWER, "--images", str(images), "--trials", "4",
            "--on", "0.1", "--blank", "0.1", "--test-images", "1", "--test-repeats", "1",
            "--out", str(tmp_path / "runs")]
    assert cli.main([*argv, "--screen", "7"]) == 2
    assert "--screen 7: there are 1 screen(s)" in capsys.readouterr().err
    # the run ends by offering "Train my model" (a modal dialog): it is shown, and closed here
    # as a person who does not want a model now would
    from PySide6 import QtCore, QtWidgets

    from dd_live.gui.training import TrainingDialog

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    offered = []

    def decline():
        for widget in app.topLevelWidgets():
            if isinstance(widget, TrainingDialog) and widget.isVisible():
                offered.append(widget)
                widget.reject()

    timer = QtCore.QTimer()
    timer.timeout.connect(decline)
    timer.start(50)
    try:
        assert cli.main([*argv, "--screen", "0", "--photodiode"]) == 0
    finally:
        timer.stop()
    assert "done: 4 of 4 images placed" in capsys.readouterr().out
    assert offered, "the calibration window did not offer to train a model"
