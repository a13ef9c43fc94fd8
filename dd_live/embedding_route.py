"""The embedding route live: EEG window -> image-embedding vector -> pictures.

A personal model folder made by ``python -m training.decoder`` (``dd_live.json`` route
``"embedding"``) holds a small decoder into a frozen image-embedding space, a low-level head
and a gallery of embedded images (:mod:`dd_live.decoders`). :class:`EmbeddingDecoder` turns one
window into what the window shows side by side:

1. the decoded embedding ``[dim]`` (stage ``decoder``: window -> vector);
2. the low-level picture (stage ``lowlevel``; a coarse thumbnail of the seen image), when the
   folder has a low-level head;
3. the nearest gallery images with their scores (stage ``retrieve``);
4. the picture itself, from the first renderer at hand: a stock Stable Diffusion 1.5 with
   IP-Adapter weights (``[generator] base`` + ``ip_adapter``, ``--base`` / ``--ip-adapter``;
   ``img2img_strength`` > 0 starts it from the low-level latent, or from the low-level picture
   when the head decodes no latent), else the nearest gallery
   image (``"retrieval"``; the next ones are in the matches), else the low-level picture (``"lowlevel"``). Without any SD weight
   at hand the folder still shows and records images.

One space, checked: the decoder's target space, the gallery's embeddings and the renderer's
expected embedder must be the same embedder; :func:`check_one_space` refuses a mismatch at
start with one line naming both.

It has :class:`~dd_live.decoding.EEGDecoder`'s interface (``n_channels``, ``n_times``,
``ch_names``, ``description``, ``__call__``, ``warmup``, ``interrupt``), so the session, the
recorder and the window use it unchanged.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.decoding import DecodedImages, set_torch_threads
from dd_live.errors import ConfigError, GenerationError

logger = logging.getLogger(__name__)

NEAREST_K = 4  # gallery images shown (and recorded) beside each picture
LOWLEVEL_SIZE = 256  # px: the low-level picture is scaled to this when it is the picture itself
RENDERERS = ("ip-adapter", "retrieval", "lowlevel")


def is_embedding_folder(model: str | Path) -> bool:
    """True when ``model`` is a folder whose ``dd_live.json`` says route ``"embedding"``."""
    from dd_live.decoders import is_embedding_model

    return is_embedding_model(model)


def check_one_space(model_id: str, gallery_id: str | None, renderer_id: str | None, *,
                    folder: str | Path = "the model folder", model_dim: int | None = None,
                    renderer_dim: int | None = None) -> None:
    """Refuse two embedders where one is needed: the decoder's target space ``model_id``, the
    gallery's ``gallery_id`` and the renderer's ``renderer_id`` (None: that part is absent).

    Raises:
        ConfigError: one line naming both embedders and what to do.
    """
    if gallery_id is not None and gallery_id != model_id:
        raise ConfigError(
            f"{folder}: its decoder decodes into {model_id} but its gallery was embedded with "
            f"{gallery_id}: one space is needed; train the folder again (python -m "
            "training.decoder) so both use one embedder")
    if renderer_id is not None and renderer_id != model_id:
        raise ConfigError(
            f"{folder}: its decoder decodes into {model_id} but the IP-Adapter renderer expects "
            f"{renderer_id} ([generator] ip_adapter_embedder): use IP-Adapter weights made for "
            f"{model_id}, or train a decoder for {renderer_id} (python -m training.decoder "
            "--embedder ...)")
    if renderer_dim is not None and model_dim is not None and renderer_dim != model_dim:
        raise ConfigError(
            f"{folder}: its decoder gives {model_dim}-d vectors ({model_id}) but the IP-Adapter "
            f"weights take {renderer_dim}-d image embeddings: use IP-Adapter weights made for "
            f"{model_id}")


def torch_imports(config: Any) -> tuple[str, ...]:
    """The torch-side modules the embedding route needs for ``config`` (a personal model
    folder): ``("torch", "diffusers")`` for the IP-Adapter renderer, ``("torch",)`` for a torch
    decoder run on torch (no ONNX export, or ``[generator] runtime = "torch"``), else none.

    Raises:
        CheckpointError / ConfigError: the folder's decoder is unreadable, or ``runtime =
            "onnx"`` without its export.
    """
    from dd_live.decoders import DECODER_FOLDER
    from dd_live.decoders.onnx_decoder import decoder_runtime

    if getattr(config, "base", None) and getattr(config, "ip_adapter", None):
        return ("torch", "diffusers")
    folder = Path(config.model).expanduser() / DECODER_FOLDER
    return ("torch",) if decoder_runtime(folder, getattr(config, "runtime", "auto")) == "torch" else ()


def gallery_embedder_id(gallery: Any) -> str | None:
    """The embedder id a model folder's gallery was embedded with, or None without a gallery."""
    if gallery is None:
        return None
    value = getattr(gallery, "embedder_id", None)
    return None if value is None else str(value)


