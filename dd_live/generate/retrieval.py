"""Retrieval mode (MindEye-style): show the gallery images nearest to a CLIP-space vector.

Instead of sampling a new image, the EEG's CLIP projection [B, D] is compared with the open_clip
image embeddings of a folder of images; the embeddings are cached in the folder
(``embeddings.npz``, keyed by file name and modification time, and by the CLIP model).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dd_live.errors import ConfigError, GenerationError, require_extra

logger = logging.getLogger(__name__)

CACHE_FILE = "embeddings.npz"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
EMBED_BATCH = 16


@dataclass(frozen=True)
class _Cache:
    model: str
    names: list[str]
    mtimes: np.ndarray  # [N] float64
    embeddings: np.ndarray  # [N, D] float32, unit norm


class ImageRetriever:
    """Nearest images of a folder to CLIP vectors. Build with ``from_folder``."""

    def __init__(self, paths: list[Path], embeddings: np.ndarray, model_id: str, n_embedded: int = 0):
        if embeddings.shape[0] != len(paths):
            raise GenerationError(f"{len(paths)} images but {embeddings.shape[0]} embeddings")
        self.paths, self.embeddings, self.model_id = paths, embeddings, model_id
        self.n_embedded = n_embedded  # images embedded when built (the rest came from the cache)

    @classmethod
    def from_folder(
        cls,
        folder: str | Path,
        *,
        clip_model: str = "ViT-L-14",
        pretrained: str | Path | None = None,
        device: str = "cpu",
    ) -> ImageRetriever:
        """Embed every image of ``folder`` with open_clip ``clip_model`` (weights: ``pretrained``,
        a local file or an open_clip tag), reusing ``folder/embeddings.npz`` where still valid."""
        require_extra("open_clip", "retrieval", "retrieval mode (embedding an image folder)")
        import open_clip  # heavy and only needed here

        folder = Path(folder)
        if not folder.is_dir():
            raise GenerationError(f"image folder {folder} does not exist; pass a folder of {'/'.join(IMAGE_SUFFIXES)} images")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise GenerationError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        model_id = f"{clip_model}|{pretrained}"
        cache = _read_cache(folder / CACHE_FILE, model_id)
        cached = dict(zip(cache.names, zip(cache.mtimes, cache.embeddings))) if cache else {}
        mtimes = np.array([p.stat().st_mtime for p in paths])
        todo = [i for i, p in enumerate(paths) if p.name not in cached or cached[p.name][0] != mtimes[i]]

        rows: dict[int, np.ndarray] = {i: cached[p.name][1] for i, p in enumerate(paths) if i not in todo}
        if todo:
            model, _, preprocess = open_clip.create_model_and_transforms(
                clip_model, pretrained=str(pretrained) if pretrained else None, device=device
            )
            model.eval()
            for start in range(0, len(todo), EMBED_BATCH):
                batch = todo[start:start + EMBED_BATCH]
                pixels = torch.stack([preprocess(Image.open(paths[i]).convert("RGB")) for i in batch])
                with torch.inference_mode():
                    vectors = model.encode_image(pixels.to(device), normalize=True).float().cpu().numpy()
                rows.update(zip(batch, vectors))
            embeddings = np.stack([rows[i] for i in range(len(paths))]).astype(np.float32)
            np.savez(folder / CACHE_FILE, model=np.array(model_id), names=np.array([p.name for p in paths]),
                     mtimes=mtimes, embeddings=embeddings)
        else:
            embeddings = np.stack([rows[i] for i in range(len(paths))]).astype(np.float32)
        logger.info("retriever over %s: %d images, %d embedded now", folder, len(paths), len(todo))
        return cls(paths, embeddings, model_id, n_embedded=len(todo))

    def query(self, clip_vec: np.ndarray | torch.Tensor, k: int = 4) -> list[list[tuple[Path, float]]]:
        """For each row of clip_vec [B, D]: the ``k`` nearest images as (path, cosine similarity)."""
        if isinstance(clip_vec, torch.Tensor):
            clip_vec = clip_vec.detach().float().cpu().numpy()
        clip_vec = np.asarray(clip_vec, dtype=np.float32)
        dim = self.embeddings.shape[1]
        if clip_vec.ndim != 2 or clip_vec.shape[1] != dim:
            raise GenerationError(f"clip_vec must be [B, {dim}] for {self.model_id}, got {list(clip_vec.shape)}")
        if not np.isfinite(clip_vec).all():
            raise GenerationError("clip_vec has NaN or infinite values; check the EEG window and the encoder")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        queries = clip_vec / np.maximum(np.linalg.norm(clip_vec, axis=1, keepdims=True), 1e-12)
        scores = queries @ self.embeddings.T  # [B, N]
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(self.paths[j], float(scores[b, j])) for j in row] for b, row in enumerate(order)]

    def __repr__(self) -> str:
        folder = self.paths[0].parent if self.paths else "?"
        return f"<ImageRetriever: {len(self.paths)} images in {folder} | {self.model_id}>"


def _read_cache(path: Path, model_id: str) -> _Cache | None:
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        cache = _Cache(str(data["model"]), list(data["names"]), data["mtimes"], data["embeddings"])
    if cache.model != model_id:
        logger.info("embedding cache %s was made with %s, not %s: recomputing", path, cache.model, model_id)
        return None
    return cache
