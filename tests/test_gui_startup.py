"""The window's start-up: what it imports before it shows, and its first size on real screens.

Each check runs in a fresh interpreter (``sys.modules`` of this test process already holds
everything), with Qt's offscreen platform configured to the screen size under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

IMPORT_PROBE = """
import sys
import dd_live.gui.main_window  # everything the window needs before it shows
heavy = ("scipy.signal", "torch", "diffusers", "mne", "dd_live.session", "dd_live.stream")
print("LOADED " + " ".join(name for name in heavy if name in sys.modules))
"""

SIZE_PROBE = """
import json, sys, time
from PySide6 import QtCore, QtWidgets
from dd_live.config import AppConfig
from dd_live.gui import MainWindow

app = QtWidgets.QApplication(sys.argv[:1])
settings = QtCore.QSettings(sys.argv[1], QtCore.QSettings.Format.IniFormat)
window = MainWindow(AppConfig(), settings=settings, dialogs=False)
window.show()
for _ in range(20):
    app.processEvents()
    time.sleep(0.01)

def rect(widget):
    top_left = widget.mapToGlobal(QtCore.QPoint(0, 0))
    return [top_left.x(), top_left.y(), widget.width(), widget.height()]

print("GEOMETRY " + json.dumps({"window": rect(window), "traces": rect(window.traces),
                                "image": rect(window.gallery.image), "dock": rect(window.dock)}))
window.close()
"""


def test_the_window_module_loads_without_the_session_stack():
    """The window shows before scipy's signal module, torch, diffusers, MNE and the streaming
    core load (they load on the start thread, while the window already draws)."""
    proc = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("LOADED")]
    assert line.split()[1:] == [], line


def _geometry(tmp_path, width: int, height: int) -> dict:
    screen = tmp_path / f"screen{width}.json"
    screen.write_text(json.dumps({"screens": [{"name": "s", "x": 0, "y": 0, "width": width,
                                               "height": height, "logicalDpi": 96, "dpr": 1}]}))
    env = {**os.environ, "QT_QPA_PLATFORM": f"offscreen:configfile={screen}"}
    proc = subprocess.run([sys.executable, "-c", SIZE_PROBE, str(tmp_path / f"s{width}.ini")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stdout.splitlines() if ln.startswith("GEOMETRY ")]
    return json.loads(line[len("GEOMETRY "):])


@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (1366, 768)])
def test_the_first_window_size_follows_the_screen(tmp_path, width, height):
    """A big screen gets a big window (not a fixed 1500x900), centred and on the screen; on a
    1366x768 laptop the traces keep a usable width beside the picture-first image panel."""
    g = _geometry(tmp_path, width, height)
    x, y, w, h = g["window"]
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, g
    assert w >= 0.88 * width and h >= 0.88 * height, g
    assert abs((x + w / 2) - width / 2) <= 2 and abs((y + h / 2) - height / 2) <= 2, g
    assert g["image"][2] >= 0.4 * width, g  # picture first
    assert g["traces"][2] >= 0.25 * width, g  # 1366: >= 341 px (was ~300 px with the old dock)
