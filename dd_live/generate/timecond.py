"""The reference method's time conditioning: the EEG context, squeezed to one vector, added to
the UNet's time embedding.

In the release this is ``model.diffusion_model.time_embed_condtion`` (sic): Conv1d 77->38 (k 1),
Conv1d 38->1 (k 1), Linear 768->1280, no activations. In diffusers terms the UNet is built with
``class_embed_type="identity"`` and this module's output is passed as ``class_labels``: the
generator computes it once per image from the very context each row is conditioned on (the null
context for guidance's unconditional rows) and hands it to every UNet step.
"""

from __future__ import annotations

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn


class TimeConditioner(ModelMixin, ConfigMixin):
    """context [B, n_tokens, context_dim] -> time-embedding offset [B, time_embed_dim].

    Saved and loaded like any diffusers model (``save_pretrained`` / ``from_pretrained``), in the
    ``time_cond/`` subfolder of a dd-live model folder. ``layers.{0,1,2}`` are the release's
    ``time_embed_condtion.{0,1,2}``.
    """

    @register_to_config
    def __init__(self, n_tokens: int = 77, context_dim: int = 768, time_embed_dim: int = 1280):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv1d(n_tokens, n_tokens // 2, kernel_size=1),
            nn.Conv1d(n_tokens // 2, 1, kernel_size=1),
            nn.Linear(context_dim, time_embed_dim),
        )

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        return self.layers(context).squeeze(1)  # [B, 1, T] -> [B, T]
