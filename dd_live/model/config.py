"""Frozen configs of the EEG models and their named presets.

Every config is a frozen dataclass validated in ``__post_init__``; ``to_dict()`` gives a
JSON-able dict (what a checkpoint's ``config.json`` stores) and ``Cls.from_dict(d)`` reads it back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Self

from dd_live.errors import ConfigError

CLIP_TOKENS = 77
"""Number of context tokens Stable Diffusion 1.x cross-attends to."""
CLIP_DIM = 768
"""Width of one context token and of a CLIP ViT-L/14 image embedding."""

PRESET_NAMES = ("reference", "small", "tiny")
PRESET_KINDS = ("encoder", "masked_signal", "conditioner")


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{owner}.{name} must be a positive number, got {value!r}")


def _check_heads(owner: str, embed_dim: int, num_heads: int) -> None:
    if embed_dim % num_heads:
        raise ConfigError(
            f"{owner}.embed_dim ({embed_dim}) must be a multiple of num_heads ({num_heads}); "
            "pick a head count that divides the width"
        )
    if embed_dim % 2:
        raise ConfigError(
            f"{owner}.embed_dim ({embed_dim}) must be even: the sin-cos position table uses "
            "half of the width for sines and half for cosines"
        )


class _DictMixin:
    """to_dict / from_dict for flat frozen dataclasses."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} needs a dict of settings, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown {cls.__name__} settings {unknown}; known settings are {sorted(known)}"
            )
        return cls(**data)


@dataclass(frozen=True)
class EncoderConfig(_DictMixin):
    """The EEG encoder: a ViT over time tokens of ``patch_size`` samples across all channels.

    Defaults are the DreamDiffusion release (128 ch x 512 samples -> 128 tokens x 1024).
    ``train_pos_embed`` makes the sin-cos position table trainable (the release trains it when
    fine-tuning for generation, keeps it fixed when pretraining).
    """

    n_channels: int = 128
    n_times: int = 512
    patch_size: int = 4
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 1.0
    qkv_bias: bool = True
    norm_eps: float = 1e-5
    global_pool: bool = False
    train_pos_embed: bool = False

    def __post_init__(self) -> None:
        _check_positive(
            "EncoderConfig",
            n_channels=self.n_channels,
            n_times=self.n_times,
            patch_size=self.patch_size,
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            norm_eps=self.norm_eps,
        )
        if self.n_times % self.patch_size:
            raise ConfigError(
                f"EncoderConfig.n_times ({self.n_times}) must be a multiple of patch_size "
                f"({self.patch_size}); resample the window or change the patch size"
            )
        _check_heads("EncoderConfig", self.embed_dim, self.num_heads)
        if int(self.embed_dim * self.mlp_ratio) < 1:
            raise ConfigError(f"EncoderConfig.mlp_ratio {self.mlp_ratio} leaves no MLP width")

    @property
    def n_tokens(self) -> int:
        """Number of time tokens: ``n_times // patch_size``."""
        return self.n_times // self.patch_size


@dataclass(frozen=True)
class DecoderConfig(_DictMixin):
    """The light decoder used only in masked-signal pretraining (release: 512 wide, 8 blocks)."""

    embed_dim: int = 512
    depth: int = 8
    num_heads: int = 16
    mlp_ratio: float = 1.0

    def __post_init__(self) -> None:
        _check_positive(
            "DecoderConfig",
            embed_dim=self.embed_dim,
            depth=self.depth,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
        )
        _check_heads("DecoderConfig", self.embed_dim, self.num_heads)


