"""Small configs for a complete random-weight pipeline (tests, CI, the no-weights demo).

Built like diffusers' own tests build their pipelines: the real classes, tiny widths.
"""

from __future__ import annotations

from typing import Any

from dd_live.model import CLIP_DIM

TINY_DESCRIPTION = "tiny random generator — images carry no meaning"
TINY_LATENT_CHANNELS = 4


def tiny_unet_config(
    image_size: int, *, time_conditioning: bool = False, lcm: bool = False
) -> dict[str, Any]:
    """A two-level UNet (32, 64) with cross-attention over [B, 77, 768] contexts.

    ``lcm=True`` adds a guidance embedding (``time_cond_proj_dim``), which marks a UNet
    distilled for LCM sampling.
    """
    return {
        "sample_size": image_size // 2,
        "in_channels": TINY_LATENT_CHANNELS,
        "out_channels": TINY_LATENT_CHANNELS,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": CLIP_DIM,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
        "class_embed_type": "identity" if time_conditioning else None,
        "time_cond_proj_dim": 32 if lcm else None,
    }


def tiny_vae_config(image_size: int) -> dict[str, Any]:
    """A two-level KL autoencoder: images [B, 3, S, S] <-> latents [B, 4, S/2, S/2]."""
    return {
        "sample_size": image_size,
        "in_channels": 3,
        "out_channels": 3,
        "block_out_channels": (32, 64),
        "layers_per_block": 1,
        "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
        "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
        "latent_channels": TINY_LATENT_CHANNELS,
        "norm_num_groups": 32,
    }


def tiny_tiny_vae_config() -> dict[str, Any]:
    """A TAESD-style AutoencoderTiny with the same 2x latent scale as ``tiny_vae_config``."""
    return {
        "encoder_block_out_channels": (32, 32),
        "decoder_block_out_channels": (32, 32),
        "num_encoder_blocks": (1, 1),
        "num_decoder_blocks": (1, 1),
        "latent_channels": TINY_LATENT_CHANNELS,
    }
