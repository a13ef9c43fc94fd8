"""The "never" rules of DESIGN.md, checked on the real import graph."""

import subprocess
import sys

HEAVY = ("torch", "PySide6", "diffusers", "pyqtgraph")


def _modules_after_import(*packages: str) -> set[str]:
    code = ("import sys\n" + "".join(f"import {p}\n" for p in packages)
            + "print('\\n'.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_acquisition_layer_imports_no_torch_qt_or_diffusers():
    loaded = _modules_after_import("dd_live.sources", "dd_live.stream", "dd_live.config",
                                   "dd_live.recording")
    assert not {m.split(".")[0] for m in loaded} & set(HEAVY)


def test_session_and_cli_import_no_qt():
    loaded = _modules_after_import("dd_live.session", "dd_live.cli")
    assert not {m.split(".")[0] for m in loaded} & {"PySide6", "pyqtgraph"}


def test_dd_live_never_imports_training():
    loaded = _modules_after_import("dd_live.session", "dd_live.model", "dd_live.generate",
                                   "dd_live.cli")
    assert not any(m == "training" or m.startswith("training.") for m in loaded)
