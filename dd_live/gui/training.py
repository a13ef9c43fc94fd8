"""*Train my model*: the dialog that ends a calibration in the window.

When the presentation window closes, :func:`offer_training` shows :class:`TrainingDialog`:
*Train my model* fits the personal embedding-route model on the new session
(:func:`dd_live.personal.train_personal_model`, CPU) on a thread of its own, with a progress
bar; then *Run live with it* closes the dialog and ``dd-live calibrate`` opens the live window
with the new model. The Qt thread never waits for the training; a failure is shown in the
dialog (and logged), never lost.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from PySide6 import QtCore, QtWidgets

logger = logging.getLogger(__name__)

PROGRESS_STEPS = 1000  # the progress bar's range (fractions 0..1 shown in these steps)


class TrainingDialog(QtWidgets.QDialog):
    """Train a personal model on a calibration session, then offer to run live with it.

    Args:
        session: the calibration session folder.
        source: the source spec the session was recorded from (for the live run).
        output_dir: OUT (the model goes to ``OUT/model``); default beside the session.
        decoder: the decoders to try (``"all"``, or ``"ridge"``, ``"conv"``, ...).

    Attributes:
        model: the :class:`~dd_live.personal.PersonalModel` once trained, else None.
        chosen: the model folder when the user pressed *Run live with it*, else None.
        error: the one-line reason when training failed, else None.
    """

    finished_training = QtCore.Signal()  # trained or failed (tests and scripts wait on it)
    _progress = QtCore.Signal(float, str)  # from the training thread: queued to the Qt thread
    _done = QtCore.Signal(object)
    _failed = QtCore.Signal(str)

    def __init__(self, session: str | Path, source: str, output_dir: str | Path | None = None,
                 decoder: str = "all", parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("dd-live: your calibration is done")
        self.session, self.source, self.output_dir = Path(session), source, output_dir
        self.decoder = decoder
        self.model = None
        self.chosen: Path | None = None
        self.error: str | None = None
        self._thread: threading.Thread | None = None
        self.intro = QtWidgets.QLabel(
            f"Calibration saved in {self.session}.\nTrain a personal model on it (a few minutes "
            "on this computer's CPU, no GPU needed), then watch images from your EEG.")
        self.intro.setWordWrap(True)
        self.bar = QtWidgets.QProgressBar()
        self.bar.setRange(0, PROGRESS_STEPS)
        self.bar.setValue(0)
        self.message = QtWidgets.QLabel("")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.train_button = QtWidgets.QPushButton("Train my model")
        self.train_button.setToolTip("fit the personal model on this calibration (CPU)")
        self.train_button.clicked.connect(self.start_training)
        self.run_button = QtWidgets.QPushButton("Run live with it")
        self.run_button.setToolTip("open the live window with the new model")
        self.run_button.setEnabled(False)
        self.run_button.clicked.connect(self._run_live)
        self.close_button = QtWidgets.QPushButton("Close")
        self.close_button.clicked.connect(self.reject)
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.train_button)
        buttons.addWidget(self.run_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addWidget(self.bar)
        layout.addWidget(self.message)
        layout.addLayout(buttons)
        self._progress.connect(self._show_progress)
        self._done.connect(self._on_done)
        self._failed.connect(self._on_failed)

    def __repr__(self) -> str:
        state = "trained" if self.model else "training" if self.training else "idle"
        return f"<TrainingDialog: {state} | {self.session}>"

    @property
    def training(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start_training(self) -> None:
        """Start training on a thread of its own (the Qt thread goes on drawing)."""
        if self.training or self.model is not None:
            return
        self.error = None
        self.train_button.setEnabled(False)
        self.close_button.setEnabled(False)  # the folder is being written
        self.message.setText("starting…")
        self._thread = threading.Thread(target=self._train, name="dd-live-training",
                                        daemon=True)
        self._thread.start()

    def _train(self) -> None:  # the training thread
        from dd_live.personal import train_personal_model

        try:
            model = train_personal_model(self.session, self.output_dir, decoder=self.decoder,
                                         progress=lambda f, m: self._progress.emit(float(f), m))
        except Exception as exc:  # shown in the dialog, never lost
            logger.exception("training the personal model failed")
            self._failed.emit(f"{type(exc).__name__}: {exc}".splitlines()[0])
        else:
            self._done.emit(model)

    def _show_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(int(round(min(max(fraction, 0.0), 1.0) * PROGRESS_STEPS)))
        self.message.setText(message)

    def _on_done(self, model) -> None:
        from dd_live.personal import run_command

        self.model = model
        self.bar.setValue(PROGRESS_STEPS)
        self.message.setText(f"Trained in {model.seconds:.0f} s: {model.summary}\n"
                             f"From a terminal: {run_command(model.folder, self.source)}")
        self.run_button.setEnabled(True)
        self.run_button.setDefault(True)
        self.close_button.setEnabled(True)
        self.finished_training.emit()

    def _on_failed(self, reason: str) -> None:
        self.error = reason
        self.message.setText(f"Training failed: {reason}")
        self.train_button.setEnabled(True)
        self.close_button.setEnabled(True)
        self.finished_training.emit()

    def _run_live(self) -> None:
        if self.model is not None:
            self.chosen = Path(self.model.folder)
            self.accept()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.training:  # the model folder is half written: wait for the thread
            event.ignore()
            return
        super().closeEvent(event)

    def reject(self) -> None:
        if not self.training:
            super().reject()


def offer_training(session: str | Path, source: str, *, output_dir: str | Path | None = None,
                   decoder: str = "all", autostart: bool = False) -> Path | None:
    """Show the dialog after a calibration (``autostart``: start training at once, as
    ``--train`` asks); returns the model folder to run live with, or None."""
    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    dialog = TrainingDialog(session, source, output_dir, decoder)
    if autostart:
        QtCore.QTimer.singleShot(0, dialog.start_training)
    dialog.exec()
    del app
    return dialog.chosen
