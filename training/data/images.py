"""Image handling shared by the paired data sets: PIL image -> ``[3, S, S]`` tensor in [-1, 1]."""

import numpy as np
import torch
from PIL import Image

#: Fine-tuning augmentation of the reference: with this probability, crop this fraction and resize back.
RANDOM_CROP_PROB = 0.5
RANDOM_CROP_FRACTION = 0.8


def image_to_tensor(
    image: Image.Image, size: int, augment: bool = False, rng: np.random.Generator | None = None
) -> torch.Tensor:
    """Resize (without keeping aspect) to ``size`` px, optionally random-crop, scale to [-1, 1].

    Returns a float32 tensor ``[3, size, size]``. ``rng`` drives the augmentation (needed when
    ``augment`` is on).
    """
    image = image.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
    if augment:
        if rng is None:
            raise ValueError("image_to_tensor(augment=True) needs an rng")
        if rng.random() < RANDOM_CROP_PROB:
            crop = int(round(size * RANDOM_CROP_FRACTION))
            left, top = (int(v) for v in rng.integers(0, size - crop + 1, size=2))
            image = image.crop((left, top, left + crop, top + crop))
            image = image.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0  # [S, S, 3]
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()  # [3, S, S]


def tensor_to_image(tensor: torch.Tensor) -> Image.Image:
    """Inverse of :func:`image_to_tensor`: ``[3, S, S]`` in [-1, 1] -> RGB PIL image."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte()
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy())
