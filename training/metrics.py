"""Evaluation metrics: the reference's n-way top-k accuracy, CLIP similarity, and classifiers."""

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torch import nn

from dd_live.errors import CheckpointError, ConfigError
from training.data.synthetic import MAX_CLASSES, draw_class_image

TINY_CLASSIFIER = "tiny"
#: Side of the class drawings whose mean colours are the tiny classifier's prototypes.
PROTOTYPE_SIZE = 64


def n_way_top_k(
    scores: np.ndarray, true_class: int, n_way: int, trials: int, top_k: int, rng: np.random.Generator
) -> float:
    """Fraction of ``trials`` in which ``true_class`` is among the ``top_k`` best of itself and
    ``n_way - 1`` other classes drawn at random. ``scores``: ``[n_classes]`` for one image."""
    n_classes = len(scores)
    if not 2 <= n_way <= n_classes or not 1 <= top_k < n_way:
        raise ConfigError(f"need 2 <= n_way <= {n_classes} classes and 1 <= top_k < n_way, got {n_way}, {top_k}")
    others = np.delete(np.arange(n_classes), true_class)
    correct = 0
    for _ in range(trials):
        candidates = np.concatenate([[true_class], rng.choice(others, n_way - 1, replace=False)])
        rank = np.argsort(-scores[candidates], kind="stable")
        correct += int(0 in rank[:top_k])
    return correct / trials


class ColourClassifier(nn.Module):
    """The tests' tiny classifier: scores the synthetic classes by the image's mean colour.

    forward(images [B, 3, H, W] in [0, 1]) -> logits [B, n_classes]: minus the squared distance
    of the image's mean colour to the mean colour of a drawing of each class.
    """

    def __init__(self) -> None:
        super().__init__()
        drawings = [draw_class_image(k, PROTOTYPE_SIZE, np.random.default_rng(k)) for k in range(MAX_CLASSES)]
        means = [np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) / 255 for image in drawings]
        self.register_buffer("prototypes", torch.tensor(np.stack(means)))  # [K, 3]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        mean = images.float().mean(dim=(2, 3))  # [B, 3]
        return -torch.cdist(mean, self.prototypes) ** 2


def build_classifier(name: str, weights: str | None):
    """``(model, transform)``: a torchvision ImageNet classifier with weights from a local file
    (``weights`` a path) or the hub (``weights="DEFAULT"``), or the tiny test classifier."""
    if name == TINY_CLASSIFIER:
        return ColourClassifier().eval(), torchvision.transforms.ToTensor()
    try:
        enum = torchvision.models.get_model_weights(name).DEFAULT
    except ValueError as error:
        raise ConfigError(f"torchvision has no classifier {name!r} (e.g. vit_h_14, resnet50)") from error
    if weights == "DEFAULT":
        return torchvision.models.get_model(name, weights=enum).eval(), enum.transforms()
    model = torchvision.models.get_model(name, weights=None, **_size_arguments(name, enum))
    if weights is None:
        raise ConfigError(f"--classifier {name} needs --classifier-weights: a local .pth file or DEFAULT (download)")
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError) as error:
        raise CheckpointError(f"{weights} is not a state dict of torchvision {name}: {error}") from error
    return model.eval(), enum.transforms()


def _size_arguments(name: str, enum) -> dict:
    """vit_h_14's default (SWAG) weights use 518-px inputs; the plain model must be built to match."""
    size = enum.meta.get("min_size")
    return {"image_size": size[0]} if name.startswith("vit_") and size else {}


@torch.no_grad()
def classify(model: nn.Module, transform, images: list[Image.Image], device) -> np.ndarray:
    """Softmax scores ``[n_images, n_classes]``."""
    batch = torch.stack([transform(image.convert("RGB")) for image in images]).to(device)
    return F.softmax(model.to(device)(batch).float(), dim=-1).cpu().numpy()


@torch.no_grad()
def clip_embed(clip_model, preprocess, images: list[Image.Image], device) -> torch.Tensor:
    """Normalised CLIP image embeddings ``[n_images, D]``."""
    batch = torch.stack([preprocess(image) for image in images]).to(device)
    return F.normalize(clip_model.to(device).encode_image(batch).float(), dim=-1).cpu()
