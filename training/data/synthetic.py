"""Synthetic data sets: class-coded EEG of :mod:`dd_live.sources.synthetic` and drawn images.

Class ``k`` is the synthetic state ``DEFAULT_STATES[k]`` (its spectral peak, spatial pattern
and evoked response) and, for paired data, a shape/colour family: shape ``k`` of
:data:`SHAPES` in colour ``k`` of :data:`COLOURS`, jittered in place and size per item. EEG is
scaled to about unit variance (divided by the generator's amplitude).
"""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from dd_live.errors import ConfigError
from dd_live.sources.synthetic import DEFAULT_STATES, synthetic_eeg
from training.data.images import image_to_tensor

SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond", "hbar", "vbar")
COLOURS = (
    (230, 40, 40), (40, 200, 60), (50, 90, 230), (240, 220, 40),
    (220, 50, 220), (40, 220, 220), (250, 140, 20), (245, 245, 245),
)  # fmt: skip
BACKGROUND = (20, 20, 28)
#: Volts of one unit of the synthetic generator; EEG is divided by it.
AMPLITUDE = 20e-6
#: The largest number of classes (synthetic states with their own image family).
MAX_CLASSES = len(DEFAULT_STATES)


def _check(n_classes: int) -> None:
    if not 1 <= n_classes <= MAX_CLASSES:
        raise ConfigError(f"n_classes must be in 1..{MAX_CLASSES} (the synthetic states), got {n_classes}")


def class_eeg(
    label: int | None, n_channels: int, n_times: int, sfreq: float, seed: int, background_gain: float = 1.0
) -> np.ndarray:
    """``[n_channels, n_times]`` float32 EEG of class ``label`` (None: background only).

    ``background_gain`` scales the background (1/f noise, alpha, blinks, line noise); 0 leaves
    the class signature alone.
    """
    state = None if label is None else DEFAULT_STATES[label]
    full = synthetic_eeg(state, n_channels, sfreq, n_times, seed, amplitude=AMPLITUDE)
    if background_gain != 1.0:
        background = synthetic_eeg(None, n_channels, sfreq, n_times, seed, amplitude=AMPLITUDE)
        full = full + (background_gain - 1.0) * background  # same seed: the same background
    return (full / AMPLITUDE).astype(np.float32)


def draw_class_image(label: int, size: int, rng: np.random.Generator) -> Image.Image:
    """An RGB ``size`` x ``size`` image of class ``label``: its shape in its colour, jittered."""
    image = Image.new("RGB", (size, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    radius = size * rng.uniform(0.25, 0.35)
    cx, cy = (size / 2 + size * rng.uniform(-0.1, 0.1, size=2)).tolist()
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    colour = COLOURS[label]
    width = max(1, int(radius / 2.5))
    shape = SHAPES[label]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, cy - radius), (cx + radius, cy + radius), (cx - radius, cy + radius)], fill=colour)
    elif shape == "cross":
        draw.line([(cx - radius, cy), (cx + radius, cy)], fill=colour, width=width)
        draw.line([(cx, cy - radius), (cx, cy + radius)], fill=colour, width=width)
    elif shape == "ring":
        draw.ellipse(box, outline=colour, width=width)
    elif shape == "diamond":
        draw.polygon([(cx, cy - radius), (cx + radius, cy), (cx, cy + radius), (cx - radius, cy)], fill=colour)
    elif shape == "hbar":
        draw.rectangle((cx - radius, cy - radius / 3, cx + radius, cy + radius / 3), fill=colour)
    else:  # vbar
        draw.rectangle((cx - radius / 3, cy - radius, cx + radius / 3, cy + radius), fill=colour)
    return image


class SyntheticPairs(torch.utils.data.Dataset):
    """Paired synthetic EEG and images: ``n_per_class`` items of each of ``n_classes`` classes.

    Items as :class:`~training.data.ImageNetEEG`: ``{"eeg": [n_channels, n_times], "image":
    [3, image_size, image_size] in [-1, 1], "label": int, "image_id": int}``; every item has
    its own image (``image_id`` = item index). Everything depends on ``seed`` only.
    """

    def __init__(
        self,
        n_classes: int = MAX_CLASSES,
        n_per_class: int = 4,
        *,
        n_channels: int = 128,
        n_times: int = 512,
        sfreq: float = 256.0,
        image_size: int = 64,
        background_gain: float = 1.0,
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        _check(n_classes)
        self.n_classes, self.image_size, self.augment, self.seed = n_classes, image_size, augment, seed
        self.labels = [k for k in range(n_classes) for _ in range(n_per_class)]
        self.eeg = np.stack(
            [
                class_eeg(label, n_channels, n_times, sfreq, seed * 100_003 + i, background_gain)
                for i, label in enumerate(self.labels)
            ]
        )  # [N, C, T]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_ids(self) -> list[int]:
        return list(range(len(self)))

    def load_image(self, image_id: int) -> Image.Image:
        rng = np.random.default_rng([self.seed, image_id])
        return draw_class_image(self.labels[image_id], self.image_size, rng)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, torch.randint(2**31, ()).item()])
        return {
            "eeg": torch.from_numpy(self.eeg[index]),  # [C, T]
            "image": image_to_tensor(self.load_image(index), self.image_size, self.augment, rng),
            "label": self.labels[index],
            "image_id": index,
        }

    def __repr__(self) -> str:
        n_channels, n_times = self.eeg.shape[1:]
        return (
            f"<SyntheticPairs | {len(self)} items, {self.n_classes} classes, "
            f"EEG {n_channels} x {n_times}, images {self.image_size} px>"
        )


class SyntheticCorpus(torch.utils.data.Dataset):
    """Unpaired synthetic EEG windows for pretraining: class ``i % len(labels)`` per window.

    ``labels`` lists the classes drawn in turn (None: background only). Items ``{"eeg": [C, T]}``.
    """

    def __init__(
        self,
        n_windows: int,
        *,
        n_channels: int = 128,
        n_times: int = 512,
        sfreq: float = 256.0,
        labels: Sequence[int | None] = tuple(range(MAX_CLASSES)),
        background_gain: float = 1.0,
        seed: int = 0,
    ) -> None:
        for label in labels:
            if label is not None:
                _check(label + 1)
        self.n_channels, self.n_times = n_channels, n_times
        self.eeg = np.stack(
            [
                class_eeg(labels[i % len(labels)], n_channels, n_times, sfreq, seed * 100_003 + i, background_gain)
                for i in range(n_windows)
            ]
        )  # [N, C, T]

    def __len__(self) -> int:
        return len(self.eeg)

    def __getitem__(self, index: int) -> dict:
        return {"eeg": torch.from_numpy(self.eeg[index])}

    def __repr__(self) -> str:
        return f"<SyntheticCorpus | {len(self)} windows of {self.n_channels} x {self.n_times}>"
