"""Retrieval mode (MindEye-style): show the gallery images nearest to a CLIP-space vector.

Instead of sampling a new image, the EEG's CLIP projection [B, D] is compared with the open_clip
image embeddings of a folder of images; the embeddings are cached in the folder
(``embeddings.npz``, keyed by file name and modification time, and by the CLIP model).

The embedder must have real weights (``pretrained``: an open_clip tag or a local file): with
random weights the gallery would be ranked by noise, so :meth:`ImageRetriever.from_folder`
refuses. A personal model folder (``training.finetune --data SESSION``) names the embedder its
image-embedding head was trained against in ``image_embedder.json`` (with the weights file and
the mean embedding its targets were centred on); :func:`retrieval_embedder` reads it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dd_live.errors import ConfigError, GenerationError, require_extra
from dd_live.model.safe_load import check_safetensors

logger = logging.getLogger(__name__)

CACHE_FILE = "embeddings.npz"
EMBEDDER_FILE = "image_embedder.json"  # in a personal model folder (written by training.finetune)
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

    def __init__(self, paths: list[Path], embeddings: np.ndarray, model_id: str, n_embedded: int = 0,
                 center: np.ndarray | None = None):
        if embeddings.shape[0] != len(paths):
            raise GenerationError(f"{len(paths)} images but {embeddings.shape[0]} embeddings")
        if center is not None:  # the centring a personal model's targets had in training
            embeddings = embeddings - np.asarray(center, dtype=np.float32)[None, :]
            embeddings = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
            embeddings = embeddings.astype(np.float32)
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
        model_config: dict | None = None,
        center: np.ndarray | None = None,
    ) -> ImageRetriever:
        """Embed every image of ``folder`` with open_clip ``clip_model`` (weights: ``pretrained``,
        a local file or an open_clip tag), reusing ``folder/embeddings.npz`` where still valid.

        ``model_config`` registers ``clip_model`` with open_clip first (a model config dict);
        ``center`` is subtracted from every embedding (then normalised again).

        Raises:
            ConfigError: no real weights (``pretrained`` unset, a missing file, an unknown tag).
        """
        require_extra("open_clip", "retrieval", "retrieval mode (embedding an image folder)")
        check_weights(clip_model, pretrained)
        import open_clip  # heavy and only needed here

        if model_config is not None and clip_model not in open_clip.list_models():
            import json
            import tempfile

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / f"{clip_model}.json"
                path.write_text(json.dumps(model_config))
                open_clip.add_model_config(path)
        folder = Path(folder)
        if not folder.is_dir():
            raise GenerationError(f"image folder {folder} does not exist; pass a folder of {'/'.join(IMAGE_SUFFIXES)} images")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise GenerationError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        model_id = f"{clip_model}|{pretrained}"
        weights = Path(str(pretrained)).expanduser() if pretrained else None
        if weights is not None and weights.is_file():  # a retrained file at the same path
            stat = weights.stat()
            model_id += f"|{stat.st_size}|{stat.st_mtime_ns}"
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
        return cls(paths, embeddings, model_id, n_embedded=len(todo), center=center)

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


def check_weights(clip_model: str, pretrained: str | Path | None) -> None:
    """Refuse an image embedder without real weights (a tag open_clip knows, or a file)."""
    fix = ("set [generator] clip_pretrained to an open_clip tag (e.g. 'openai' for ViT-L-14) or "
           "a local weights file, or use a personal model folder that names its embedder")
    if pretrained is None or not str(pretrained).strip():
        raise ConfigError(f"retrieval needs real image-embedding weights: {clip_model!r} has none "
                          f"(random weights would rank the gallery by noise); {fix}")
    text = str(pretrained)
    if Path(text).expanduser().is_file():
        check_safetensors(Path(text).expanduser())  # a garbled weights file: CheckpointError
        return
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(clip_model)
    if text not in tags:
        known = f" (known tags for {clip_model}: {', '.join(tags)})" if tags else ""
        raise ConfigError(f"retrieval: clip_pretrained {text!r} is neither a file nor an open_clip "
                          f"tag of {clip_model!r}{known}; {fix}")


def retrieval_embedder(config, model_folder: str | Path | None = None) -> dict:
    """``from_folder`` keyword arguments from ``[generator]`` settings (``clip_model``,
    ``clip_pretrained``), or, when ``clip_pretrained`` is unset, from the
    ``image_embedder.json`` of a personal model folder."""
    import json

    path = Path(model_folder) / EMBEDDER_FILE if model_folder is not None else None
    if config.clip_pretrained is None and path is not None and path.is_file():
        entry = json.loads(path.read_text(encoding="utf-8"))
        pretrained = entry.get("clip_pretrained")
        if pretrained and (path.parent / pretrained).is_file():
            pretrained = str(path.parent / pretrained)
        mean = entry.get("embedding_mean")
        return {"clip_model": entry["clip_model"], "pretrained": pretrained,
                "model_config": entry.get("clip_config"),
                "center": None if mean is None else np.asarray(mean, dtype=np.float32)}
    return {"clip_model": config.clip_model, "pretrained": config.clip_pretrained}
