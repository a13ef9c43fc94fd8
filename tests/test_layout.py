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
