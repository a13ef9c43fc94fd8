"""Saving and loading the torch decoders in the decoder-folder format (see :mod:`.base`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dd_live import __version__
from dd_live.decoders.base import CONFIG_FILE, WEIGHTS_FILE, load_arrays
from dd_live.errors import CheckpointError


def save_module(module: nn.Module, folder: str | Path, kind: str, config: dict[str, Any]) -> Path:
    """``folder/model.safetensors`` (the state dict) + ``folder/config.json``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS_FILE), metadata={"format": "pt", "kind": kind})
    meta = {"kind": kind, "config": config, "dd_live_version": __version__}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return folder


def load_state(module: nn.Module, folder: str | Path) -> nn.Module:
    """Load ``folder/model.safetensors`` into ``module`` (every key, nothing else); eval mode."""
    arrays = load_arrays(folder, expected=set(module.state_dict()))
    try:
        module.load_state_dict({key: torch.from_numpy(value) for key, value in arrays.items()})
    except RuntimeError as exc:
        raise CheckpointError(f"{Path(folder) / WEIGHTS_FILE} does not match its {CONFIG_FILE}: "
                              f"{exc}") from None
    return module.eval()


class TargetSpace(nn.Module):
    """The decoders' output space: ``z = (embedding - mean) / scale`` and back.

    Buffers ``mean [dim]`` (the training images' mean embedding) and ``scale [1]`` (the
    standard deviation of the centred embeddings' entries).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(1))

    def set(self, embeddings: torch.Tensor) -> None:
        """From the training images' embeddings ``[n, dim]``."""
        with torch.no_grad():
            self.mean.copy_(embeddings.mean(0))
            self.scale.copy_((embeddings - self.mean).std().clamp_min(1e-8).reshape(1))

    def to_z(self, embeddings: torch.Tensor) -> torch.Tensor:
        return (embeddings - self.mean) / self.scale

    def from_z(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.scale + self.mean


def run_window(module: nn.Module, eeg, **kwargs) -> Any:
    """One numpy window ``[C, T]`` through ``module.embed`` -> numpy ``[dim]`` float32."""
    import numpy as np

    with torch.inference_mode():
        out = module.embed(torch.from_numpy(np.ascontiguousarray(eeg, dtype=np.float32))[None], **kwargs)
    return out[0].float().numpy()
