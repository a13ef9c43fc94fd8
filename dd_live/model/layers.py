"""Building blocks: sin-cos position table, 1-D patch embedding, pre-norm ViT block.

Parameter names follow timm's ``Block`` (norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2),
the layout of the DreamDiffusion release, so its weights map one to one.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SINCOS_BASE = 10000.0


def sincos_position_table(n_tokens: int, dim: int) -> Tensor:
    """Fixed 1-D sin-cos positions, ``[n_tokens + 1, dim]`` float32; row 0 (the cls slot) is zero.

    Row ``1 + t`` is ``[sin(t * w), cos(t * w)]`` with ``w_i = 1 / 10000^(2i / dim)``.
    """
    half = dim // 2
    omega = 1.0 / SINCOS_BASE ** (torch.arange(half, dtype=torch.float64) / half)  # [dim/2]
    angles = torch.arange(n_tokens, dtype=torch.float64)[:, None] * omega[None, :]  # [L, dim/2]
    table = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # [L, dim]
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), table]).float()  # [L+1, dim]


class PatchEmbed1D(nn.Module):
    """``[B, n_channels, n_times]`` -> ``[B, n_tokens, embed_dim]`` by a strided Conv1d."""

    def __init__(self, n_channels: int, embed_dim: int, patch_size: int) -> None:
        super().__init__()
        self.proj = nn.Conv1d(n_channels, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, eeg: Tensor) -> Tensor:
        return self.proj(eeg).transpose(1, 2)  # [B, D, L] -> [B, L, D]


class Attention(nn.Module):
    """Multi-head self-attention through ``F.scaled_dot_product_attention``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, n_tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, n_tokens, 3, self.num_heads, dim // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [B, H, L, d]
        x = F.scaled_dot_product_attention(q, k, v)  # [B, H, L, d]
        return self.proj(x.transpose(1, 2).reshape(batch, n_tokens, dim))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``."""

    def __init__(
        self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, norm_eps: float
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_vit_weights(module: nn.Module) -> None:
    """MAE-style initialisation: xavier-uniform Linear weights, zero biases, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (trainable or not) of ``module``."""
    return sum(p.numel() for p in module.parameters())
