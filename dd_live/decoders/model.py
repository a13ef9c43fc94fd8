"""A personal embedding-route model folder, loaded: window -> embedding, low-level picture, gallery.

Layout (written by ``python -m training.decoder``)::

    dd_live.json         {"route": "embedding", "description", "channels": [names], "sfreq",
                          "n_times", "embedder": {"name", "pretrained", "dim", "id"},
                          "decoder": "ridge" | "conv" | "dreamdiffusion", "generator": {...}}
    decoder/             the kept decoder (config.json + model.safetensors)
    lowlevel/            the low-level head (optional)
    gallery/             embeddings.npz + the images (optional)
    image_embedder.json  the embedder in training's format (optional)
    README.md            the model card
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.decoders.base import EmbedderSpec, read_meta
from dd_live.decoders.gallery import Gallery
from dd_live.decoders.lowlevel import LowLevel, LowLevelHead
from dd_live.errors import CheckpointError

logger = logging.getLogger(__name__)

ROUTE = "embedding"
SETTINGS_FILE = "dd_live.json"
DECODER_FOLDER = "decoder"
LOWLEVEL_FOLDER = "lowlevel"
GALLERY_FOLDER = "gallery"
DECODER_KINDS = ("ridge", "conv", "dreamdiffusion")


def read_settings(folder: str | Path) -> dict[str, Any]:
    """``dd_live.json`` of a model folder ({} when it has none)."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(settings).__name__}")
    return settings


def is_embedding_model(folder: str | Path) -> bool:
    """True when ``folder`` is a model folder whose ``dd_live.json`` says route ``"embedding"``."""
    folder = Path(str(folder)).expanduser()
    if not folder.is_dir():
        return False
    try:
        return read_settings(folder).get("route") == ROUTE
    except CheckpointError:
        return False


def load_decoder(folder: str | Path, runtime: str = "torch", threads: int = 1):
    """The decoder stored in ``folder`` (its ``config.json`` names the kind); a conv or
    DreamDiffusion decoder as its exported graph when ``runtime`` (``[generator] runtime``)
    resolves to ONNX (:func:`~dd_live.decoders.onnx_decoder.decoder_runtime`), with ``threads``
    intra-op threads."""
    from dd_live.decoders.onnx_decoder import OnnxDecoder, decoder_runtime

    kind, _ = read_meta(folder, DECODER_KINDS)
    if decoder_runtime(folder, runtime) == "onnx":
        return OnnxDecoder(folder, threads)
    if kind == "ridge":
        from dd_live.decoders.ridge import RidgeDecoder

        return RidgeDecoder.load(folder)
    if kind == "conv":
        from dd_live.decoders.conv import ConvDecoder

        return ConvDecoder.load(folder)
    from dd_live.decoders.dreamdiffusion import DreamDiffusionDecoder

    return DreamDiffusionDecoder.load(folder)