class EmbeddingDecoder:
    """Turns an EEG window ``[n_channels, n_times]`` (float32, standardised) into pictures by
    the embedding route (see the module docstring).

    Args:
        model: a loaded :class:`dd_live.decoders.EmbeddingModel`.
        renderer: an :class:`~dd_live.generate.ip_adapter.IPAdapterRenderer`, or None
            (retrieval and the low-level picture only).
        strength: ``img2img_strength``: 0 renders from the embedding alone; 0 < s <= 1 starts
            the renderer from the low-level latent (or picture), keeping that much of it.
        folder: where the model came from (for messages).
        k: gallery images per window.
    """

    def __init__(self, model: Any, renderer: Any = None, *, strength: float = 0.0,
                 folder: str | Path = "", k: int = NEAREST_K) -> None:
        self.model = model
        self.renderer = renderer
        self.strength = float(strength)
        self.folder = str(folder)
        self.k = int(k)
        self.gallery = getattr(model, "gallery", None)
        check_one_space(model.embedder.id, gallery_embedder_id(self.gallery),
                        getattr(renderer, "embedder_id", None) if renderer is not None else None,
                        folder=self.folder or "the model folder", model_dim=model.embedder.dim,
                        renderer_dim=getattr(renderer, "image_embed_dim", None))
        self.n_channels: int = int(model.n_channels)
        self.n_times: int = int(model.n_times)
        names = getattr(model, "ch_names", None)
        self.ch_names: tuple[str, ...] | None = tuple(names) if names else None
        self.has_gallery = self.gallery is not None and len(self.gallery) > 0
        # whether the folder has a low-level head, and whether it decodes a VAE latent (the
        # img2img start) or only a thumbnail
        head = getattr(model, "lowlevel_head", None)
        self.has_lowlevel = head is not None
        self.has_latent = head is not None and getattr(head, "latent_shape", None) is not None
        if renderer is not None:
            self.renderer_name = "ip-adapter"
        elif self.has_gallery:
            self.renderer_name = "retrieval"
        else:
            self.renderer_name = "lowlevel"
        if self.renderer_name == "lowlevel" and not self.has_lowlevel:
            raise ConfigError(f"{self.folder}: the model has neither a gallery nor a low-level "
                              "head, and no IP-Adapter renderer is set: nothing to show; set "
                              "[generator] base and ip_adapter (--base, --ip-adapter)")
        spent = f", img2img strength {self.strength:g}" if renderer is not None and \
            self.strength > 0 else ""
        about = getattr(model, "description", "") or (
            f"personal model: {getattr(model, 'decoder_name', 'a')} decoder into "
            f"{model.embedder.id}")
        self.description = f"{about} · pictures by {self.renderer_name}{spent}"
        if renderer is not None and self.strength > 0 and not self.has_lowlevel:
            logger.warning("img2img_strength %.2f has no low-level picture to start from (the "
                           "model has no low-level head): rendering from the embedding alone",
                           self.strength)
        elif renderer is not None and self.strength > 0 and not self.has_latent:
            logger.info("img2img starts from the low-level picture encoded by the VAE (the "
                        "model's low-level head decodes no latent)")

    def __repr__(self) -> str:
        return (f"<EmbeddingDecoder: {self.renderer_name} | {self.n_channels} ch x "
                f"{self.n_times} | {self.model.embedder.id}>")

    @classmethod
    def from_config(cls, config: Any) -> EmbeddingDecoder:
        """Load the folder ``config.model`` names and, when ``[generator] base`` and
        ``ip_adapter`` are both set, the IP-Adapter renderer."""
        from dd_live.config import resolve_threads
        from dd_live.decoders import EmbeddingModel

        folder = Path(config.model).expanduser()
        runtime = getattr(config, "runtime", "auto")
        base, ip_adapter = getattr(config, "base", None), getattr(config, "ip_adapter", None)
        if torch_imports(config):  # torch only where something needs it
            set_torch_threads(config.threads)
        model = EmbeddingModel.load(folder, runtime, resolve_threads(config.threads))
        if bool(base) != bool(ip_adapter):
            missing = "ip_adapter (--ip-adapter)" if base else "base (--base)"
            raise ConfigError(f"rendering with IP-Adapter needs both [generator] base and "
                              f"ip_adapter: set {missing} too, or neither (retrieval and the "
                              "low-level picture)")
        renderer = None
        if base and ip_adapter:
            from dd_live.generate.ip_adapter import DEFAULT_EMBEDDER_ID, IPAdapterRenderer

            # one space, checked before any SD weight is read (the widths once they are)
            check_one_space(model.embedder.id, gallery_embedder_id(model.gallery),
                            getattr(config, "ip_adapter_embedder", None) or DEFAULT_EMBEDDER_ID,
                            folder=folder)
            renderer = IPAdapterRenderer.from_config(config)
        return cls(model, renderer, strength=getattr(config, "img2img_strength", 0.0),
                   folder=folder)

    def __call__(self, eeg: np.ndarray, seed: int) -> DecodedImages:
        """Decode one window.

        Args:
            eeg: ``[n_channels, n_times]`` float32, already mapped to the model's montage.
            seed: the renderer's seed (unused by retrieval and the low-level picture).
        """
        if eeg.shape != (self.n_channels, self.n_times):
            raise GenerationError(
                f"window shaped {eeg.shape} but the model wants ({self.n_channels}, "
                f"{self.n_times}); map and resample it first (WindowPreprocessor)")
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        embedding = np.asarray(self.model.encode(eeg), dtype=np.float32)  # [dim]
        t1 = time.perf_counter()
        timings["decoder"] = t1 - t0
        low = self.model.lowlevel(eeg)  # LowLevel(picture, latent [4, h, w] | None) or None
        t2 = time.perf_counter()
        if low is not None:
            timings["lowlevel"] = t2 - t1
        matches: list[tuple[str, float]] = []
        if self.has_gallery:
            matches = [(str(path), float(score))
                       for path, score in self.gallery.nearest(embedding, self.k)]
            timings["retrieve"] = time.perf_counter() - t2
        picture = None if low is None else low.picture
        seeds: list[int] = []
        if self.renderer is not None:
            # img2img from the decoded coarse latent, else from the low-level picture itself
            latent = getattr(low, "latent", None) if self.strength > 0 else None
            start = picture if self.strength > 0 and latent is None else None
            result = self.renderer(embedding, seed, init_latent=latent, init_image=start,
                                   strength=self.strength if low is not None else 0.0)
            if getattr(result, "interrupted", False):
                return DecodedImages([], list(result.seeds), dict(result.timings), embedding,
                                     matches, interrupted=True, embedding=embedding,
                                     lowlevel=picture, renderer=self.renderer_name)
            render_timings = dict(result.timings)
            render_timings.pop("total", None)
            if "unet" in render_timings:  # the denoising loop, under its stage name
                render_timings["sample"] = render_timings.pop("unet")
            timings.update(render_timings)
            images, seeds = list(result.images), list(result.seeds)
        elif self.renderer_name == "retrieval":
            from PIL import Image

            with Image.open(matches[0][0]) as image:  # the nearest; the others in matches
                images = [image.convert("RGB")]
        else:
            from PIL import Image

            images = [picture.resize((LOWLEVEL_SIZE, LOWLEVEL_SIZE), Image.Resampling.BICUBIC)]
        timings["total"] = time.perf_counter() - t0
        return DecodedImages(images, seeds, timings, embedding, matches, embedding=embedding,
                             lowlevel=picture, renderer=self.renderer_name)

    def warmup(self, progress: Any = None) -> None:
        """Run a throw-away window (one-time set-up off the first real image)."""
        t0 = time.perf_counter()
        if self.renderer is not None and hasattr(self.renderer, "prepare"):
            if progress is not None:
                progress("preparing the IP-Adapter renderer")
            self.renderer.prepare()
        if progress is not None:
            progress("warming up the model")
        self(np.zeros((self.n_channels, self.n_times), np.float32), seed=0)
        logger.info("embedding-route model warmed up in %.2f s", time.perf_counter() - t0)

    def interrupt(self) -> None:
        """Stop a running renderer before its next UNet step (until :meth:`clear_interrupt`)."""
        if self.renderer is not None:
            self.renderer.interrupt()

    def clear_interrupt(self) -> None:
        if self.renderer is not None and hasattr(self.renderer, "clear_interrupt"):
            self.renderer.clear_interrupt()
