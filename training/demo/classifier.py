"""A tiny CNN that names the state of a demo image: how the demo's image quality is measured.

Saved as a folder: ``model.safetensors`` + ``config.json`` (``{"kind": "state_classifier",
"config": asdict(StateClassifierConfig), "class_names": [...]}``).
"""

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

from dd_live.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

KIND = "state_classifier"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
#: Training augmentation: std of added pixel noise, the blur (average-pool) probability and
#: the largest per-channel colour gain change, so the classifier also names the softer,
#: slightly off-colour images a sampler makes by their shape, not by their colour alone.
NOISE_STD = 0.1
BLUR_PROB = 0.5
COLOUR_JITTER = 0.2


@dataclass(frozen=True)
class StateClassifierConfig:
    """Conv layers of ``widths`` (stride 2 each), global average pool, linear to ``n_classes``."""

    n_classes: int = 8
    image_size: int = 64
    widths: tuple[int, ...] = (16, 32, 64)

    def __post_init__(self) -> None:
        if self.n_classes < 2 or self.image_size < 8 or not self.widths or min(self.widths) < 1:
            raise ConfigError(f"StateClassifierConfig needs >= 2 classes, image_size >= 8 and widths >= 1, got {self}")


class StateClassifier(nn.Module):
    """``images [B, 3, S, S]`` in [-1, 1] -> ``logits [B, n_classes]``."""

    def __init__(self, config: StateClassifierConfig, class_names: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.config, self.class_names = config, tuple(class_names)
        layers, width_in = [], 3
        for width in config.widths:
            layers += [nn.Conv2d(width_in, width, 3, stride=2, padding=1), nn.GroupNorm(1, width), nn.SiLU()]
            width_in = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width_in, config.n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))  # [B, W, h, w] -> [B, W] -> [B, K]

    @torch.inference_mode()
    def predict(self, images: list[Image.Image]) -> np.ndarray:
        """Class index per PIL image, ``[n_images]`` (resized to ``image_size``)."""
        size = self.config.image_size
        batch = torch.stack([
            torch.from_numpy(np.asarray(im.convert("RGB").resize((size, size)), np.float32) / 127.5 - 1).permute(2, 0, 1)
            for im in images
        ])  # [B, 3, S, S]
        return self(batch).argmax(-1).numpy()

    def __repr__(self) -> str:
        return f"StateClassifier({self.config.n_classes} classes, {self.config.image_size} px, widths {self.config.widths})"


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
    meta = {"kind": KIND, "config": asdict(model.config), "class_names": list(model.class_names)}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_classifier(folder: str | Path) -> StateClassifier:
    """The classifier saved in ``folder`` by :func:`save_classifier`, in eval mode."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{folder / CONFIG_FILE} holds a {meta.get('kind')!r}, not a {KIND}")
        config = meta["config"]
        config = StateClassifierConfig(**{**config, "widths": tuple(config["widths"])})
        model = StateClassifier(config, tuple(meta["class_names"]))
        model.load_state_dict(load_file(folder / WEIGHTS_FILE))
    except (OSError, KeyError, TypeError, json.JSONDecodeError, RuntimeError) as error:
        raise CheckpointError(f"{folder} is not a state classifier folder ({CONFIG_FILE} + {WEIGHTS_FILE}): {error}") from error
    return model.eval()
