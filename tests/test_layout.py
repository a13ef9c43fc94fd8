"""The "never" rules of docs/architecture.md, checked on the real import graph; what the
package ships (its data files) and what it says when an optional extra is missing."""

import subprocess
import sys

import pytest

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


# -- packaged files and optional extras ----------------------------------------------------------
def test_packaged_configs_and_demo_model_are_found_by_importlib_resources():
    from dd_live.assets import demo_model_dir, sd15_config_dir

    assert (sd15_config_dir() / "unet" / "config.json").is_file()
    assert (demo_model_dir() / "conditioner" / "model.safetensors").is_file()


def test_missing_demo_model_is_a_one_line_error_not_a_fallback(tmp_path, monkeypatch, capsys):
    """A broken install (no demo/ in the package) must not silently run the random tiny model."""
    import shutil

    import dd_live.assets
    from dd_live.cli import main

    shutil.copytree(dd_live.assets.sd15_config_dir(), tmp_path / "sd15")  # only demo/ is missing
    monkeypatch.setattr(dd_live.assets.resources, "files", lambda package: tmp_path)
    code = main(["demo", "--headless", "--duration", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and err[0].startswith("dd-live: error:"), err
    assert str(tmp_path / "demo") in err[0] and "missing" in err[0]


def test_retrieval_without_open_clip_names_the_extra(tmp_path, monkeypatch):
    """open_clip hidden as if not installed (``sys.modules[name] = None`` makes imports fail)."""
    from PIL import Image

    from dd_live.errors import MissingExtraError
    from dd_live.generate import ImageRetriever

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    monkeypatch.setitem(sys.modules, "open_clip", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'dd-live\[retrieval\]'"):
        ImageRetriever.from_folder(tmp_path)


def test_training_without_its_extra_names_it():
    """From a checkout without the ``train`` extra (accelerate hidden as if not installed)."""
    code = "import sys; sys.modules['accelerate'] = None; import training"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "MissingExtraError" in proc.stderr and "pip install -e '.[train]'" in proc.stderr


def test_lora_without_peft_names_the_extra(tmp_path, monkeypatch):
    """peft hidden as if not installed: loading LoRA weights says which extra brings it."""
    from dd_live.errors import MissingExtraError
    from dd_live.generate import ImageGenerator

    monkeypatch.setitem(sys.modules, "peft", None)
    generator = ImageGenerator.tiny(image_size=32, lora=tmp_path / "lora.safetensors")
    with pytest.raises(MissingExtraError, match=r"pip install 'dd-live\[lcm\]'"):
        generator.prepare()


# -- the file readers: one module per format, no circles ---------------------------------------
def _package_imports(folder) -> dict[str, set[str]]:
    """``module -> the dd_live modules it imports`` (at the top or inside a function) for every
    module under ``folder``, read from the source."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    graph = {}
    for path in sorted((root / folder).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        imported = _imports_in_source(path.relative_to(root))
        graph[name] = {m for m in imported if m.startswith("dd_live.")}
    return graph


def test_readers_import_no_caller_and_form_no_circle():
    """No module of dd_live/sources imports a package that holds it (``dd_live.sources``,
    ``dd_live.sources.io``: their ``__init__`` imports the modules) and no reader imports the
    façade ``dd_live.sources.readers``; the import graph of dd_live/sources has no circle."""
    graph = _package_imports("dd_live/sources")
    assert len([m for m in graph if m.startswith("dd_live.sources.io.")]) >= 8  # one per format
    for module, imported in graph.items():
        holders = {p for p in ("dd_live.sources", "dd_live.sources.io")
                   if module.startswith(p + ".")}
        if module.startswith("dd_live.sources.io."):
            holders.add("dd_live.sources.readers")
        assert not imported & holders, f"{module} imports {imported & holders}"
    state = dict.fromkeys(graph, "new")

    def visit(module, path):
        if state[module] == "open":
            raise AssertionError("import circle: " + " -> ".join([*path, module]))
        if state[module] == "new":
            state[module] = "open"
            for other in sorted(graph[module] & set(graph)):
                visit(other, [*path, module])
            state[module] = "done"

    for module in graph:
        visit(module, [])


def test_every_reader_module_imports_first_in_a_fresh_interpreter():
    """Each module of the readers' package imported first, in its own interpreter: a circle of
    top-level imports fails whichever module of it comes first."""
    modules = sorted(m for m in _package_imports("dd_live/sources/io"))
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)"
    for first in modules:
        order = [first, *(m for m in modules if m != first)]
        subprocess.run([sys.executable, "-c", code, *order], check=True, timeout=120)
    from dd_live.sources.readers import SUPPORTED, FileEvent, Recording, read_recording
    from dd_live.sources.replay import ReplaySource  # noqa: F401 (imported as callers do)

    assert callable(read_recording) and Recording and FileEvent and ".xdf" in SUPPORTED


def test_calibration_imports_no_qt_and_no_gui():
    """dd_live/calibration.py sits below the GUI like the session: no import of dd_live.gui,
    PySide6 or pyqtgraph in its source (not even inside a function), and importing it (with
    the training code that reads calibration sessions) loads none of them."""
    imported = _imports_in_source("dd_live/calibration.py")
    assert not {m for m in imported if m.split(".")[0] in ("PySide6", "pyqtgraph")
                or m == "dd_live.gui" or m.startswith("dd_live.gui.")}, imported
    loaded = _modules_after_import("dd_live.calibration")
    assert not {m.split(".")[0] for m in loaded} & {"PySide6", "pyqtgraph"}
    assert not any(m == "dd_live.gui" or m.startswith("dd_live.gui.") for m in loaded)


def _imports_in_source(relative) -> set[str]:
    """Every module a source file imports, at the top or inside a function."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).resolve().parent.parent / relative).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    return imported
