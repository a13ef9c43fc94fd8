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


TINY_TEXT_LAYERS = 1
TINY_TEXT_HEADS = 4
TINY_TEXT_INTERMEDIATE = 64
CLIP_TOKEN_COUNT = 77  # SD 1.5's text context length
IP_ADAPTER_TOKENS = 4  # ip-adapter_sd15's ImageProjection: 4 extra context tokens


def _byte_level_vocabulary() -> dict[str, int]:
    """CLIP's byte-level alphabet (each byte, and each byte ending a word) + start/end tokens:
    a tokenizer that needs no merges file from the hub."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), "<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}


def save_tiny_sd15(folder, *, seed: int = 0, image_size: int = 64):
    """Write a complete SD 1.5-shaped diffusers folder with small random weights (tests, demos).

    ``folder`` gets ``model_index.json``, ``unet/`` (``tiny_unet_config``), ``vae/``,
    ``scheduler/`` (SD 1.5's PNDM schedule), ``text_encoder/`` (one CLIP text layer of width
    768, so its [77, 768] output is the UNet's context) and ``tokenizer/`` (a byte-level CLIP
    tokenizer without merges). ``StableDiffusionPipeline.from_pretrained(folder)`` opens it, as
    the generator's loader does. Returns the folder as a Path.
    """
    from pathlib import Path

    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from dd_live.assets import sd15_config_dir

    vocabulary = _byte_level_vocabulary()
    tokenizer = CLIPTokenizer(vocab=vocabulary, merges=[])
    tokenizer.model_max_length = CLIP_TOKEN_COUNT
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(vocabulary), hidden_size=CLIP_DIM, intermediate_size=TINY_TEXT_INTERMEDIATE,
        num_hidden_layers=TINY_TEXT_LAYERS, num_attention_heads=TINY_TEXT_HEADS,
        max_position_embeddings=CLIP_TOKEN_COUNT, projection_dim=CLIP_DIM,
        bos_token_id=vocabulary["<|startoftext|>"], eos_token_id=vocabulary["<|endoftext|>"],
        pad_token_id=vocabulary["<|endoftext|>"]))
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**tiny_vae_config(image_size)),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=UNet2DConditionModel(**tiny_unet_config(image_size)),
        scheduler=PNDMScheduler.from_pretrained(sd15_config_dir(), subfolder="scheduler"),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.save_pretrained(folder)
    return Path(folder)


def tiny_ip_adapter_state(unet, *, image_embed_dim: int, seed: int = 0) -> dict[str, dict[str, Any]]:
    """IP-Adapter SD 1.5 weights with random values, sized for ``unet`` (a UNet2DConditionModel).

    The layout of ``ip-adapter_sd15``, as diffusers' ``load_ip_adapter`` reads it:
    ``{"image_proj": {"proj.weight" [4*C, D], "proj.bias", "norm.weight" [C], "norm.bias"},
    "ip_adapter": {"1.to_k_ip.weight" [H, C], "1.to_v_ip.weight", "3.to_k_ip.weight", ...}}``
    with D = ``image_embed_dim``, C the UNet's cross-attention width and H each
    cross-attention's width (the keys count every attention processor; cross-attentions are
    the odd ones, in the order of ``unet.attn_processors``).
    """
    import torch

    from dd_live.generate.ip_adapter import ip_adapter_shapes

    gen = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    image_proj = {
        "proj.weight": rand(IP_ADAPTER_TOKENS * cross, image_embed_dim, scale=1.0 / image_embed_dim ** 0.5),
        "proj.bias": rand(IP_ADAPTER_TOKENS * cross, scale=0.02),
        "norm.weight": 1.0 + rand(cross, scale=0.02),
        "norm.bias": rand(cross, scale=0.02),
    }
    ip_adapter = {key: rand(*shape) for key, shape in ip_adapter_shapes(unet).items()}
    return {"image_proj": image_proj, "ip_adapter": ip_adapter}


def save_ip_adapter_state(state: dict[str, dict[str, Any]], path):
    """Write IP-Adapter weights as ``ip-adapter_sd15`` ships them: a ``.safetensors`` file with
    flat keys (``image_proj.proj.weight``, ``ip_adapter.1.to_k_ip.weight``, ...) or a ``.bin``
    file (``torch.save`` of the nested dict of tensors). Returns the path."""
    from pathlib import Path

    import torch
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix == ".safetensors":
        flat = {f"{part}.{key}": value.contiguous() for part, values in state.items()
                for key, value in values.items()}
        save_file(flat, path)
    else:
        torch.save({part: dict(values) for part, values in state.items()}, path)
    return path
