"""The built wheel works outside the source tree, offline.

The wheel is built from a copy of the sources (nothing is written into the checkout), installed
with pip into a fresh virtual environment in ``tmp_path``, and run from another folder. That
environment sees the test environment's installed dependencies through a path file, but not
the checkout nor its editable install of dd-live, so everything dd-live reads at run time must
come from the wheel. ``HF_HUB_OFFLINE=1``: nothing may be fetched.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what the build needs from the checkout (pyproject.toml names README.md as the long description)
BUILD_INPUTS = ("pyproject.toml", "setup.cfg", "README.md", "dd_live")
DEMO_SECONDS = 3

CHECK_INSTALLED = r"""
import importlib.metadata as metadata
import importlib.util
import sys
from pathlib import Path

import dd_live
import torch

site = Path(sys.argv[1]).resolve()
assert Path(dd_live.__file__).resolve().is_relative_to(site), dd_live.__file__
assert importlib.util.find_spec("training") is None, "the wheel installed a top-level 'training'"
requires = metadata.requires("dd-live")
print("requires:", " | ".join(requires))

from dd_live.generate import ImageGenerator

generator = ImageGenerator.tiny(image_size=32).configure(num_inference_steps=2).prepare()
result = generator(torch.zeros(1, 77, 768), seed=0)
print("tiny image:", result.images[0].size)
"""


def _site_packages(env: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(env), "platbase": str(env)}))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtual environment with the wheel pip-installed into it; returns its folder."""
    root = tmp_path_factory.mktemp("wheel")
    src, dist, env = root / "src", root / "dist", root / "env"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.work"))
        else:
            shutil.copy2(REPO / name, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                    "--wheel-dir", str(dist), str(src)], check=True, timeout=300)
    (wheel,) = dist.glob("dd_live-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith("training/")], "the wheel ships training/"
    for part in ("dd_live/assets/sd15/unet/config.json", "dd_live/assets/demo/conditioner/config.json",
                 "dd_live/assets/demo/unet/diffusion_pytorch_model.safetensors",
                 "dd_live/assets/demo/onnx.json", "dd_live/assets/demo/unet/model.onnx"):
        assert part in names, f"the wheel lacks {part}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True, timeout=120)
    # the dependencies: this environment's site-packages as a plain path (its .pth files, among
    # them the editable install of dd-live, are not processed from there)
    deps = Path(sysconfig.get_path("purelib"))
    _site_packages(env).mkdir(parents=True, exist_ok=True)
    (_site_packages(env) / "dd_live_test_deps.pth").write_text(f"{deps}\n")
    subprocess.run([*pip, "--python", str(env / "bin" / "python"), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    return env


def _offline_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HOME=str(tmp_path),
               XDG_CONFIG_HOME=str(tmp_path / "config"), OMP_NUM_THREADS="1")
    return env


def test_wheel_installs_assets_not_training_and_builds_the_tiny_generator(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([str(installed / "bin" / "python"), "-c", CHECK_INSTALLED,
                           str(_site_packages(installed))], cwd=elsewhere, env=_offline_env(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tiny image: (32, 32)" in proc.stdout
    requires = proc.stdout.split("requires:", 1)[1].splitlines()[0]
    # ranges, not the tested pins (those live in constraints.txt); test-only tools are extras
    runtime = [r for r in requires.split(" | ") if "extra ==" not in r]
    assert runtime and not [r for r in runtime if "==" in r], runtime
    for test_only in ("edfio", "pybv", "eeglabio", "pytest"):
        assert not [r for r in runtime if r.startswith(test_only)], f"{test_only} is a runtime requirement"


def test_installed_dd_live_demo_runs_headless_from_another_folder(installed, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run([str(installed / "bin" / "dd-live"), "demo", "--headless",
                           "--duration", str(DEMO_SECONDS)], cwd=elsewhere,
                          env=_offline_env(tmp_path), capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "demo" in out.split("model:", 1)[1].splitlines()[0].lower(), out[:2000]
    summary = [line for line in out.splitlines() if " images, " in line and "samples," in line][-1]
    n_images = int(summary.split(" images, ")[0].rsplit(" ", 1)[1])
    assert n_images >= 1, summary
    assert list(elsewhere.iterdir()) == [], "the demo wrote into the folder it was run from"
