"""The demo's state classifier as a torch module (the demo's verdicts, :mod:`dd_live.verdict`;
trained by ``training.demo``): a tiny CNN naming the simulated thought a demo image shows."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from dd_live.verdict import KIND, StateClassifierConfig


class StateClassifier(nn.Module):
    """``images [B, 3, S, S]`` in [-1, 1] -> ``logits [B, n_classes]``."""

    def __init__(self, config: StateClassifierConfig, class_names: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.config, self.class_names = config, tuple(class_names)
        layers: list[nn.Module] = []
        width_in = 3
        for width in config.widths:
            layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1),
                       nn.GroupNorm(1, width), nn.SiLU()]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, config.n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # [B, W, h, w] -> [B, W] -> [B, K]
        return self.head(self.features(images).mean(dim=(2, 3)))

    @torch.inference_mode()
    def predict(self, images: list[Any]) -> np.ndarray:
        """Class index per PIL image, ``[n_images]`` (resized to ``image_size``)."""
        size = self.config.image_size
        batch = torch.stack([
            torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size)), np.float32)
                             / 127.5 - 1).permute(2, 0, 1)
            for im in images
        ])  # [B, 3, S, S]
        return self(batch).argmax(-1).numpy()

    def config_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "config": asdict(self.config), "class_names": list(self.class_names)}

    def __repr__(self) -> str:
        return (f"StateClassifier({self.config.n_classes} classes, {self.config.image_size} px, "
                f"widths {self.config.widths})")
