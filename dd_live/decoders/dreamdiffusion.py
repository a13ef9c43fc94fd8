"""The DreamDiffusion EEG encoder with a projection into the image-embedding space.

``window [C_s, T]`` -> a learned channel map to the encoder's channels (when they differ) ->
:class:`~dd_live.model.EEGEncoder` (the masked-signal ViT; pretrained weights transfer) ->
:class:`~dd_live.model.ClipProjection` to the embedding width. Outputs the target space's ``z``
(:class:`~dd_live.decoders.torch_io.TargetSpace`); :meth:`embed` gives the embedding itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dd_live.decoders.base import check_window, read_meta
from dd_live.decoders.conv import replicate_mapping
from dd_live.decoders.torch_io import TargetSpace, load_state, run_window, save_module
from dd_live.model import ClipProjection, EEGEncoder, EncoderConfig

KIND = "dreamdiffusion"


class DreamDiffusionDecoder(nn.Module):
    """``forward(eeg [B, n_in, T]) -> z [B, dim]``; ``n_in`` = ``n_channels`` of the person."""

    kind = KIND

    def __init__(self, encoder: EncoderConfig, n_in: int, dim: int) -> None:
        super().__init__()
        self.encoder_config, self.n_in, self.dim = encoder, int(n_in), int(dim)
        self.alignment = None
        if n_in != encoder.n_channels:
            self.alignment = nn.Linear(n_in, encoder.n_channels, bias=False)
            replicate_mapping(self.alignment, n_in, encoder.n_channels)
        self.encoder = EEGEncoder(encoder)
        n_tokens = 1 if encoder.global_pool else encoder.n_tokens
        self.projection = ClipProjection(n_tokens, encoder.embed_dim, dim)
        self.target = TargetSpace(dim)

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        if self.alignment is not None:
            eeg = self.alignment(eeg.transpose(1, 2)).transpose(1, 2)  # [B, C_enc, T]
        return self.projection(self.encoder(eeg))  # [B, L, D] -> [B, dim]

    def embed(self, eeg: torch.Tensor) -> torch.Tensor:
        """``[B, n_in, T]`` -> embeddings ``[B, dim]``."""
        return self.target.from_z(self(eeg))

    @property
    def n_channels(self) -> int:
        return self.n_in

    @property
    def n_times(self) -> int:
        return int(self.encoder_config.n_times)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def encode(self, eeg: np.ndarray) -> np.ndarray:
        """One window ``[n_channels, n_times]`` -> ``[dim]`` float32."""
        return run_window(self, check_window(eeg, self.n_channels, self.n_times))

    def config_dict(self) -> dict[str, Any]:
        return {"encoder": self.encoder_config.to_dict(), "n_in": self.n_in, "dim": self.dim}

    def save(self, folder: str | Path) -> Path:
        return save_module(self, folder, KIND, self.config_dict())

    @classmethod
    def load(cls, folder: str | Path) -> DreamDiffusionDecoder:
        _, config = read_meta(folder, (KIND,))
        model = cls(EncoderConfig.from_dict(config["encoder"]), int(config["n_in"]), int(config["dim"]))
        return load_state(model, folder)

    def __repr__(self) -> str:
        e = self.encoder_config
        return (f"<DreamDiffusionDecoder: {self.n_in} ch x {e.n_times} -> encoder {e.embed_dim} x "
                f"{e.depth} -> {self.dim} | {self.n_parameters / 1e6:.1f} M parameters>")
