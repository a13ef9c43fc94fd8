"""EEGEncoder: a ViT over time tokens (the DreamDiffusion encoder)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dd_live.errors import MontageError
from dd_live.model.config import EncoderConfig
from dd_live.model.inference import inference_context
from dd_live.model.layers import (
    Block,
    PatchEmbed1D,
    count_parameters,
    init_vit_weights,
    sincos_position_table,
)

CLS_INIT_STD = 0.02


class EEGEncoder(nn.Module):
    """``eeg [B, n_channels, n_times]`` -> ``tokens [B, n_tokens, embed_dim]``.

    Patch embedding (Conv1d, kernel = stride = ``patch_size``), plus the sin-cos positions
    ``pos_embed[:, 1:]``, pre-norm blocks, final ``norm``. With ``global_pool`` the tokens are
    mean-pooled to ``[B, 1, embed_dim]`` before the final norm (as the release does).
    ``cls_token`` and ``pos_embed[:, 0]`` are used only by masked-signal pretraining.
    Optional speed-up: ``encoder.compile()`` (torch.compile, in place).
    """

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_embed = PatchEmbed1D(config.n_channels, dim, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(
            sincos_position_table(config.n_tokens, dim)[None],  # [1, L+1, D]
            requires_grad=config.train_pos_embed,
        )
        self.blocks = nn.ModuleList(
            Block(dim, config.num_heads, config.mlp_ratio, config.qkv_bias, config.norm_eps)
            for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(dim, eps=config.norm_eps)
        self._init_weights()

    def _init_weights(self) -> None:
        weight = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        nn.init.normal_(self.cls_token, std=CLS_INIT_STD)
        self.blocks.apply(init_vit_weights)
        init_vit_weights(self.norm)

    def check_input(self, eeg: Tensor) -> None:
        """Raise MontageError unless ``eeg`` is ``[B, n_channels, n_times]``."""
        expected = (self.config.n_channels, self.config.n_times)
        if eeg.ndim != 3 or tuple(eeg.shape[1:]) != expected:
            raise MontageError(
                f"the EEG encoder expects windows of shape [batch, {expected[0]} channels, "
                f"{expected[1]} samples], got {list(eeg.shape)}; map the channels and resample "
                "the window to the model's montage first"
            )

    def embed(self, eeg: Tensor) -> Tensor:
        """``[B, C, T]`` -> position-embedded tokens ``[B, L, D]`` (no cls token)."""
        self.check_input(eeg)
        return self.patch_embed(eeg) + self.pos_embed[:, 1:]

    def cls_with_position(self) -> Tensor:
        """The cls token plus its position, ``[1, 1, D]``."""
        return self.cls_token + self.pos_embed[:, :1]

    def run_blocks(self, x: Tensor) -> Tensor:
        """Transformer blocks over ``x [B, N, D]`` (no final norm)."""
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, eeg: Tensor) -> Tensor:
        x = self.run_blocks(self.embed(eeg))  # [B, L, D]
        if self.config.global_pool:
            x = x.mean(dim=1, keepdim=True)  # [B, 1, D]
        return self.norm(x)

    def encode(self, eeg: Tensor, autocast_dtype: torch.dtype | None = torch.bfloat16) -> Tensor:
        """Inference: ``forward`` under inference mode (autocast to ``autocast_dtype`` on CUDA)."""
        with inference_context(eeg.device, autocast_dtype):
            return self(eeg)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"EEGEncoder({c.n_channels} ch x {c.n_times} samples -> {c.n_tokens} tokens x "
            f"{c.embed_dim}, depth {c.depth}, {c.num_heads} heads, mlp {c.mlp_ratio}, "
            f"{count_parameters(self) / 1e6:.1f} M parameters)"
        )
