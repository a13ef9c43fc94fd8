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


# --- the embedding route: identification in the embedding space, low-level picture metrics ---

#: SSIM's constants (Wang et al. 2004): Gaussian window sd, and K1, K2 for data range 1.
SSIM_SIGMA, SSIM_K1, SSIM_K2 = 1.5, 0.01, 0.03


def identification(scores: np.ndarray, truth: np.ndarray, top_k: tuple[int, ...] = (1, 5)) -> dict:
    """n-way identification of each trial's true image among all candidates.

    Args:
        scores: ``[n_trials, n_way]`` similarity of each trial's decoded vector to each candidate.
        truth: ``[n_trials]`` the true candidate of each trial.

    Returns:
        ``{"top1": .., "top5": .., "two_way": ..}``: top-k by :func:`n_way_top_k` over all
        ``n_way`` candidates, and exhaustive 2-way accuracy (the fraction of other candidates
        the true one outscores, ties counting half, averaged over trials).
    """
    scores, truth = np.asarray(scores, dtype=np.float64), np.asarray(truth)
    n_trials, n_way = scores.shape
    result = {}
    rng = np.random.default_rng(0)  # all n_way candidates take part: the draw is only their order
    for k in top_k:
        kk = min(k, n_way - 1)
        result[f"top{k}"] = float(np.mean([n_way_top_k(s, int(t), n_way, 1, kk, rng)
                                           for s, t in zip(scores, truth, strict=True)]))
    true = scores[np.arange(n_trials), truth][:, None]
    wins = (scores < true).sum(1) + 0.5 * ((scores == true).sum(1) - 1)
    result["two_way"] = float(np.mean(wins / (n_way - 1)))
    return result


def pixcorr(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean Pearson correlation of the pixels of each pair (MindEye's PixCorr).

    ``predicted``, ``truth``: ``[n, h, w, 3]`` (or any ``[n, ...]``) of the same shape."""
    a = predicted.reshape(len(predicted), -1).astype(np.float64)
    b = truth.reshape(len(truth), -1).astype(np.float64)
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    r = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(r.mean())


def grey(images: np.ndarray) -> np.ndarray:
    """``[n, h, w, 3]`` in [0, 1] -> ``[n, h, w]`` luma (ITU-R BT.601)."""
    return images[..., :3] @ np.array([0.299, 0.587, 0.114])


def ssim(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean structural similarity of grey pictures ``[n, h, w]`` in [0, 1] (Gaussian window,
    sd 1.5, as Wang et al. 2004; no SSIM implementation is installed with dd-live)."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = SSIM_K1**2, SSIM_K2**2
    values = []
    for x, y in zip(np.asarray(predicted, np.float64), np.asarray(truth, np.float64), strict=True):
        def blur(image):
            return gaussian_filter(image, SSIM_SIGMA, truncate=3.5)

        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        values.append(s.mean())
    return float(np.mean(values))
