"""The desktop window (the only Qt code of dd-live): ``MainWindow`` and ``run_app``.

Imported lazily, so ``dd_live.gui.settings`` (QtCore only) loads without the window's stack.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MainWindow", "run_app"]


def __getattr__(name: str) -> Any:
    if name == "run_app":
        from dd_live.gui.app import run_app

        return run_app
    if name == "MainWindow":
        from dd_live.gui.main_window import MainWindow

        return MainWindow
    raise AttributeError(f"module 'dd_live.gui' has no attribute {name!r}")
