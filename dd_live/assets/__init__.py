"""Files shipped inside the package, found with :mod:`importlib.resources`.

- ``sd15/``: Stable Diffusion 1.5 component configs (no weights): what single-file and
  DreamDiffusion checkpoints are read through, and the noise schedule of the tiny generator.
- ``demo/``: the synthetic demo model (what ``dd-live demo`` and ``--model demo`` run).

Both resolve to real folders whether dd-live runs from a checkout, an editable install or an
installed wheel. A missing folder is a :class:`~dd_live.errors.ConfigError` naming it, never a
fall-back to something else (diffusers would otherwise try the model hub for a missing config).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from dd_live.errors import ConfigError

__all__ = ["DEMO_MODEL", "asset_dir", "demo_model_dir", "sd15_config_dir"]

#: the model name (``--model demo``, ``[generator] model = "demo"``) that means the demo model
DEMO_MODEL = "demo"

#: the parts a complete demo model folder holds (dd-live model folder layout)
DEMO_MODEL_PARTS = ("conditioner", "unet", "vae", "scheduler")


def asset_dir(name: str) -> Path:
    """The shipped folder ``dd_live/assets/<name>`` as a real directory.

    Raises ConfigError when it is missing (a broken install or a partial checkout).
    """
    root = resources.files(__name__)
    folder = Path(str(root.joinpath(name)))
    if not folder.is_dir():
        raise ConfigError(
            f"dd-live's packaged folder {folder} is missing; reinstall dd-live "
            "(pip install --force-reinstall dd-live) or restore it from the repository"
        )
    return folder


def sd15_config_dir() -> Path:
    """``(folder)`` of SD 1.5's ``unet/``, ``vae/`` and ``scheduler/`` configs (no weights)."""
    return asset_dir("sd15")


def demo_model_dir() -> Path:
    """The demo model folder; ConfigError naming what is missing when it is incomplete."""
    folder = asset_dir("demo")
    missing = [part for part in DEMO_MODEL_PARTS if not (folder / part).is_dir()]
    if missing:
        raise ConfigError(
            f"the demo model in {folder} is incomplete (missing {', '.join(missing)}); "
            "reinstall dd-live, or rebuild it from a checkout with `make demo-model`"
        )
    return folder
