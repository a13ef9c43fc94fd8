"""Import of the DreamDiffusion release's checkpoints (docs/reference.md).

Two files exist in the wild:

- the pretrained encoder ``checkpoint.pth``: ``{"model": masked-autoencoder state dict,
  "config": Config_MBM_EEG, "optimizer", "epoch", "scaler"}`` -> MaskedSignalModel (or its
  EEGEncoder);
- the fine-tuned generation checkpoint: ``{"model_state_dict": whole LDM, "config":
  Config_Generative_Model, "state"}``; its ``cond_stage_model.*`` keys -> EEGConditioner (or
  its EEGEncoder); the rest belongs to the generator (:func:`load_reference_generator_state`).

The key mapping is an explicit table of renamed prefixes. Every source key must land on a
target parameter (or be in the short, named list of keys the release carries but never uses) and
every target parameter must be filled (except the few named ones the release lacks): otherwise
CheckpointError lists the keys. The architecture (channels, patch, width, depth, MLP ratio) is
read from tensor shapes; head counts from the pickled config's attributes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dd_live.errors import CheckpointError
from dd_live.model.conditioning import EEGConditioner
from dd_live.model.config import (
    ConditionerConfig,
    ConditioningConfig,
    DecoderConfig,
    EncoderConfig,
    MaskedSignalConfig,
)
from dd_live.model.masked import MaskedSignalModel
from dd_live.model.safe_load import load_torch_file

logger = logging.getLogger(__name__)

IMPORT_KINDS = ("auto", "encoder", "masked_signal", "conditioner")
COND_PREFIX = "cond_stage_model."
REFERENCE_HEADS = 16  # the release's encoder and decoder head count, used when a file omits it
REFERENCE_WIDTHS = (1024, 512)  # the release's encoder and decoder widths
MAX_LISTED_KEYS = 20

# (our prefix, release prefix), first match wins; a target key is renamed by its prefix.
MASKED_SIGNAL_RENAMES = (("encoder.", ""), ("", ""))
CONDITIONER_RENAMES = (
    ("encoder.", "cond_stage_model.mae."),
    ("head.channel_mapper.", "cond_stage_model.channel_mapper."),
    ("head.dim_mapper.", "cond_stage_model.dim_mapper."),
    ("clip_projection.token_pool.", "cond_stage_model.mapping.maxpool."),
    ("clip_projection.fc.", "cond_stage_model.mapping.fc."),
)
# release keys with no counterpart: the encoder's own mask token is never used by its forward
CONDITIONER_UNUSED = ("cond_stage_model.mae.mask_token",)
# our parameters the release may lack; they keep their initial values (logged)
CONDITIONER_NOT_IN_RELEASE = ("null_context", "encoder.cls_token")
POSITION_KEYS = ("encoder.pos_embed", "decoder_pos_embed")


def _list_keys(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return shown + (f" (and {more} more)" if more > 0 else "")


def _source_key(target_key: str, renames: tuple[tuple[str, str], ...]) -> str | None:
    """The release's name of our parameter ``target_key``; None if the release has none."""
    for ours, theirs in renames:
        if target_key.startswith(ours):
            return theirs + target_key[len(ours) :]
    return None


def _other_length(table: Tensor, current: Tensor) -> bool:
    """True for a ``[1, 1 + L', D]`` position table whose only difference is its length."""
    return (
        table.ndim == 3
        and table.shape[2] == current.shape[2]
        and table.shape[1] != current.shape[1]
    )


def _interpolate_positions(table: Tensor, n_rows: int, key: str) -> Tensor:
    """Nearest-neighbour resize of the token rows of ``[1, 1 + L, D]`` (cls row kept), as released."""
    cls_row, rows = table[:, :1], table[:, 1:]
    resized = F.interpolate(rows.transpose(1, 2), size=n_rows - 1).transpose(1, 2)
    logger.info("interpolated %s from %d to %d token positions", key, rows.shape[1], n_rows - 1)
    return torch.cat([cls_row, resized], dim=1)


