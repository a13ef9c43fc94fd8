"""Our checkpoint format, and one ``load`` for it and for the release's files.

A checkpoint is a folder::

    model.safetensors   every tensor of the state dict
    config.json         {"kind": "eeg_encoder" | "masked_signal_model" | "eeg_conditioner",
                         "config": asdict(config), "dd_live_version": "..."}

``load(path)`` opens such a folder, or a DreamDiffusion release ``.pth`` file (through the
safe importer of :mod:`dd_live.model.reference`); ``convert`` turns the latter into the former.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors.torch import save_file
from torch import nn

from dd_live import __version__
from dd_live.errors import CheckpointError, ConfigError
from dd_live.model.conditioning import EEGConditioner
from dd_live.model.config import ConditionerConfig, EncoderConfig, MaskedSignalConfig
from dd_live.model.encoder import EEGEncoder
from dd_live.model.masked import MaskedSignalModel
from dd_live.model.reference import import_reference
from dd_live.model.safe_load import read_safetensors

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MODEL_KINDS: dict[str, tuple[type[nn.Module], type]] = {
    "eeg_encoder": (EEGEncoder, EncoderConfig),
    "masked_signal_model": (MaskedSignalModel, MaskedSignalConfig),
    "eeg_conditioner": (EEGConditioner, ConditionerConfig),
}


def _kind_of(model: nn.Module) -> str:
    for kind, (model_class, _) in MODEL_KINDS.items():
        if type(model) is model_class:
            return kind
    raise CheckpointError(
        f"cannot save a {type(model).__name__}; save() takes an EEGEncoder, a "
        "MaskedSignalModel or an EEGConditioner"
    )


def save(model: nn.Module, folder: str | Path) -> Path:
    """Write ``model`` to ``folder`` (created if needed; files in it are replaced). Returns it."""
    kind = _kind_of(model)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, folder / WEIGHTS_FILE, metadata={"format": "pt", "kind": kind})
    meta = {"kind": kind, "config": model.config.to_dict(), "dd_live_version": __version__}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    logger.info("saved %s to %s", type(model).__name__, folder)
    return folder


def _read_meta(folder: Path) -> tuple[str, object]:
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(
            f"checkpoint folder {folder} has no {CONFIG_FILE}; a dd-live checkpoint holds "
            f"{CONFIG_FILE} and {WEIGHTS_FILE} (write one with save() or `dd-live convert`)"
        )
    try:
        meta = json.loads(config_path.read_text(encoding="utf-8"))
        kind = meta["kind"]
        model_class, config_class = MODEL_KINDS[kind]
        return kind, config_class.from_dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ConfigError) as exc:
        raise CheckpointError(
            f"{config_path} is not a valid dd-live checkpoint config ({type(exc).__name__}: "
            f"{exc}); it needs 'kind' (one of {list(MODEL_KINDS)}) and 'config'"
        ) from None


def _load_folder(folder: Path) -> nn.Module:
    kind, config = _read_meta(folder)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(
            f"checkpoint folder {folder} has no {WEIGHTS_FILE}; copy the whole folder or "
            "re-create it with save() or `dd-live convert`"
        )
    tensors = read_safetensors(weights_path)
    model = MODEL_KINDS[kind][0](config)
    expected = set(model.state_dict())
    missing, leftover = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or leftover:
        raise CheckpointError(
            f"{weights_path} does not match its {CONFIG_FILE}: missing {missing}, "
            f"unexpected {leftover}"
        )
    try:
        model.load_state_dict(tensors)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights_path} does not match its {CONFIG_FILE}: {exc}") from None
    return model


def load(path: str | Path) -> nn.Module:
    """The model stored at ``path``, in eval mode.

    ``path``: one of our checkpoint folders (the model it holds), or a DreamDiffusion release
    file: a pretrained-encoder ``checkpoint.pth`` gives its EEGEncoder (the decoder is for
    pretraining only; ``import_reference(path, kind="masked_signal")`` keeps it), a fine-tuned
    generation checkpoint gives its EEGConditioner.
    """
    path = Path(path)
    if path.is_dir():
        model = _load_folder(path)
    elif path.is_file():
        model = import_reference(path)
        if isinstance(model, MaskedSignalModel):
            model = model.encoder
    else:
        raise CheckpointError(
            f"no checkpoint at {path}: expected a dd-live checkpoint folder or a DreamDiffusion "
            ".pth file"
        )
    return model.eval()


def convert(src: str | Path, dst: str | Path) -> Path:
    """Write ``src`` (a release file, or our folder) as our checkpoint folder ``dst``.

    Everything in the file is kept: a pretrained-encoder file becomes a MaskedSignalModel
    (encoder and decoder), a generation checkpoint its EEGConditioner.
    """
    src, dst = Path(src), Path(dst)
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise CheckpointError(
            f"{dst} already exists and is not an empty folder; choose a new destination"
        )
    return save(import_reference(src) if src.is_file() else load(src), dst)