@dataclass(frozen=True)
class MaskedSignalConfig(_DictMixin):
    """Encoder + decoder + the fraction of tokens masked in pretraining (paper: 0.75)."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    mask_ratio: float = 0.75

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, EncoderConfig) or not isinstance(
            self.decoder, DecoderConfig
        ):
            raise ConfigError("MaskedSignalConfig needs an EncoderConfig and a DecoderConfig")
        check_mask_ratio(self.mask_ratio, self.encoder.n_tokens)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["encoder"] = EncoderConfig.from_dict(data.get("encoder", {}))
        data["decoder"] = DecoderConfig.from_dict(data.get("decoder", {}))
        return super().from_dict(data)


def check_mask_ratio(mask_ratio: float, n_tokens: int) -> int:
    """Validate ``mask_ratio`` for ``n_tokens`` tokens; return the masked count ``round(L*ratio)``."""
    if isinstance(mask_ratio, bool) or not isinstance(mask_ratio, int | float):
        raise ConfigError(f"mask_ratio must be a number in (0, 1), got {mask_ratio!r}")
    n_masked = round(n_tokens * mask_ratio)
    if not 0 < mask_ratio < 1 or not 1 <= n_masked < n_tokens:
        raise ConfigError(
            f"mask_ratio {mask_ratio} masks {n_masked} of {n_tokens} tokens; it must mask at "
            "least one token and keep at least one (e.g. 0.75)"
        )
    return n_masked


@dataclass(frozen=True)
class ConditioningConfig(_DictMixin):
    """Heads from encoder tokens to SD's context and to CLIP space.

    ``hidden_tokens`` is the middle width of the token mapper (None -> ``n_tokens // 2``,
    the release's 128 -> 64 -> 77).
    """

    context_tokens: int = CLIP_TOKENS
    context_dim: int = CLIP_DIM
    hidden_tokens: int | None = None
    clip_dim: int = CLIP_DIM

    def __post_init__(self) -> None:
        _check_positive(
            "ConditioningConfig",
            context_tokens=self.context_tokens,
            context_dim=self.context_dim,
            clip_dim=self.clip_dim,
        )
        if self.hidden_tokens is not None:
            _check_positive("ConditioningConfig", hidden_tokens=self.hidden_tokens)

    def resolve_hidden_tokens(self, n_tokens: int) -> int:
        """The token mapper's middle width for an encoder giving ``n_tokens`` tokens."""
        return self.hidden_tokens if self.hidden_tokens is not None else max(1, n_tokens // 2)


@dataclass(frozen=True)
class ConditionerConfig(_DictMixin):
    """Encoder + conditioning heads: what the generator consumes."""

    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    conditioning: ConditioningConfig = field(default_factory=ConditioningConfig)

    def __post_init__(self) -> None:
        if not isinstance(self.encoder, EncoderConfig) or not isinstance(
            self.conditioning, ConditioningConfig
        ):
            raise ConfigError("ConditionerConfig needs an EncoderConfig and a ConditioningConfig")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        data = dict(data)
        data["encoder"] = EncoderConfig.from_dict(data.get("encoder", {}))
        data["conditioning"] = ConditioningConfig.from_dict(data.get("conditioning", {}))
        return super().from_dict(data)


_PRESET_PARTS: dict[str, tuple[EncoderConfig, DecoderConfig]] = {
    # the DreamDiffusion release, exactly
    "reference": (EncoderConfig(), DecoderConfig()),
    # consumer headsets (8-32 channels); fast on a CPU
    "small": (
        EncoderConfig(n_channels=32, n_times=512, embed_dim=256, depth=6, num_heads=8),
        DecoderConfig(embed_dim=128, depth=2, num_heads=4),
    ),
    # tests: builds and runs in milliseconds
    "tiny": (
        EncoderConfig(n_channels=8, n_times=64, embed_dim=32, depth=2, num_heads=2),
        DecoderConfig(embed_dim=16, depth=1, num_heads=2),
    ),
}


def get_preset(
    name: str, kind: str = "encoder"
) -> EncoderConfig | MaskedSignalConfig | ConditionerConfig:
    """The config of preset ``name`` ("reference", "small", "tiny") for a model ``kind``.

    ``kind``: "encoder" -> EncoderConfig, "masked_signal" -> MaskedSignalConfig,
    "conditioner" -> ConditionerConfig.
    """
    if name not in _PRESET_PARTS:
        raise ConfigError(f"unknown model preset {name!r}; choose one of {list(PRESET_NAMES)}")
    encoder, decoder = _PRESET_PARTS[name]
    if kind == "encoder":
        return encoder
    if kind == "masked_signal":
        return MaskedSignalConfig(encoder=encoder, decoder=decoder)
    if kind == "conditioner":
        return ConditionerConfig(encoder=encoder)
    raise ConfigError(f"unknown preset kind {kind!r}; choose one of {list(PRESET_KINDS)}")