def map_state_dict(
    model: nn.Module,
    source: dict[str, Tensor],
    renames: tuple[tuple[str, str], ...],
    unused: tuple[str, ...] = (),
    not_in_release: tuple[str, ...] = (),
) -> dict[str, Tensor]:
    """Map release tensors ``source`` onto ``model``'s parameter names, strictly.

    Raises CheckpointError listing leftover source keys, missing target keys, or shape
    mismatches (position tables of another length are interpolated instead).
    """
    target = model.state_dict()
    mapped: dict[str, Tensor] = {}
    missing, mismatched, used = [], [], set(unused) & set(source)
    for key, current in target.items():
        src_key = _source_key(key, renames)
        if src_key is None or src_key not in source:
            if key in not_in_release:
                logger.info("%s is not in the release file; it keeps its initial value", key)
                mapped[key] = current
            else:
                missing.append(src_key or key)
            continue
        used.add(src_key)
        tensor = source[src_key]
        if key in POSITION_KEYS and _other_length(tensor, current):
            tensor = _interpolate_positions(tensor, current.shape[1], src_key)
        if tensor.shape != current.shape:
            mismatched.append(f"{src_key} {list(tensor.shape)} vs {list(current.shape)}")
        mapped[key] = tensor
    leftover = sorted(set(source) - used)
    problems = []
    if leftover:
        problems.append(f"keys the model has no place for: {_list_keys(leftover)}")
    if missing:
        problems.append(f"keys the model needs but the file lacks: {_list_keys(missing)}")
    if mismatched:
        problems.append(f"shapes that do not match: {_list_keys(mismatched)}")
    if problems:
        raise CheckpointError(
            f"the checkpoint does not match a {type(model).__name__} built from its shapes; "
            + "; ".join(problems)
            + ". Is it a DreamDiffusion release file (or was it edited)?"
        )
    for key in set(unused) & set(source):
        logger.info("dropped %s (carried by the release, never used)", key)
    return mapped


def _n_blocks(state: dict[str, Tensor], prefix: str) -> int:
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.")
    indices = {int(m.group(1)) for key in state if (m := pattern.match(key))}
    return max(indices) + 1 if indices else 0


def _require(state: dict[str, Tensor], key: str) -> Tensor:
    if key not in state:
        raise CheckpointError(
            f"the checkpoint has no {key!r}, so its architecture cannot be inferred; "
            "is it a DreamDiffusion release file?"
        )
    return state[key]


def _heads(config: dict[str, Any], attr: str, override: int | None, dim: int, what: str) -> int:
    if override is not None:
        return override
    if isinstance(config.get(attr), int):
        return config[attr]
    heads = REFERENCE_HEADS if dim % REFERENCE_HEADS == 0 else 1
    # the release's own width: its head count is known, anything else is a guess worth a warning
    level = logging.INFO if dim in REFERENCE_WIDTHS else logging.WARNING
    logger.log(
        level,
        "the checkpoint does not store the %s head count; assuming %d (pass num_heads= to override)",
        what,
        heads,
    )
    return heads


def _mlp_ratio(state: dict[str, Tensor], prefix: str, dim: int) -> float:
    hidden = _require(state, f"{prefix}0.mlp.fc1.weight").shape[0]
    return hidden / dim


def infer_encoder_config(
    state: dict[str, Tensor],
    prefix: str,
    config: dict[str, Any],
    num_heads: int | None = None,
    n_times: int | None = None,
) -> EncoderConfig:
    """EncoderConfig of the encoder stored under ``prefix`` in ``state`` (a release state dict)."""
    embed_dim, n_channels, patch_size = _require(state, f"{prefix}patch_embed.proj.weight").shape
    n_tokens = _require(state, f"{prefix}pos_embed").shape[1] - 1
    return EncoderConfig(
        n_channels=n_channels,
        n_times=n_times if n_times is not None else n_tokens * patch_size,
        patch_size=patch_size,
        embed_dim=embed_dim,
        depth=_n_blocks(state, f"{prefix}blocks."),
        num_heads=_heads(config, "num_heads", num_heads, embed_dim, "encoder"),
        mlp_ratio=_mlp_ratio(state, f"{prefix}blocks.", embed_dim),
        qkv_bias=f"{prefix}blocks.0.attn.qkv.bias" in state,
        global_pool=bool(config.get("global_pool", False)),
    )


def _masked_signal_from_state(
    state: dict[str, Tensor], config: dict[str, Any], num_heads: int | None, n_times: int | None
) -> MaskedSignalModel:
    encoder = infer_encoder_config(state, "", config, num_heads, n_times)
    decoder_dim = _require(state, "decoder_embed.weight").shape[0]
    decoder = DecoderConfig(
        embed_dim=decoder_dim,
        depth=_n_blocks(state, "decoder_blocks."),
        num_heads=_heads(config, "decoder_num_heads", None, decoder_dim, "decoder"),
        mlp_ratio=_mlp_ratio(state, "decoder_blocks.", decoder_dim),
    )
    mask_ratio = config.get("mask_ratio", MaskedSignalConfig.mask_ratio)
    model = MaskedSignalModel(MaskedSignalConfig(encoder, decoder, mask_ratio=mask_ratio))
    model.load_state_dict(map_state_dict(model, state, MASKED_SIGNAL_RENAMES))
    return model


