"""MaskedSignalModel: exact mask counts, loss on masked tokens only, time-major targets; heads."""

import pytest
import torch

from dd_live.errors import ConfigError
from dd_live.model import (
    ClipProjection,
    ConditioningConfig,
    ConditioningHead,
    MaskedSignalModel,
    get_preset,
)


@pytest.fixture
def model() -> MaskedSignalModel:
    torch.manual_seed(0)
    return MaskedSignalModel(get_preset("tiny", kind="masked_signal"))


@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.3, 0.1, 0.9])
def test_exactly_round_l_times_ratio_tokens_are_masked(model, ratio) -> None:
    out = model(torch.randn(6, 8, 64), mask_ratio=ratio)
    n_tokens = 16
    assert out["mask"].shape == (6, n_tokens)
    assert set(out["mask"].unique().tolist()) == {0.0, 1.0}
    assert out["mask"].sum(dim=1).tolist() == [round(n_tokens * ratio)] * 6
    assert out["pred"].shape == (6, n_tokens, 8 * 4)
    # random per sample: the 6 masks are not all the same
    assert len({tuple(row.tolist()) for row in out["mask"]}) > 1


def test_loss_sees_only_masked_tokens(model) -> None:
    eeg = torch.randn(3, 8, 64)
    with torch.no_grad():
        out = model(eeg)
        pred, mask = out["pred"], out["mask"]
        target = model.patchify(eeg)
        by_hand = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
        torch.testing.assert_close(out["loss"], by_hand)
        visible = (mask == 0)[..., None]
        changed_visible = torch.where(visible, pred + 100.0, pred)
        assert model.forward_loss(eeg, changed_visible, mask) == out["loss"]
        changed_masked = torch.where(visible, pred, pred + 1.0)
        assert model.forward_loss(eeg, changed_masked, mask) > out["loss"]


def test_masked_samples_never_reach_the_encoder(model) -> None:
    model.eval()
    eeg = torch.randn(2, 8, 64)
    torch.manual_seed(1)
    first = model(eeg)
    masked_samples = first["mask"].repeat_interleave(4, dim=1)[:, None, :].bool()  # [B, 1, T]
    altered = torch.where(masked_samples, eeg + 50.0, eeg)
    torch.manual_seed(1)  # same noise -> same mask
    second = model(altered)
    assert torch.equal(first["mask"], second["mask"])
    torch.testing.assert_close(first["pred"], second["pred"])
    assert second["loss"] > first["loss"]


def test_targets_are_time_major_across_all_channels(model) -> None:
    channel = torch.arange(8.0)[:, None]
    time = torch.arange(64.0)[None, :]
    eeg = (1000 * channel + time)[None]  # value = 1000 * channel + sample
    target = model.patchify(eeg)  # [1, 16, 32]
    for token in (0, 5, 15):
        for t_in_token in range(4):
            for ch in range(8):
                value = target[0, token, t_in_token * 8 + ch].item()
                assert value == 1000 * ch + token * 4 + t_in_token


def test_mask_ratio_must_mask_and_keep_something(model) -> None:
    with pytest.raises(ConfigError, match="must mask at least one token"):
        model(torch.randn(1, 8, 64), mask_ratio=0.01)
    with pytest.raises(ConfigError, match="mask_ratio"):
        model(torch.randn(1, 8, 64), mask_ratio=1.0)


def test_encoder_is_an_ordinary_encoder(model) -> None:
    eeg = torch.randn(2, 8, 64)
    assert model.encoder(eeg).shape == (2, 16, 32)


def test_conditioning_head_and_clip_projection_by_hand() -> None:
    torch.manual_seed(0)
    head = ConditioningHead(n_tokens=16, embed_dim=32, config=ConditioningConfig())
    assert head.channel_mapper[0].weight.shape == (8, 16, 1)  # hidden = L // 2
    clip = ClipProjection(n_tokens=16, embed_dim=32)
    tokens = torch.randn(2, 16, 32)
    c0, c1 = head.channel_mapper
    mixed = torch.einsum("hl,bld->bhd", c0.weight[..., 0], tokens) + c0.bias[:, None]
    mixed = torch.einsum("oh,bhd->bod", c1.weight[..., 0], mixed) + c1.bias[:, None]
    context = mixed @ head.dim_mapper.weight.T + head.dim_mapper.bias
    with torch.no_grad():
        torch.testing.assert_close(head(tokens), context, rtol=1e-5, atol=1e-5)
        assert head(tokens).shape == (2, 77, 768)
        pooled = torch.einsum("l,bld->bd", clip.token_pool.weight[0, :, 0], tokens)
        expected = (pooled + clip.token_pool.bias) @ clip.fc.weight.T + clip.fc.bias
        torch.testing.assert_close(clip(tokens), expected, rtol=1e-5, atol=1e-5)
