"""MaskedSignalModel: masked-signal pretraining of the EEG encoder (MAE over time tokens)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dd_live.model.config import MaskedSignalConfig, check_mask_ratio
from dd_live.model.encoder import EEGEncoder
from dd_live.model.layers import Block, count_parameters, init_vit_weights, sincos_position_table

MASK_TOKEN_INIT_STD = 0.02


def random_masking(x: Tensor, n_masked: int) -> tuple[Tensor, Tensor, Tensor]:
    """Keep a random subset of ``L - n_masked`` tokens per sample (argsort of uniform noise).

    x: ``[B, L, D]``. Returns kept tokens ``[B, L - n_masked, D]``, ``mask [B, L]`` (1 = masked)
    and ``ids_restore [B, L]`` (position of each original token in the shuffled order).
    """
    batch, n_tokens, dim = x.shape
    n_keep = n_tokens - n_masked
    noise = torch.rand(batch, n_tokens, device=x.device)  # [B, L]
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :n_keep]
    kept = torch.gather(x, 1, ids_keep[..., None].expand(-1, -1, dim))
    mask = torch.ones(batch, n_tokens, device=x.device, dtype=x.dtype)
    mask[:, :n_keep] = 0
    return kept, torch.gather(mask, 1, ids_restore), ids_restore


class MaskedSignalModel(nn.Module):
    """Encoder + light decoder reconstructing masked time tokens of all channels.

    ``forward(eeg [B, C, T], mask_ratio=None)`` -> dict with ``loss`` (scalar), ``pred``
    ``[B, L, C * patch_size]`` and ``mask [B, L]`` (1 = masked). Exactly ``round(L * ratio)``
    tokens are masked per sample (the release keeps ``int(L * (1 - ratio))``, which can differ
    by one through float rounding). The loss is the per-token MSE over its values, averaged over
    masked tokens only; targets are raw (not normalised). ``pred``'s last axis is time-major:
    index = ``t_in_token * n_channels + channel``, as in the release.
    """

    def __init__(self, config: MaskedSignalConfig) -> None:
        super().__init__()
        self.config = config
        enc, dec = config.encoder, config.decoder
        self.encoder = EEGEncoder(enc)
        self.decoder_embed = nn.Linear(enc.embed_dim, dec.embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dec.embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            sincos_position_table(enc.n_tokens, dec.embed_dim)[None],  # [1, L+1, Dd]
            requires_grad=False,
        )
        self.decoder_blocks = nn.ModuleList(
            Block(dec.embed_dim, dec.num_heads, dec.mlp_ratio, True, enc.norm_eps)
            for _ in range(dec.depth)
        )
        self.decoder_norm = nn.LayerNorm(dec.embed_dim, eps=enc.norm_eps)
        self.decoder_pred = nn.Linear(dec.embed_dim, enc.n_channels * enc.patch_size)
        nn.init.normal_(self.mask_token, std=MASK_TOKEN_INIT_STD)
        for module in (
            self.decoder_embed,
            self.decoder_blocks,
            self.decoder_norm,
            self.decoder_pred,
        ):
            module.apply(init_vit_weights)

    def patchify(self, eeg: Tensor) -> Tensor:
        """``[B, C, T]`` -> targets ``[B, L, patch_size * C]``, index ``t_in_token * C + channel``."""
        batch, n_channels, n_times = eeg.shape
        patch = self.config.encoder.patch_size
        tokens = eeg.reshape(batch, n_channels, n_times // patch, patch)  # [B, C, L, p]
        return tokens.permute(0, 2, 3, 1).reshape(batch, n_times // patch, patch * n_channels)

    def forward_encoder(self, eeg: Tensor, n_masked: int) -> tuple[Tensor, Tensor, Tensor]:
        """Encode the visible tokens with a cls token in front: ``[B, 1 + L - n_masked, D]``."""
        x = self.encoder.embed(eeg)  # [B, L, D]
        x, mask, ids_restore = random_masking(x, n_masked)
        cls = self.encoder.cls_with_position().expand(x.shape[0], -1, -1)  # [B, 1, D]
        x = self.encoder.run_blocks(torch.cat([cls, x], dim=1))
        return self.encoder.norm(x), mask, ids_restore

    def forward_decoder(self, latent: Tensor, ids_restore: Tensor) -> Tensor:
        """Visible latents ``[B, 1 + n_keep, D]`` -> predictions ``[B, L, C * patch_size]``."""
        x = self.decoder_embed(latent)  # [B, 1 + n_keep, Dd]
        batch, n_tokens = ids_restore.shape
        fill = self.mask_token.expand(batch, n_tokens + 1 - x.shape[1], -1)
        x_ = torch.cat([x[:, 1:], fill], dim=1)  # [B, L, Dd] in shuffled order
        x_ = torch.gather(x_, 1, ids_restore[..., None].expand(-1, -1, x.shape[2]))  # unshuffle
        x = torch.cat([x[:, :1], x_], dim=1) + self.decoder_pos_embed  # [B, L+1, Dd]
        for block in self.decoder_blocks:
            x = block(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]  # drop the cls slot

    def forward_loss(self, eeg: Tensor, pred: Tensor, mask: Tensor) -> Tensor:
        """Mean over masked tokens of each token's mean squared error (scalar)."""
        per_token = ((pred - self.patchify(eeg)) ** 2).mean(dim=-1)  # [B, L]
        return (per_token * mask).sum() / mask.sum()

    def forward(self, eeg: Tensor, mask_ratio: float | None = None) -> dict[str, Tensor]:
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        n_masked = check_mask_ratio(ratio, self.config.encoder.n_tokens)
        latent, mask, ids_restore = self.forward_encoder(eeg, n_masked)
        pred = self.forward_decoder(latent, ids_restore)
        return {"loss": self.forward_loss(eeg, pred, mask), "pred": pred, "mask": mask}

    def __repr__(self) -> str:
        dec = self.config.decoder
        return (
            f"MaskedSignalModel({self.encoder!r}, decoder {dec.embed_dim} wide x {dec.depth} "
            f"blocks, mask ratio {self.config.mask_ratio}, "
            f"{count_parameters(self) / 1e6:.1f} M parameters)"
        )
