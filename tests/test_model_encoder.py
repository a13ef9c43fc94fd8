"""EEGEncoder, presets and configs: reference shapes and parameter counts, forward maths."""

import math

import pytest
import torch
import torch.nn.functional as F

from dd_live.errors import ConfigError, MontageError
from dd_live.model import (
    ConditionerConfig,
    EEGConditioner,
    EEGEncoder,
    EncoderConfig,
    MaskedSignalConfig,
    MaskedSignalModel,
    get_preset,
)
from dd_live.model.layers import count_parameters, sincos_position_table

# docs/reference.md: encoder alone 151.9 M, masked autoencoder 165.4 M parameters
REFERENCE_ENCODER_PARAMS = 151_901_184
REFERENCE_MAE_PARAMS = 165_380_096


def _reference_mae_shapes() -> dict[str, tuple[int, ...]]:
    """The release's masked-autoencoder state dict, written from REFERENCE.md's listing."""
    shapes = {
        "cls_token": (1, 1, 1024),
        "pos_embed": (1, 129, 1024),
        "mask_token": (1, 1, 512),
        "decoder_pos_embed": (1, 129, 512),
        "patch_embed.proj.weight": (1024, 128, 4),
        "patch_embed.proj.bias": (1024,),
        "norm.weight": (1024,),
        "norm.bias": (1024,),
        "decoder_embed.weight": (512, 1024),
        "decoder_embed.bias": (512,),
        "decoder_norm.weight": (512,),
        "decoder_norm.bias": (512,),
        "decoder_pred.weight": (512, 512),
        "decoder_pred.bias": (512,),
    }
    for prefix, depth, dim in (("blocks", 24, 1024), ("decoder_blocks", 8, 512)):
        for i in range(depth):
            shapes.update(
                {
                    f"{prefix}.{i}.norm1.weight": (dim,),
                    f"{prefix}.{i}.norm1.bias": (dim,),
                    f"{prefix}.{i}.attn.qkv.weight": (3 * dim, dim),
                    f"{prefix}.{i}.attn.qkv.bias": (3 * dim,),
                    f"{prefix}.{i}.attn.proj.weight": (dim, dim),
                    f"{prefix}.{i}.attn.proj.bias": (dim,),
                    f"{prefix}.{i}.norm2.weight": (dim,),
                    f"{prefix}.{i}.norm2.bias": (dim,),
                    f"{prefix}.{i}.mlp.fc1.weight": (dim, dim),  # MLP ratio 1.0
                    f"{prefix}.{i}.mlp.fc1.bias": (dim,),
                    f"{prefix}.{i}.mlp.fc2.weight": (dim, dim),
                    f"{prefix}.{i}.mlp.fc2.bias": (dim,),
                }
            )
    return shapes


def test_reference_preset_matches_the_release_exactly() -> None:
    # meta device: shapes and counts without allocating 0.6 GB
    with torch.device("meta"):
        encoder = EEGEncoder(get_preset("reference"))
        mae = MaskedSignalModel(get_preset("reference", kind="masked_signal"))
        tokens = encoder(torch.empty(2, 128, 512))
        out = mae(torch.empty(2, 128, 512))
    assert count_parameters(encoder) == REFERENCE_ENCODER_PARAMS
    assert round(count_parameters(encoder) / 1e6, 1) == 151.9
    assert count_parameters(mae) == REFERENCE_MAE_PARAMS
    assert round(count_parameters(mae) / 1e6, 1) == 165.4
    assert tokens.shape == (2, 128, 1024)
    assert out["pred"].shape == (2, 128, 512) and out["mask"].shape == (2, 128)
    ours = {
        key.removeprefix("encoder."): tuple(value.shape) for key, value in mae.state_dict().items()
    }
    assert ours == _reference_mae_shapes()
    assert "151.9 M parameters" in repr(encoder)


def test_reference_conditioner_gives_sd_context_on_meta() -> None:
    with torch.device("meta"):
        conditioner = EEGConditioner(get_preset("reference", kind="conditioner"))
        out = conditioner(torch.empty(3, 128, 512))
    assert out["tokens"].shape == (3, 128, 1024)
    assert out["context"].shape == (3, 77, 768)
    assert out["clip"].shape == (3, 768)
    assert conditioner.head.channel_mapper[0].weight.shape == (64, 128, 1)
    assert conditioner.head.channel_mapper[1].weight.shape == (77, 64, 1)
    assert conditioner.clip_projection.token_pool.weight.shape == (1, 128, 1)
    assert conditioner.null_context.shape == (1, 77, 768)


def test_sincos_table_follows_the_formula() -> None:
    table = sincos_position_table(n_tokens=5, dim=8)
    assert table.shape == (6, 8)
    assert torch.all(table[0] == 0)
    for t in range(5):
        for i in range(4):
            w = 1.0 / 10000 ** (2 * i / 8)
            assert table[1 + t, i].item() == pytest.approx(math.sin(t * w), abs=1e-6)
            assert table[1 + t, 4 + i].item() == pytest.approx(math.cos(t * w), abs=1e-6)


