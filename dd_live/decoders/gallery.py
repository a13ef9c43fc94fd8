"""The images a personal model knows, embedded once: nearest neighbours of a decoded vector.

``gallery/`` holds copies of the images and ``embeddings.npz``: ``names [n]`` (file names in the
folder), ``embeddings [n, dim]`` float32 (the embedder's raw image embeddings), ``embedder``
(its id) and ``center [dim]`` (the mean embedding of the training images). Scores are cosine
similarities after removing ``center`` from both sides: image embeddings share a large common
part, and what is left is what tells images apart. No embedder is needed at run time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dd_live.errors import CheckpointError, ConfigError

EMBEDDINGS_FILE = "embeddings.npz"


def centred_unit(vectors: np.ndarray, center: np.ndarray | None) -> np.ndarray:
    """Rows of ``vectors [n, dim]`` minus ``center [dim]``, scaled to unit length."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if center is not None:
        vectors = vectors - center
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


class Gallery:
    """Embedded images. ``nearest(vector [dim], k) -> [(path, score)]``, best first.

    Args:
        paths: one image file per row of ``embeddings``.
        embeddings: ``[n, dim]`` raw image embeddings.
        embedder_id: the embedder that made them (compared with the decoder's at start).
        center: ``[dim]`` removed from both sides before the cosine, or None.
    """

    def __init__(self, paths: Sequence[Path], embeddings: np.ndarray, embedder_id: str,
                 center: np.ndarray | None = None) -> None:
        self.paths = [Path(p) for p in paths]
        self.embeddings = np.asarray(embeddings, dtype=np.float32)
        if self.embeddings.ndim != 2 or len(self.paths) != len(self.embeddings):
            raise CheckpointError(f"a gallery of {len(self.paths)} images has embeddings shaped "
                                  f"{list(self.embeddings.shape)}")
        self.embedder_id = str(embedder_id)
        self.center = None if center is None else np.asarray(center, dtype=np.float32)
        self._unit = centred_unit(self.embeddings, self.center)  # [n, dim]

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def scores(self, vectors: np.ndarray) -> np.ndarray:
        """``[n_queries, dim]`` (or ``[dim]``) -> cosine scores ``[n_queries, n]`` (or ``[n]``)."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape[-1] != self.dim:
            raise ConfigError(f"a {vectors.shape[-1]}-d vector for a gallery of {self.dim}-d "
                              f"embeddings ({self.embedder_id})")
        return centred_unit(vectors, self.center) @ self._unit.T

    def nearest(self, vector: np.ndarray, k: int = 4) -> list[tuple[Path, float]]:
        """The ``k`` gallery images nearest to ``vector [dim]``: ``[(path, cosine score)]``."""
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        scores = self.scores(np.asarray(vector, dtype=np.float32).reshape(-1))
        if not np.isfinite(scores).all():
            raise ConfigError("the decoded vector has NaN or infinite values; check the EEG window")
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.paths[j], float(scores[j])) for j in order]

    def save(self, folder: str | Path) -> Path:
        """Write ``embeddings.npz`` into ``folder`` (the images must already be there)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        extra = {} if self.center is None else {"center": self.center}
        np.savez(folder / EMBEDDINGS_FILE, names=np.array([p.name for p in self.paths]),
                 embeddings=self.embeddings, embedder=np.array(self.embedder_id), **extra)
        return folder / EMBEDDINGS_FILE

    @classmethod
    def load(cls, folder: str | Path) -> Gallery:
        folder = Path(folder)
        path = folder / EMBEDDINGS_FILE
        if not path.is_file():
            raise CheckpointError(f"{folder} has no {EMBEDDINGS_FILE}; it is not a gallery written by "
                                  "python -m training.decoder")
        try:
            with np.load(path, allow_pickle=False) as data:
                names = [str(n) for n in data["names"]]
                embeddings, embedder = data["embeddings"], str(data["embedder"])
                center = data["center"] if "center" in data.files else None
        except (KeyError, ValueError, OSError) as exc:
            raise CheckpointError(f"{path} is not a gallery file ({exc})") from None
        missing = [n for n in names if not (folder / n).is_file()]
        if missing:
            raise CheckpointError(f"{folder}: {len(missing)} gallery images are gone (e.g. "
                                  f"{missing[0]}); copy the whole model folder")
        return cls([folder / n for n in names], embeddings, embedder, center)

    def __repr__(self) -> str:
        return f"<Gallery: {len(self)} images | {self.embedder_id}>"
