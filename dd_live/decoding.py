"""From one preprocessed EEG window to images: encoder -> conditioning -> sampler (or retrieval).

:class:`EEGDecoder` holds an :class:`~dd_live.model.EEGConditioner` and an
:class:`~dd_live.generate.ImageGenerator` (or an :class:`~dd_live.generate.ImageRetriever`)
and times each stage. It knows the montage the model wants (``n_channels`` x ``n_times``),
so the session can map and resample windows to it.

A dd-live model folder holds ``conditioner/`` (our checkpoint format) beside the diffusers
``unet/``, ``vae/`` and ``scheduler/`` folders; ``"tiny"`` builds random tiny models.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.assets import DEMO_MODEL, demo_model_dir
from dd_live.config import GeneratorConfig
from dd_live.errors import CheckpointError, GenerationError

logger = logging.getLogger(__name__)

TINY_MODEL = "tiny"
CONDITIONER_FOLDER = "conditioner"
MODEL_SETTINGS_FILE = "dd_live.json"  # optional: {"description": ..., "generator": {...}}


@dataclass
class DecodedImages:
    """What one window turned into.

    Attributes:
        images: PIL images (generated, or the nearest gallery images in retrieval mode).
        seeds: one seed per image (empty in retrieval mode).
        timings: seconds per stage: ``encode``, ``sample`` (UNet steps), ``decode`` (VAE), ``total``.
        clip: the window's CLIP-space vector ``[clip_dim]``.
        matches: retrieval mode: ``(path, score)`` per image.
    """

    images: list[Any]
    seeds: list[int]
    timings: dict[str, float]
    clip: np.ndarray | None = None
    matches: list[tuple[str, float]] = field(default_factory=list)


class EEGDecoder:
    """Turns an EEG window ``[n_channels, n_times]`` (float32, standardised) into images."""

    def __init__(self, conditioner: Any, generator: Any = None, retriever: Any = None,
                 *, description: str = "") -> None:
        if generator is None and retriever is None:
            raise GenerationError("EEGDecoder needs an image generator or a retriever")
        self.conditioner = conditioner.eval()
        self.generator = generator
        self.retriever = retriever
        enc = conditioner.config.encoder
        self.n_channels: int = enc.n_channels
        self.n_times: int = enc.n_times
        self.description = description or getattr(generator, "description", "")

    def __repr__(self) -> str:
        mode = "generate" if self.generator is not None else "retrieve"
        return f"<EEGDecoder: {mode} | {self.n_channels} ch x {self.n_times} | {self.description}>"

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> EEGDecoder:
        """Build the models ``config.model`` names (``"tiny"``, a dd-live model folder, ...)."""
        import torch

        from dd_live.generate import GeneratorSettings, ImageGenerator, ImageRetriever

        if config.threads:
            torch.set_num_threads(config.threads)
        from dd_live.model import EEGConditioner, get_preset, load

        settings = dict(
            scheduler=config.scheduler,
            num_inference_steps=config.steps,
            guidance_scale=config.guidance_scale,
            device=config.device,
            dtype=config.dtype,
            attention=config.attention,
            tiny_vae=config.tiny_vae,
            compile=config.compile,
            image_size=config.image_size,
        )
        if config.model == TINY_MODEL:
            torch.manual_seed(config.seed)
            conditioner = EEGConditioner(get_preset("tiny", kind="conditioner"))
            generator = ImageGenerator.tiny(seed=config.seed, settings=GeneratorSettings(
                scheduler=config.scheduler, num_inference_steps=config.steps,
                guidance_scale=config.guidance_scale, image_size=config.image_size,
                tiny_decoder=config.tiny_vae is not None))
            description = "tiny random models: images carry no meaning"
        else:
            folder = demo_model_dir() if config.model == DEMO_MODEL else Path(config.model).expanduser()
            if not (folder / CONDITIONER_FOLDER).is_dir():
                raise CheckpointError(
                    f"{folder} is not a dd-live model folder: it has no '{CONDITIONER_FOLDER}/' "
                    "subfolder with the EEG encoder. Train one with `python -m training.finetune` "
                    "or convert a DreamDiffusion checkpoint with `dd-live convert SRC DST`; "
                    "use --model tiny for random tiny models."
                )
            conditioner = load(folder / CONDITIONER_FOLDER)
            generator = ImageGenerator.from_pretrained(
                str(folder), null_context=_null_context(conditioner), **settings)
            description = read_model_settings(folder).get(
                "description", getattr(generator, "description", str(folder)))
        retriever = None
        if config.mode == "retrieve":
            retriever = ImageRetriever.from_folder(config.gallery)
            generator = None
        return cls(conditioner, generator, retriever, description=description)

    def __call__(self, eeg: np.ndarray, seed: int) -> DecodedImages:
        """Decode one window.

        Args:
            eeg: ``[n_channels, n_times]`` float32, already mapped to the model's montage.
            seed: sampler seed (ignored in retrieval mode).
        """
        import torch

        if eeg.shape != (self.n_channels, self.n_times):
            raise GenerationError(
                f"window shaped {eeg.shape} but the model wants ({self.n_channels}, "
                f"{self.n_times}); map and resample it first (WindowPreprocessor)")
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.conditioner(torch.from_numpy(np.ascontiguousarray(eeg))[None].float())
        context, clip = out["context"], out["clip"]
        t_encode = time.perf_counter() - t0
        clip_vec = clip[0].float().cpu().numpy()
        if self.retriever is not None:
            matches = self.retriever.query(clip_vec[None], k=4)[0]
            from PIL import Image

            images = [Image.open(path).convert("RGB") for path, _ in matches]
            total = time.perf_counter() - t0
            return DecodedImages(images, [], {"encode": t_encode, "total": total},
                                 clip_vec, [(str(p), float(s)) for p, s in matches])
        result = self.generator(context, seed=seed)
        timings = {"encode": t_encode, **dict(result.timings)}
        timings["sample"] = timings.pop("unet", 0.0)  # the denoising loop, under its stage name
        timings["total"] = time.perf_counter() - t0
        return DecodedImages(list(result.images), list(result.seeds), timings, clip_vec)

    def warmup(self) -> None:
        """Run one throw-away window, so the first real image is not slowed by one-time set-up
        (kernel selection, memory allocation, lazy pipeline creation)."""
        t0 = time.perf_counter()
        self(np.zeros((self.n_channels, self.n_times), np.float32), seed=0)
        logger.info("model warmed up in %.2f s", time.perf_counter() - t0)

    def interrupt(self) -> None:
        """Ask a running sampler to stop after its current step."""
        if self.generator is not None:
            self.generator.interrupt()


def read_model_settings(folder: str | Path) -> dict[str, Any]:
    """The optional ``dd_live.json`` of a model folder: ``{"description": str, "generator":
    {setting: value}}`` with the settings it is meant to run with (e.g. its step count)."""
    path = Path(folder) / MODEL_SETTINGS_FILE
    if not path.is_file():
        return {}
    try:
        settings = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(settings, dict):
        raise CheckpointError(f"{path} must hold a JSON object, got {type(settings).__name__}")
    return settings


def write_model_settings(folder: str | Path, description: str, generator: dict[str, Any]) -> Path:
    """Write ``dd_live.json`` (see :func:`read_model_settings`) into a model folder."""
    path = Path(folder) / MODEL_SETTINGS_FILE
    path.write_text(json.dumps({"description": description, "generator": generator}, indent=1)
                    + "\n", encoding="utf-8")
    return path


def _null_context(conditioner: Any) -> Any:
    return getattr(conditioner, "null_context", None)