def _conditioner_from_state(
    state: dict[str, Tensor], config: dict[str, Any], num_heads: int | None, n_times: int | None
) -> EEGConditioner:
    mae = f"{COND_PREFIX}mae."
    encoder = infer_encoder_config(state, mae, config, num_heads, n_times)
    hidden, _, _ = _require(state, f"{COND_PREFIX}channel_mapper.0.weight").shape
    context_tokens = _require(state, f"{COND_PREFIX}channel_mapper.1.weight").shape[0]
    context_dim = _require(state, f"{COND_PREFIX}dim_mapper.weight").shape[0]
    clip_dim = _require(state, f"{COND_PREFIX}mapping.fc.weight").shape[0]
    conditioning = ConditioningConfig(context_tokens, context_dim, hidden, clip_dim)
    model = EEGConditioner(ConditionerConfig(encoder, conditioning))
    mapped = map_state_dict(
        model, state, CONDITIONER_RENAMES, CONDITIONER_UNUSED, CONDITIONER_NOT_IN_RELEASE
    )
    model.load_state_dict(mapped)
    return model


def _open_release(path: Path) -> tuple[str, dict[str, Tensor], dict[str, Any]]:
    """("masked_signal" | "generation", state dict, config attributes) of a release file."""
    contents = load_torch_file(path)
    if not isinstance(contents, dict):
        raise CheckpointError(f"{path} holds a {type(contents).__name__}, not a checkpoint dict")
    config = contents.get("config")
    config = config if isinstance(config, dict) else {}
    if isinstance(contents.get("model_state_dict"), dict):
        return "generation", contents["model_state_dict"], config
    if isinstance(contents.get("model"), dict):
        return "masked_signal", contents["model"], config
    if "patch_embed.proj.weight" in contents:  # a bare masked-autoencoder state dict
        return "masked_signal", contents, config
    raise CheckpointError(
        f"{path} is not a DreamDiffusion checkpoint: expected a 'model' (pretrained encoder) or "
        f"'model_state_dict' (generation) entry, found {_list_keys(sorted(map(str, contents)))}"
    )


def import_reference(
    path: str | Path,
    kind: str = "auto",
    num_heads: int | None = None,
    n_times: int | None = None,
) -> nn.Module:
    """The model in a DreamDiffusion release file, in eval mode.

    kind: "auto" (MaskedSignalModel for a pretrained-encoder file, EEGConditioner for a
    generation file), "encoder" (the EEGEncoder of either), "masked_signal", "conditioner".
    num_heads overrides the encoder head count when the file's config lacks it; n_times builds
    the model for another window length (position tables are interpolated, nearest-neighbour).
    """
    if kind not in IMPORT_KINDS:
        raise CheckpointError(f"unknown import kind {kind!r}; choose one of {list(IMPORT_KINDS)}")
    path = Path(path)
    file_kind, state, config = _open_release(path)
    if file_kind == "masked_signal":
        if kind == "conditioner":
            raise CheckpointError(
                f"{path} is a pretrained-encoder file; it has no conditioning heads. Import it "
                "as kind='encoder' or 'masked_signal', or use a fine-tuned generation checkpoint"
            )
        model: nn.Module = _masked_signal_from_state(state, config, num_heads, n_times)
    else:
        if kind == "masked_signal":
            raise CheckpointError(
                f"{path} is a generation checkpoint; it has no pretraining decoder. Import it "
                "as kind='conditioner' or 'encoder'"
            )
        eeg_state = {k: v for k, v in state.items() if k.startswith(COND_PREFIX)}
        model = _conditioner_from_state(eeg_state, config, num_heads, n_times)
    if kind == "encoder":
        model = model.encoder
    logger.info("imported %s from %s", type(model).__name__, path)
    return model.eval()


def load_reference_generator_state(path: str | Path) -> dict[str, Tensor]:
    """The non-EEG part of a release generation checkpoint, keys and tensors untouched.

    That is every ``model_state_dict`` key not under ``cond_stage_model.``: the UNet
    (``model.diffusion_model.*``, including ``time_embed_condtion``), the VAE
    (``first_stage_model.*``), ``image_embedder.*`` and the noise-schedule buffers.
    """
    file_kind, state, _ = _open_release(Path(path))
    if file_kind != "generation":
        raise CheckpointError(
            f"{path} is a pretrained-encoder file; only a fine-tuned generation checkpoint "
            "(with 'model_state_dict') carries generator weights"
        )
    return {key: value for key, value in state.items() if not key.startswith(COND_PREFIX)}