def _hand_block(x: torch.Tensor, block: torch.nn.Module, num_heads: int) -> torch.Tensor:
    """One pre-norm block written out with an explicit softmax(QK^T / sqrt(d)) V."""
    batch, n_tokens, dim = x.shape
    head_dim = dim // num_heads
    h = F.layer_norm(x, (dim,), block.norm1.weight, block.norm1.bias, 1e-5)
    qkv = h @ block.attn.qkv.weight.T + block.attn.qkv.bias  # [B, L, 3D]
    q, k, v = qkv.split(dim, dim=-1)
    heads = []
    for head in range(num_heads):
        sl = slice(head * head_dim, (head + 1) * head_dim)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(head_dim)
        heads.append(torch.softmax(scores, dim=-1) @ v[..., sl])
    x = x + torch.cat(heads, dim=-1) @ block.attn.proj.weight.T + block.attn.proj.bias
    h = F.layer_norm(x, (dim,), block.norm2.weight, block.norm2.bias, 1e-5)
    h = F.gelu(h @ block.mlp.fc1.weight.T + block.mlp.fc1.bias)
    return x + h @ block.mlp.fc2.weight.T + block.mlp.fc2.bias


def test_forward_matches_a_hand_computation() -> None:
    torch.manual_seed(0)
    config = EncoderConfig(
        n_channels=3, n_times=16, patch_size=4, embed_dim=8, depth=1, num_heads=2
    )
    encoder = EEGEncoder(config).eval()
    for p in encoder.parameters():  # known, non-trivial weights everywhere
        p.data.normal_()
    eeg = torch.randn(2, 3, 16)
    # patch embedding by hand: token l = sum over channels/samples of its 4-sample span
    w, b = encoder.patch_embed.proj.weight, encoder.patch_embed.proj.bias  # [D, C, p], [D]
    spans = eeg.reshape(2, 3, 4, 4).permute(0, 2, 1, 3)  # [B, L, C, p]
    x = torch.einsum("blcp,dcp->bld", spans, w) + b + encoder.pos_embed[:, 1:]
    x = _hand_block(x, encoder.blocks[0], num_heads=2)
    x = F.layer_norm(x, (8,), encoder.norm.weight, encoder.norm.bias, 1e-5)
    with torch.no_grad():
        torch.testing.assert_close(encoder(eeg), x, rtol=1e-4, atol=1e-4)


def test_global_pool_gives_one_token_and_tokens_otherwise() -> None:
    config = get_preset("tiny")
    eeg = torch.randn(4, config.n_channels, config.n_times)
    assert EEGEncoder(config)(eeg).shape == (4, 16, 32)
    pooled = EEGEncoder(EncoderConfig(**{**config.to_dict(), "global_pool": True}))
    assert pooled(eeg).shape == (4, 1, 32)


def test_wrong_window_shape_is_a_montage_error() -> None:
    encoder = EEGEncoder(get_preset("tiny"))
    with pytest.raises(MontageError, match=r"8 channels, 64 samples\], got \[1, 7, 64\]"):
        encoder(torch.randn(1, 7, 64))


def test_position_table_trains_only_when_asked() -> None:
    assert not EEGEncoder(get_preset("tiny")).pos_embed.requires_grad
    config = EncoderConfig(**{**get_preset("tiny").to_dict(), "train_pos_embed": True})
    assert EEGEncoder(config).pos_embed.requires_grad


def test_encode_runs_under_inference_mode() -> None:
    encoder = EEGEncoder(get_preset("tiny")).eval()
    tokens = encoder.encode(torch.randn(2, 8, 64))
    assert tokens.is_inference() and tokens.shape == (2, 16, 32)
    conditioner = EEGConditioner(get_preset("tiny", kind="conditioner")).eval()
    assert conditioner.encode(torch.randn(2, 8, 64)).shape == (2, 77, 768)


def test_small_preset_is_for_consumer_headsets() -> None:
    config = get_preset("small")
    assert (config.n_channels, config.n_times, config.embed_dim, config.depth) == (32, 512, 256, 6)
    assert EEGEncoder(config)(torch.randn(1, 32, 512)).shape == (1, 128, 256)


def test_configs_round_trip_through_dicts_and_validate() -> None:
    for kind, cls in (("masked_signal", MaskedSignalConfig), ("conditioner", ConditionerConfig)):
        config = get_preset("small", kind=kind)
        assert cls.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        EncoderConfig(embed_dim=30, num_heads=4)
    with pytest.raises(ConfigError, match="multiple of patch_size"):
        EncoderConfig(n_times=510)
    with pytest.raises(ConfigError, match=r"unknown EncoderConfig settings \['n_chans'\]"):
        EncoderConfig.from_dict({"n_chans": 8})
    with pytest.raises(ConfigError, match="unknown model preset 'huge'"):
        get_preset("huge")
    with pytest.raises(ConfigError, match="unknown preset kind"):
        get_preset("tiny", kind="unet")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_bf16_autocast_on_cuda_stays_close_to_fp32() -> None:
    torch.manual_seed(0)
    encoder = EEGEncoder(get_preset("small")).eval().cuda()
    eeg = torch.randn(4, 32, 512, device="cuda")
    fast = encoder.encode(eeg)  # bf16 autocast
    exact = encoder.encode(eeg, autocast_dtype=None)
    assert fast.dtype == torch.bfloat16 and exact.dtype == torch.float32
    torch.testing.assert_close(fast.float(), exact, rtol=0.05, atol=0.1)
