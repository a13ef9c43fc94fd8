"""The demo model's measured figures, shared by the build (model card) and the tests.

- :func:`embedding_accuracy`: nearest class centroid on the encoder's mean token, centroids
  from one set of streams, accuracy on streams of other seeds;
- :func:`image_accuracy`: the state classifier's verdict on images generated from held-out
  windows through the app's :class:`~dd_live.decoding.EEGDecoder`;
- :func:`images_per_second`: end-to-end decoding speed (encode + sample + decode);
- :func:`state_grid`: images side by side, one row per state.
"""

import time

import numpy as np
import torch
from PIL import Image

from dd_live.model import EEGConditioner


@torch.inference_mode()
def embeddings(conditioner: EEGConditioner, eeg: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """``[N, embed_dim]``: the encoder's tokens of each window ``eeg [N, C, T]``, averaged."""
    return np.concatenate([
        conditioner.encoder(torch.from_numpy(eeg[i : i + batch_size])).mean(dim=1).numpy()
        for i in range(0, len(eeg), batch_size)
    ])


def embedding_accuracy(conditioner: EEGConditioner, fit: tuple[np.ndarray, np.ndarray],
                       test: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of ``test`` windows whose embedding is nearest (cosine) to their own state's centroid.

    ``fit`` / ``test``: ``(eeg [N, C, T], labels [N])``; centroids come from ``fit`` only.
    """
    fit_x, test_x = embeddings(conditioner, fit[0]), embeddings(conditioner, test[0])
    centroids = np.stack([fit_x[fit[1] == k].mean(0) for k in range(int(fit[1].max()) + 1)])  # [K, D]
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    test_x = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    return float(((test_x @ centroids.T).argmax(1) == test[1]).mean())


def generate(decoder, eeg: np.ndarray, seed: int = 0) -> list[Image.Image]:
    """One image per window ``eeg [N, C, T]`` (window ``i`` sampled with seed ``seed + i``)."""
    return [decoder(window, seed=seed + i).images[0] for i, window in enumerate(eeg)]


def image_accuracy(classifier, images: list[Image.Image], labels: np.ndarray) -> float:
    """Share of ``images`` the state classifier names as their intended state ``labels``."""
    return float((classifier.predict(images) == labels).mean())


def images_per_second(decoder, eeg: np.ndarray, n_images: int = 20) -> float:
    """Images per second through ``decoder`` (after one warm-up call), one window at a time."""
    decoder(eeg[0], seed=0)
    start = time.perf_counter()
    for i in range(n_images):
        decoder(eeg[i % len(eeg)], seed=i)
    return n_images / (time.perf_counter() - start)


def state_grid(images: list[Image.Image], labels: np.ndarray, per_row: int) -> Image.Image:
    """A grid with one row per state: the first ``per_row`` images of each label."""
    size = images[0].size
    n_states = int(labels.max()) + 1
    grid = Image.new("RGB", (size[0] * per_row, size[1] * n_states), "white")
    for state in range(n_states):
        for column, index in enumerate(np.flatnonzero(labels == state)[:per_row]):
            grid.paste(images[index], (column * size[0], state * size[1]))
    return grid
