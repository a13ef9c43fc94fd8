"""The desktop window (the only Qt code of dd-live): ``MainWindow`` and ``run_app``."""

from dd_live.gui.app import run_app
from dd_live.gui.main_window import MainWindow

__all__ = ["MainWindow", "run_app"]
