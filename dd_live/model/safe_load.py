"""Open weight files safely: pickled torch files without ever running code from them, and
safetensors files with a one-line refusal naming the file when one is garbled.

A garbled ``.safetensors`` (cut short, random bytes, a damaged header) makes the safetensors
library raise its own ``SafetensorError`` (and diffusers an ``OSError`` about "weights"):
:func:`read_safetensors` and :func:`check_safetensors` are the one place where that becomes a
:class:`CheckpointError`; every loader of dd-live (checkpoint folders, generator parts, LoRA,
tiny autoencoder, single files) goes through them before it hands a file to a library.

Everything goes through ``torch.load(..., weights_only=True)``: torch's restricted unpickler
builds tensors and plain containers and refuses every other Python global. The DreamDiffusion
release pickles instances of its own config classes (``config.Config_MBM_EEG``,
``config.Config_Generative_Model``, ...) into its checkpoints; those names alone are allow-listed,
mapped to :class:`ReferenceConfig`, an inert attribute holder, and returned as plain dicts.
Any other global (``posix.system``, ``builtins.eval``, ...) is refused before it is called.
"""

from __future__ import annotations

import logging
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from dd_live.errors import CheckpointError
from dd_live.safetensors_files import SAFETENSORS_SUFFIX, check_safetensors  # noqa: F401 (re-exported)
from dd_live.safetensors_files import garbled_error as _garbled

logger = logging.getLogger(__name__)

REFERENCE_CONFIG_MODULE = "config"
REFERENCE_CONFIG_CLASSES = (
    "Config_MAE_fMRI",
    "Config_MBM_fMRI",
    "Config_MBM_EEG",
    "Config_MBM_finetune",
    "Config_EEG_finetune",
    "Config_Generative_Model",
    "Config_Cls_Model",
)
_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")
_UNPICKLER_REASON = re.compile(r"WeightsUnpickler error:\s*(.+)")


class ReferenceConfig:
    """Stand-in for the release's config classes: receives their attributes, runs nothing."""


def _allowed_reference_globals() -> list[tuple[type, str]]:
    return [
        (ReferenceConfig, f"{REFERENCE_CONFIG_MODULE}.{name}") for name in REFERENCE_CONFIG_CLASSES
    ]


def _plain(obj: Any) -> Any:
    """Replace every ReferenceConfig inside dicts/lists/tuples by a dict of its attributes."""
    if isinstance(obj, ReferenceConfig):
        return {key: _plain(value) for key, value in vars(obj).items()}
    if type(obj) in (dict, OrderedDict):
        return type(obj)((key, _plain(value)) for key, value in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_plain(value) for value in obj)
    return obj


def load_torch_file(path: str | Path) -> Any:
    """Contents of the ``torch.save``d file ``path`` on the CPU, release configs as dicts.

    Raises CheckpointError if the file is missing, unreadable, or refers to a Python global
    that is not a tensor type, a plain container or a DreamDiffusion config class.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} does not exist; check the path")
    if path.suffix == SAFETENSORS_SUFFIX:  # torch.load hands these to safetensors too
        return read_safetensors(path)
    try:
        with torch.serialization.safe_globals(_allowed_reference_globals()):
            # zip-format files are memory-mapped (the 5.2 GB generation checkpoint stays on disk)
            mmap = zipfile.is_zipfile(path)
            contents = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = _GLOBAL_IN_MESSAGE.search(str(exc))
        if found is None:
            reason = _UNPICKLER_REASON.search(str(exc))
            detail = reason.group(1).strip() if reason else str(exc).strip().splitlines()[0]
            raise CheckpointError(
                f"{path} is not a readable torch checkpoint (the weights-only unpickler stopped: "
                f"{detail}); it may be truncated or of another format"
            ) from None
        raise CheckpointError(
            f"{path} was refused: it refers to the Python global {found.group(1)!r}, which is "
            "neither a tensor type, a plain container nor a DreamDiffusion config class. "
            "Loading it could run code from the file, so nothing in it was run. If you trust "
            "its author, re-save only its tensors (a dict of tensors) and convert that."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc}); "
            "it may be truncated or of another format"
        ) from None
    logger.debug("read %s with the weights-only unpickler", path)
    return _plain(contents)


def read_safetensors(path: str | Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Every tensor of the safetensors file ``path``, on ``device``.

    Raises CheckpointError naming the file when it is missing or garbled.
    """
    path = Path(path)
    try:
        return safetensors.torch.load_file(path, device=device)
    except (SafetensorError, OSError) as exc:
        raise _garbled(path, exc) from None


