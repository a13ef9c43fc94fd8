"""Find and load the generator's components, offline-capable.

Four kinds of source, tried in this order:
(a) a folder with unet/, vae/, scheduler/ (a diffusers folder with model_index.json, or a
    dd-live model folder with optional time_cond/ and tiny_vae/);
(b) a hub id ``owner/name`` (the local cache only when ``HF_HUB_OFFLINE=1``);
(c) a single-file SD 1.5 checkpoint (.safetensors/.ckpt, LDM layout), read through
    ``from_single_file`` with the component configs in ``config`` (default: the SD 1.5 configs packaged in dd_live/assets/sd15);
(d) the reference release's fine-tuned checkpoint (``model_state_dict``), see reference.py.
"""

from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, UNet2DConditionModel
from huggingface_hub.constants import is_offline_mode

from dd_live.assets import sd15_config_dir
from dd_live.errors import GenerationError
from dd_live.generate.reference import REFERENCE_STATE_KEY, split_reference_state
from dd_live.generate.schedulers import make_scheduler
from dd_live.generate.timecond import TimeConditioner
from dd_live.model import check_safetensors, load_reference_generator_state, read_safetensors

logger = logging.getLogger(__name__)

SD15_REPO_ID = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DOWNLOAD_COMMAND = f"huggingface-cli download {SD15_REPO_ID} --local-dir models/sd15"
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Components:
    """What an ImageGenerator is built from (modules in ``torch_dtype``, on CPU)."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    scheduler_config: dict[str, Any]
    time_cond: TimeConditioner | None
    tiny_vae: AutoencoderTiny | None
    source: str


def load_components(
    path_or_id: str | Path,
    *,
    torch_dtype: torch.dtype,
    config: str | Path | None = None,
    tiny_vae: str | Path | None = None,
) -> Components:
    """Load UNet, VAE, scheduler config (+ time conditioning, tiny VAE) from any source kind."""
    path = Path(path_or_id)
    config_dir = Path(config) if config is not None else sd15_config_dir()
    if path.is_dir():
        parts = _from_folder(path, torch_dtype)
    elif path.is_file() and path.suffix in SINGLE_FILE_SUFFIXES:
        parts = _from_file(path, config_dir, torch_dtype)
    elif path.exists():
        raise GenerationError(
            f"{path} is neither a model folder (unet/, vae/, scheduler/) nor a checkpoint file "
            f"({', '.join(SINGLE_FILE_SUFFIXES)})"
        )
    elif HUB_ID.match(str(path_or_id)) and not str(path_or_id).startswith((".", "/")):
        parts = _from_hub(str(path_or_id), torch_dtype)
    else:
        raise GenerationError(
            f"no model at {path.resolve()} (not a folder, a checkpoint file or a hub id). "
            f"To get Stable Diffusion 1.5, run: {DOWNLOAD_COMMAND}  and pass models/sd15"
        )
    if tiny_vae is not None:
        parts.tiny_vae = _load_tiny_vae(tiny_vae, torch_dtype)
    logger.info("loaded generator components from %s", parts.source)
    return parts


def _from_folder(folder: Path, torch_dtype: torch.dtype) -> Components:
    missing = [name for name in ("unet", "vae", "scheduler") if not (folder / name).is_dir()]
    if missing:
        raise GenerationError(
            f"model folder {folder} lacks {', '.join(f'{m}/' for m in missing)}; a generator folder holds "
            f"unet/, vae/ and scheduler/ (e.g. from: {DOWNLOAD_COMMAND})"
        )
    kwargs = {"torch_dtype": torch_dtype, "local_files_only": True}

    def part(cls, name: str):
        check_safetensors(folder / name)  # a garbled weights file: CheckpointError naming it
        try:
            return cls.from_pretrained(folder, subfolder=name, **kwargs)
        except (OSError, ValueError) as exc:  # diffusers: OSError for bad weights
            raise GenerationError(
                f"could not load {folder / name}/ ({type(exc).__name__}: {exc}); its files may be "
                "truncated, incomplete or of another model"
            ) from None

    return Components(
        unet=part(UNet2DConditionModel, "unet"),
        vae=part(AutoencoderKL, "vae"),
        scheduler_config=dict(PNDMScheduler.load_config(folder, subfolder="scheduler")),
        time_cond=part(TimeConditioner, "time_cond") if (folder / "time_cond").is_dir() else None,
        tiny_vae=part(AutoencoderTiny, "tiny_vae") if (folder / "tiny_vae").is_dir() else None,
        source=f"folder {folder}",
    )


def _from_hub(repo_id: str, torch_dtype: torch.dtype) -> Components:
    kwargs = {"torch_dtype": torch_dtype, "local_files_only": is_offline_mode()}
    # diffusers 0.42 still passes an argument huggingface_hub deprecated; not the user's business
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*local_dir_use_symlinks.*", category=UserWarning)
        try:
            unet = UNet2DConditionModel.from_pretrained(repo_id, subfolder="unet", **kwargs)
            vae = AutoencoderKL.from_pretrained(repo_id, subfolder="vae", **kwargs)
            scheduler_config = PNDMScheduler.load_config(
                repo_id, subfolder="scheduler", local_files_only=kwargs["local_files_only"]
            )
        except OSError as err:
            offline = " (HF_HUB_OFFLINE=1: only the local cache was searched)" if is_offline_mode() else ""
            raise GenerationError(
                f"could not load the hub model {repo_id!r}{offline}: {err}. "
                f"Download it once, e.g.: {DOWNLOAD_COMMAND}  and pass models/sd15"
            ) from err
    return Components(unet, vae, dict(scheduler_config), None, None, source=f"hub {repo_id}")


def _from_file(path: Path, config_dir: Path, torch_dtype: torch.dtype) -> Components:
    for sub in ("unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"):
        if not (config_dir / sub).is_file():
            raise GenerationError(
                f"single-file loading needs component configs; {config_dir / sub} is missing "
                "(pass config= a folder with unet/, vae/, scheduler/ configs, e.g. dd_live/assets/sd15)"
            )
    scheduler_config = dict(PNDMScheduler.load_config(config_dir, subfolder="scheduler"))
    state, is_reference = _read_state(path)
    if is_reference:
        reference = split_reference_state(
            state,
            UNet2DConditionModel.load_config(config_dir, subfolder="unet"),
            AutoencoderKL.load_config(config_dir, subfolder="vae"),
            make_scheduler("plms", scheduler_config),
        )
        if torch_dtype != torch.float32:
            for module in (reference.unet, reference.vae, reference.time_cond):
                if module is not None:
                    module.to(dtype=torch_dtype)
        return Components(
            reference.unet, reference.vae, scheduler_config, reference.time_cond, None,
            source=f"reference checkpoint {path.name}",
        )
    kwargs = {"config": str(config_dir), "local_files_only": True, "torch_dtype": torch_dtype}
    return Components(
        unet=UNet2DConditionModel.from_single_file(state, subfolder="unet", **kwargs),
        vae=AutoencoderKL.from_single_file(state, subfolder="vae", **kwargs),
        scheduler_config=scheduler_config,
        time_cond=None,
        tiny_vae=None,
        source=f"single file {path.name}",
    )


def _read_weights(path: Path) -> Any:
    """The tensors of one weights file (safetensors, or a torch file read weights-only), on the
    CPU. Raises CheckpointError (a garbled safetensors file) or GenerationError naming the file
    when it cannot be read; lets ``pickle.UnpicklingError`` through (a pickled class: the caller
    decides)."""
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    try:
        # zip-format (torch >= 1.6) files are memory-mapped; the legacy format cannot be
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError:
        raise
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise GenerationError(
            f"{path} is not a readable torch checkpoint ({type(exc).__name__}: {exc}); it may be "
            "truncated or of another format"
        ) from None


def _read_state(path: Path) -> tuple[dict[str, torch.Tensor], bool]:
    """(state dict, is it a reference checkpoint) of a checkpoint file, never running pickled code."""
    if path.suffix == ".safetensors":
        return _read_weights(path), False
    try:
        checkpoint = _read_weights(path)
    except pickle.UnpicklingError:
        checkpoint = None  # a pickled class (the release's config): only the allow-listed reader opens it
    if checkpoint is None or (isinstance(checkpoint, dict) and REFERENCE_STATE_KEY in checkpoint):
        return load_reference_generator_state(path), True
    if not isinstance(checkpoint, dict):
        raise GenerationError(f"{path} holds a {type(checkpoint).__name__}, not a state dict of tensors")
    return checkpoint.get("state_dict", checkpoint), False


def _load_tiny_vae(path_or_id: str | Path, torch_dtype: torch.dtype) -> AutoencoderTiny:
    check_safetensors(path_or_id)  # a local folder's garbled weights: CheckpointError naming them
    try:
        return AutoencoderTiny.from_pretrained(
            path_or_id, torch_dtype=torch_dtype, local_files_only=is_offline_mode() or Path(path_or_id).exists()
        )
    except OSError as err:
        raise GenerationError(
            f"could not load the tiny autoencoder {str(path_or_id)!r}: {err}. Get TAESD once with: "
            "huggingface-cli download madebyollin/taesd --local-dir models/taesd"
        ) from err


def load_unet(path: str | Path, *, torch_dtype: torch.dtype, config: str | Path | None = None) -> UNet2DConditionModel:
    """A UNet on its own, e.g. a distilled one-step SD 1.5 UNet (DMD2-style) replacing a model's.

    ``path``: a folder with ``config.json`` and weights (or with a ``unet/`` subfolder), or one
    file (.safetensors/.bin/.ckpt/.pt/.pth) holding a UNet state dict in diffusers' layout
    (``conv_in.weight``, ...) or in the original LDM layout; it is built from the SD 1.5 UNet
    config in ``config`` (default: the packaged sd15 configs) and loaded strictly.
    """
    path = Path(path)
    config_dir = Path(config) if config is not None else sd15_config_dir()
    if path.is_dir():
        folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
        if not (folder / "config.json").is_file():
            raise GenerationError(f"UNet folder {path} has no config.json (nor unet/config.json)")
        check_safetensors(folder)
        return UNet2DConditionModel.from_pretrained(folder, torch_dtype=torch_dtype, local_files_only=True)
    if not path.is_file() or path.suffix not in (*SINGLE_FILE_SUFFIXES, ".bin"):
        raise GenerationError(
            f"no UNet at {path}: give a UNet folder (config.json + weights) or one weights file "
            f"({', '.join((*SINGLE_FILE_SUFFIXES, '.bin'))})"
        )
    try:
        state = _read_weights(path)
    except pickle.UnpicklingError as exc:
        raise GenerationError(f"{path} was refused: it is not a plain state dict of tensors ({exc})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state:
        raise GenerationError(f"{path} holds no UNet state dict")
    unet_config = UNet2DConditionModel.load_config(config_dir, subfolder="unet")
    if "conv_in.weight" in state:  # diffusers' layout
        unet = UNet2DConditionModel.from_config(unet_config)
        missing, unexpected = unet.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise GenerationError(
                f"{path} does not fit the SD 1.5 UNet config in {config_dir}: missing {sorted(missing)[:10]}, "
                f"unexpected {sorted(unexpected)[:10]}; pass config= with the UNet's own config"
            )
        return unet.to(dtype=torch_dtype)
    return UNet2DConditionModel.from_single_file(
        state, config=str(config_dir), subfolder="unet", local_files_only=True, torch_dtype=torch_dtype
    )
