"""A small spatio-temporal convolutional decoder (NICE / ATM / ENIGMA family), in torch.

``window [C_s, T]`` of subject ``s`` -> its **alignment layer** (a learned channel mixing
``C_s -> C``, one per person) -> **backbone**: temporal convolution (``n_filters`` kernels of
``kernel`` samples, output every other sample, SiLU) -> spatial convolution across all ``C``
channels -> average pooling to ``n_bins`` time bins -> **projector**: an MLP to the embedding width (linear, a residual GELU
block, LayerNorm). It outputs the target space's ``z`` (see
:class:`~dd_live.decoders.torch_io.TargetSpace`); :meth:`ConvDecoder.embed` returns the
embedding itself.

ENIGMA's protocol: several people train one shared backbone, each with their own alignment
layer; a new person then fits only a new alignment layer and projector, the backbone frozen
(``training.decoder --init MODEL``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dd_live.decoders.base import check_window, read_meta
from dd_live.decoders.torch_io import TargetSpace, load_state, run_window, save_module
from dd_live.errors import ConfigError

KIND = "conv"
#: The size the issue allows a small decoder.
MAX_PARAMETERS = 2_000_000


@dataclass(frozen=True)
class ConvConfig:
    """Shape of a :class:`ConvDecoder`.

    ``subject_channels``: input channels of each person's alignment layer (one entry per
    person, named in ``subjects``); ``n_channels``: the backbone's channels.
    """

    subject_channels: tuple[int, ...] = (8,)
    subjects: tuple[str, ...] = ("person",)
    n_channels: int = 8
    n_times: int = 110
    dim: int = 1024
    n_filters: int = 24
    kernel: int = 25
    n_bins: int = 16
    dropout: float = 0.3

    def __post_init__(self) -> None:
        if len(self.subject_channels) != len(self.subjects) or not self.subjects:
            raise ConfigError(f"ConvConfig: one channel count per subject, got {self.subject_channels} "
                              f"for {self.subjects}")
        for name in ("n_channels", "n_times", "dim", "n_filters", "kernel", "n_bins"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"ConvConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"ConvConfig.dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["subject_channels"], data["subjects"] = list(self.subject_channels), list(self.subjects)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConvConfig:
        data = dict(data)
        data["subject_channels"] = tuple(int(c) for c in data.get("subject_channels", (8,)))
        data["subjects"] = tuple(str(s) for s in data.get("subjects", ("person",)))
        return cls(**data)


class ResidualGELU(nn.Module):
    """``x + Dropout(Linear(GELU(x)))``: ``[B, dim] -> [B, dim]``."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.fc, self.drop = nn.Linear(dim, dim), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop(self.fc(nn.functional.gelu(x)))


class ConvDecoder(nn.Module):
    """See the module docstring. ``forward(eeg [B, C_s, T], subject=0) -> z [B, dim]``."""

    kind = KIND

    def __init__(self, config: ConvConfig) -> None:
        super().__init__()
        self.config = config
        c, f = config.n_channels, config.n_filters
        self.alignment = nn.ModuleList(nn.Linear(n_in, c, bias=False) for n_in in config.subject_channels)
        for layer, n_in in zip(self.alignment, config.subject_channels, strict=True):
            replicate_mapping(layer, n_in, c)
        self.backbone = nn.Sequential(
            # temporal, every other sample kept (after a ``kernel``-tap filter)
            nn.Conv2d(1, f, (1, config.kernel), stride=(1, 2), padding=(0, config.kernel // 2)),
            nn.BatchNorm2d(f),
            nn.SiLU(),
            nn.Conv2d(f, f, (c, 1)),  # spatial, across all channels
            nn.BatchNorm2d(f),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d((1, config.n_bins)),
            nn.Dropout(config.dropout),
            nn.Flatten(),
        )
        self.projector = nn.Sequential(nn.Linear(f * config.n_bins, config.dim),
                                       ResidualGELU(config.dim, config.dropout),
                                       nn.LayerNorm(config.dim))
        self.target = TargetSpace(config.dim)
        self.subject = 0  # the person encode() and embed() decode by default

    def forward(self, eeg: torch.Tensor, subject: int | None = None) -> torch.Tensor:
        s = self.subject if subject is None else subject
        aligned = self.alignment[s](eeg.transpose(1, 2)).transpose(1, 2)  # [B, C, T]
        return self.projector(self.backbone(aligned[:, None]))  # [B, 1, C, T] -> [B, dim]

    def embed(self, eeg: torch.Tensor, subject: int | None = None) -> torch.Tensor:
        """``[B, C_s, T]`` -> embeddings ``[B, dim]`` in the embedder's own space."""
        return self.target.from_z(self(eeg, subject))

    @property
    def n_channels(self) -> int:
        return int(self.config.subject_channels[self.subject])

    @property
    def n_times(self) -> int:
        return int(self.config.n_times)

    @property
    def n_parameters(self) -> int:
        return int(sum(p.numel() for p in self.parameters()))

    def encode(self, eeg: np.ndarray) -> np.ndarray:
        """One window ``[n_channels, n_times]`` -> ``[dim]`` float32."""
        return run_window(self, check_window(eeg, self.n_channels, self.n_times))

    def save(self, folder: str | Path) -> Path:
        return save_module(self, folder, KIND, self.config.to_dict())

    @classmethod
    def load(cls, folder: str | Path) -> ConvDecoder:
        _, config = read_meta(folder, (KIND,))
        return load_state(cls(ConvConfig.from_dict(config)), folder)

    def __repr__(self) -> str:
        c = self.config
        return (f"<ConvDecoder: {list(c.subject_channels)} ch -> {c.n_channels} x {c.n_times} -> "
                f"{c.dim} | {self.n_parameters / 1e6:.2f} M parameters, {len(c.subjects)} person(s)>")


def replicate_mapping(layer: nn.Linear, n_in: int, n_out: int) -> None:
    """Start a channel map as the live app's "replicate" mapping: output ``c`` copies ``c % n_in``."""
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[torch.arange(n_out), torch.arange(n_out) % n_in] = 1.0
