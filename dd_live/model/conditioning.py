"""Heads from encoder tokens to Stable Diffusion's context and to CLIP image space."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dd_live.model.config import CLIP_DIM, ConditionerConfig, ConditioningConfig
from dd_live.model.encoder import EEGEncoder
from dd_live.model.inference import inference_context
from dd_live.model.layers import count_parameters


class ConditioningHead(nn.Module):
    """``tokens [B, L, D]`` -> ``context [B, context_tokens, context_dim]`` (release: 77 x 768).

    ``channel_mapper``: two kernel-1 Conv1d over the token axis (L -> hidden -> 77, no
    activation between, as released); ``dim_mapper``: Linear D -> context_dim.
    """

    def __init__(self, n_tokens: int, embed_dim: int, config: ConditioningConfig) -> None:
        super().__init__()
        hidden = config.resolve_hidden_tokens(n_tokens)
        self.channel_mapper = nn.Sequential(
            nn.Conv1d(n_tokens, hidden, kernel_size=1),
            nn.Conv1d(hidden, config.context_tokens, kernel_size=1),
        )
        self.dim_mapper = nn.Linear(embed_dim, config.context_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.dim_mapper(self.channel_mapper(tokens))  # [B, 77, D] -> [B, 77, 768]


class ClipProjection(nn.Module):
    """``tokens [B, L, D]`` -> ``[B, clip_dim]``: a kernel-1 Conv1d pooling L -> 1, then Linear."""

    def __init__(self, n_tokens: int, embed_dim: int, clip_dim: int = CLIP_DIM) -> None:
        super().__init__()
        self.token_pool = nn.Conv1d(n_tokens, 1, kernel_size=1)
        self.fc = nn.Linear(embed_dim, clip_dim)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.fc(self.token_pool(tokens).flatten(1))  # [B, 1, D] -> [B, clip_dim]


class EEGConditioner(nn.Module):
    """Encoder + conditioning head + CLIP projection + a learned "null EEG" context.

    ``forward(eeg [B, C, T])`` -> ``{"tokens": [B, L, D], "context": [B, 77, 768],
    "clip": [B, clip_dim]}``. ``null_context [1, 77, 768]`` is the unconditional context for
    classifier-free guidance (zeros until trained; the release has none).
    """

    def __init__(self, config: ConditionerConfig) -> None:
        super().__init__()
        self.config = config
        enc, cond = config.encoder, config.conditioning
        n_tokens = 1 if enc.global_pool else enc.n_tokens
        self.encoder = EEGEncoder(enc)
        self.head = ConditioningHead(n_tokens, enc.embed_dim, cond)
        self.clip_projection = ClipProjection(n_tokens, enc.embed_dim, cond.clip_dim)
        self.null_context = nn.Parameter(torch.zeros(1, cond.context_tokens, cond.context_dim))

    def forward(self, eeg: Tensor) -> dict[str, Tensor]:
        tokens = self.encoder(eeg)  # [B, L, D]
        return {
            "tokens": tokens,
            "context": self.head(tokens),
            "clip": self.clip_projection(tokens),
        }

    def encode(self, eeg: Tensor, autocast_dtype: torch.dtype | None = torch.bfloat16) -> Tensor:
        """Inference: the context ``[B, 77, 768]`` under inference mode (autocast on CUDA)."""
        with inference_context(eeg.device, autocast_dtype):
            return self.head(self.encoder(eeg))

    def __repr__(self) -> str:
        cond = self.config.conditioning
        return (
            f"EEGConditioner({self.encoder!r} -> context {cond.context_tokens} x "
            f"{cond.context_dim}, clip {cond.clip_dim}, "
            f"{count_parameters(self) / 1e6:.1f} M parameters)"
        )
