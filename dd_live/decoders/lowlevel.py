"""The low-level path: a ridge head from the window to a coarse picture of the seen image.

Its target is a small RGB thumbnail of the image (``kind "rgb"``, e.g. 8 x 8 x 3 in [0, 1]),
and, when training had a Stable Diffusion VAE at hand, also the VAE latent of the image pooled
to a few pixels per side (``kind "vae"``, ``[4, h, w]``, scaled by the VAE's
``scaling_factor`` as the UNet sees latents). Live, the thumbnail upsampled is the low-level
picture; the coarse latent (upsampled by the renderer) is the img2img start.

Folder (``lowlevel/``)::

    config.json         {"kind": "rgb" | "vae", "shape": [...], "config": {...}}
    model.safetensors   rgb_weight [F, h*w*3], rgb_bias, (latent_weight [F, 4*h*w], latent_bias)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dd_live.decoders.base import check_window, load_arrays, pooled_features, read_meta, save_arrays
from dd_live.errors import CheckpointError

KINDS = ("rgb", "vae")
#: Pixels per side of the low-level picture (the thumbnail upsampled, bicubic).
PICTURE_SIZE = 128


@dataclass
class LowLevel:
    """One window's low-level output.

    Attributes:
        picture: the decoded thumbnail upsampled to ``PICTURE_SIZE`` (PIL RGB).
        latent: ``[4, h, w]`` float32 coarse SD latent (scaled), or None without a VAE head.
    """

    picture: Image.Image
    latent: np.ndarray | None = None


def thumbnail(image: Image.Image, size: int) -> np.ndarray:
    """``[size, size, 3]`` float32 in [0, 1]: the image box-averaged to ``size`` pixels a side."""
    small = image.convert("RGB").resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def thumbnail_picture(pixels: np.ndarray, size: int = PICTURE_SIZE) -> Image.Image:
    """``[h, w, 3]`` in [0, 1] -> a PIL picture of ``size`` pixels a side (bicubic)."""
    array = (np.clip(pixels, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return Image.fromarray(array, "RGB").resize((size, size), Image.Resampling.BICUBIC)


class LowLevelHead:
    """Window ``[n_channels, n_times]`` -> :class:`LowLevel` (NumPy matrix products).

    Args:
        arrays: ``rgb_weight [F, h*w*3]``, ``rgb_bias``, optionally ``latent_weight [F, 4*h*w]``
            and ``latent_bias`` (F = ``n_channels * (n_times // pool)``).
        config: ``{"n_channels", "n_times", "pool", "rgb_shape": [h, w, 3],
            "latent_shape": [4, h, w] | None, "alpha", ...}``.
    """

    def __init__(self, arrays: dict[str, np.ndarray], config: dict[str, Any]) -> None:
        self.config = dict(config)
        self.n_channels, self.n_times = int(config["n_channels"]), int(config["n_times"])
        self.pool = int(config["pool"])
        self.rgb_shape = tuple(int(v) for v in config["rgb_shape"])
        latent = config.get("latent_shape")
        self.latent_shape = tuple(int(v) for v in latent) if latent else None
        self.arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        n_features = self.n_channels * (self.n_times // self.pool)
        if self.arrays["rgb_weight"].shape != (n_features, int(np.prod(self.rgb_shape))):
            raise CheckpointError(f"low-level weights {list(self.arrays['rgb_weight'].shape)} do not "
                                  f"fit {n_features} features -> {list(self.rgb_shape)}")

    @property
    def kind(self) -> str:
        return "vae" if self.latent_shape else "rgb"

    @property
    def n_parameters(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))

    def predict_rgb(self, eeg: np.ndarray) -> np.ndarray:
        """``[n, C, T]`` -> ``[n, h, w, 3]`` thumbnails (not clipped)."""
        features = pooled_features(eeg, self.pool)
        flat = features @ self.arrays["rgb_weight"] + self.arrays["rgb_bias"]
        return flat.reshape(len(features), *self.rgb_shape)

    def predict_latent(self, eeg: np.ndarray) -> np.ndarray | None:
        """``[n, C, T]`` -> ``[n, 4, h, w]`` coarse latents, or None without a VAE head."""
        if self.latent_shape is None:
            return None
        features = pooled_features(eeg, self.pool)
        flat = features @ self.arrays["latent_weight"] + self.arrays["latent_bias"]
        return flat.reshape(len(features), *self.latent_shape)

    def __call__(self, eeg: np.ndarray) -> LowLevel:
        """One window -> its low-level picture (and coarse latent)."""
        window = check_window(eeg, self.n_channels, self.n_times)[None]
        latent = self.predict_latent(window)
        return LowLevel(thumbnail_picture(self.predict_rgb(window)[0]),
                        None if latent is None else latent[0])

    def save(self, folder: str | Path) -> Path:
        shape = list(self.latent_shape) if self.latent_shape else list(self.rgb_shape)
        return save_arrays(folder, self.kind, self.config, self.arrays, extra={"shape": shape})

    @classmethod
    def load(cls, folder: str | Path) -> LowLevelHead:
        kind, config = read_meta(folder, KINDS)
        names = {"rgb_weight", "rgb_bias"} | ({"latent_weight", "latent_bias"} if kind == "vae" else set())
        return cls(load_arrays(folder, names), config)

    def __repr__(self) -> str:
        latent = f" + latent {list(self.latent_shape)}" if self.latent_shape else ""
        return f"<LowLevelHead: {self.kind} | thumbnail {list(self.rgb_shape)}{latent}>"
