"""Training the tiny CNN that names the state of a demo image (the model and its loader live in
:mod:`dd_live.verdict`, which the app uses for its live verdict).

Saved as a folder: ``model.safetensors`` + ``config.json`` (``{"kind": "state_classifier",
"config": asdict(StateClassifierConfig), "class_names": [...]}``).
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from dd_live.verdict import (
    CONFIG_FILE,
    KIND,
    WEIGHTS_FILE,
    StateClassifier,
    StateClassifierConfig,
    load_classifier,
)

__all__ = ["KIND", "StateClassifier", "StateClassifierConfig", "augment", "load_classifier",
           "save_classifier", "train_classifier"]

logger = logging.getLogger(__name__)

#: Training augmentation: std of added pixel noise, the blur (average-pool) probability and
#: the largest per-channel colour gain change, so the classifier also names the softer,
#: slightly off-colour images a sampler makes by their shape, not by their colour alone.
NOISE_STD = 0.1
BLUR_PROB = 0.5
COLOUR_JITTER = 0.2


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Colour gain jitter and pixel noise on every image, a 3x3 blur on about half of them."""
    gains = 1 + COLOUR_JITTER * (2 * torch.rand(len(images), 3, 1, 1, generator=generator) - 1)  # [B, 3, 1, 1]
    images = ((images + 1) * gains - 1).clamp(-1, 1)  # gain on [0, 2] pixel values, back to [-1, 1]
    blurred = F.avg_pool2d(images, 3, stride=1, padding=1, count_include_pad=False)
    pick = torch.rand(len(images), 1, 1, 1, generator=generator) < BLUR_PROB
    images = torch.where(pick, blurred, images)
    return images + NOISE_STD * torch.randn(images.shape, generator=generator)


def train_classifier(images: torch.Tensor, labels: np.ndarray, config: StateClassifierConfig,
                     class_names: tuple[str, ...], *, epochs: int = 10, batch_size: int = 64,
                     lr: float = 3e-3, seed: int = 0) -> StateClassifier:
    """Train on ``images [N, 3, S, S]`` in [-1, 1] with ``labels [N]``; return it in eval mode."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = StateClassifier(config, class_names)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    targets = torch.from_numpy(labels)
    for epoch in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        total = 0.0
        for start in range(0, len(order) - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(model(augment(images[index], generator)), targets[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        logger.info("classifier epoch %d: loss %.4f", epoch, total / max(len(order) // batch_size, 1))
    return model.eval()


def save_classifier(model: StateClassifier, folder: str | Path) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / WEIGHTS_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(model.config_dict(), indent=2) + "\n")
    return folder