class EmbeddingModel:
    """A loaded embedding-route model folder (see the module docstring).

    Attributes:
        embedder: the target space (:class:`EmbedderSpec`).
        n_channels, n_times, ch_names: the window it takes (``ch_names`` may be empty).
        description, decoder_name: for the window and the logs.
        decoder: the decoder object (``encode(window) -> [dim]``).
        lowlevel_head: :class:`LowLevelHead` or None; gallery: :class:`Gallery` or None.
    """

    def __init__(self, decoder: Any, embedder: EmbedderSpec, *, lowlevel_head: LowLevelHead | None = None,
                 gallery: Gallery | None = None, ch_names: tuple[str, ...] = (), description: str = "",
                 settings: dict[str, Any] | None = None, folder: Path | None = None) -> None:
        self.decoder, self.embedder = decoder, embedder
        self.lowlevel_head, self.gallery = lowlevel_head, gallery
        self.ch_names, self.description = tuple(ch_names), description
        self.settings, self.folder = dict(settings or {}), folder
        self.decoder_name: str = decoder.kind
        #: what runs the decoder: "onnx" (its exported graph), "torch" or "numpy" (ridge)
        self.runtime: str = getattr(decoder, "runtime", "numpy" if decoder.kind == "ridge" else "torch")
        self.n_channels: int = int(decoder.n_channels)
        self.n_times: int = int(decoder.n_times)
        dim = int(getattr(decoder, "dim", getattr(getattr(decoder, "config", None), "dim", embedder.dim)))
        if dim != embedder.dim:
            raise CheckpointError(f"{folder}: the decoder gives {dim}-d vectors but the folder's "
                                  f"embedder {embedder.id} is {embedder.dim}-d")
        if self.ch_names and len(self.ch_names) != self.n_channels:
            raise CheckpointError(f"{folder}: {SETTINGS_FILE} names {len(self.ch_names)} channels, the "
                                  f"decoder takes {self.n_channels}")
        if lowlevel_head is not None and (lowlevel_head.n_channels, lowlevel_head.n_times) != \
                (self.n_channels, self.n_times):
            raise CheckpointError(f"{folder}: the low-level head takes {lowlevel_head.n_channels} x "
                                  f"{lowlevel_head.n_times}, the decoder {self.n_channels} x {self.n_times}")

    @classmethod
    def load(cls, folder: str | Path, runtime: str = "auto", threads: int = 1) -> EmbeddingModel:
        """Open a folder written by ``python -m training.decoder``.

        Args:
            runtime: ``[generator] runtime`` for a torch decoder: ``"auto"`` runs its ONNX
                export (``decoder/model.onnx``) on ONNX Runtime when the folder has it, torch
                otherwise; ``"onnx"`` insists; ``"torch"`` never uses the export.
            threads: intra-op threads of the ONNX Runtime session.

        Raises:
            CheckpointError: not an embedding-route folder, or parts that do not fit together.
        """
        folder = Path(folder).expanduser()
        settings = read_settings(folder)
        if settings.get("route") != ROUTE:
            raise CheckpointError(f"{folder} is not an embedding-route model folder (its {SETTINGS_FILE} "
                                  f"must say \"route\": \"{ROUTE}\"); train one with python -m "
                                  "training.decoder --data SESSION --output-dir OUT")
        if "embedder" not in settings:
            raise CheckpointError(f"{folder / SETTINGS_FILE} names no embedder")
        embedder = EmbedderSpec.from_dict(settings["embedder"])
        decoder = load_decoder(folder / DECODER_FOLDER, runtime, threads)
        lowlevel = LowLevelHead.load(folder / LOWLEVEL_FOLDER) if (folder / LOWLEVEL_FOLDER).is_dir() else None
        gallery = Gallery.load(folder / GALLERY_FOLDER) if (folder / GALLERY_FOLDER).is_dir() else None
        model = cls(decoder, embedder, lowlevel_head=lowlevel, gallery=gallery,
                    ch_names=tuple(settings.get("channels") or ()),
                    description=str(settings.get("description", "")), settings=settings, folder=folder)
        logger.info("loaded %r", model)
        return model

    def encode(self, eeg: np.ndarray) -> np.ndarray:
        """One window ``[n_channels, n_times]`` float32 -> the decoded embedding ``[dim]`` float32."""
        return np.asarray(self.decoder.encode(eeg), dtype=np.float32)

    def lowlevel(self, eeg: np.ndarray) -> LowLevel | None:
        """One window -> :class:`LowLevel` (picture, coarse latent), or None without a head."""
        return None if self.lowlevel_head is None else self.lowlevel_head(eeg)

    def __repr__(self) -> str:
        parts = [self.decoder_name + (" on ONNX Runtime" if self.runtime == "onnx" else ""),
                 f"{self.n_channels} ch x {self.n_times}", self.embedder.id]
        if self.lowlevel_head is not None:
            parts.append(f"low-level {self.lowlevel_head.kind}")
        if self.gallery is not None:
            parts.append(f"gallery of {len(self.gallery)}")
        return f"<EmbeddingModel: {' | '.join(parts)}>"
