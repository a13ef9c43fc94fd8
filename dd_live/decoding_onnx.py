"""Which runtime decodes windows (``[generator] runtime``), and the EEG decoder on ONNX Runtime.

``runtime = "auto"`` (the default) runs a model folder that carries an ONNX export
(graphs beside its torch weights and ``onnx.json``, made by ``python -m training.demo.export_onnx FOLDER``) on ONNX Runtime's CPU
provider when nothing in the settings needs torch, and on torch otherwise (CUDA, another
sampler, guidance, a tiny decoder, retrieval, ...); ``"onnx"`` insists (an impossible request
is a ConfigError naming why); ``"torch"`` never uses the export. The ONNX path imports neither
torch nor diffusers.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.assets import DEMO_MODEL, demo_model_dir
from dd_live.config import GeneratorConfig, resolve_threads
from dd_live.decoding import (
    CONDITIONER_FOLDER,
    TINY_MODEL,
    DecodedImages,
    EEGDecoder,
    read_model_settings,
)
from dd_live.errors import ConfigError, GenerationError
from dd_live.generate.onnx_runtime import (
    CONDITIONER_FILE,
    RUNTIME_LABEL,
    SCHEDULER,
    OnnxConditioner,
    OnnxImageGenerator,
    export_command,
    missing_onnx_files,
    read_export,
    scheduler_problem,
)

logger = logging.getLogger(__name__)

#: the modules the torch path imports before its first image (named in the window's progress)
TORCH_IMPORTS = (("torch", "importing torch"), ("diffusers", "importing the image generator "
                                                             "(diffusers)"))


def model_folder(config: GeneratorConfig) -> Path | None:
    """The model folder ``config.model`` names, or None (tiny models, a single file, none)."""
    if config.model == DEMO_MODEL:
        return demo_model_dir()
    if config.model in (TINY_MODEL, "none"):
        return None
    path = Path(config.model).expanduser()
    return path if (path / CONDITIONER_FOLDER).is_dir() else None


def _cuda_present() -> bool:
    """An NVIDIA driver is loaded and not hidden (checked without importing torch)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return False
    return Path("/proc/driver/nvidia/version").exists()


def onnx_problem(config: GeneratorConfig, folder: Path | None) -> str | None:
    """Why the ONNX runtime cannot run ``config`` (one phrase), or None when it can."""
    if folder is None:
        return f"the model {config.model!r} is not a dd-live model folder"
    missing = missing_onnx_files(folder)
    if missing:
        return (f"{folder} has no complete ONNX export (it lacks {', '.join(missing)}); export "
                f"it with `{export_command(folder)}` (needs the train extra's onnx and "
                "onnxscript)")
    device = str(config.device)
    checks = [
        (device in ("auto", "cpu"), f"device = {device!r} (the ONNX runtime runs on the CPU)"),
        (config.dtype in ("auto", "float32"), f"dtype = {config.dtype!r} (it computes in float32)"),
        (config.mode == "generate" and not config.gallery, "retrieval (mode / gallery)"),
        (config.scheduler == SCHEDULER, f"scheduler = {config.scheduler!r} (it implements "
                                        f"{SCHEDULER!r} only)"),
        (config.guidance_scale <= 1.0, f"guidance_scale = {config.guidance_scale:g} (it runs "
                                       "guidance <= 1)"),
        (not config.tiny_decoder and config.tiny_vae is None, "the tiny decoder"),
        (config.unet is None and config.lora is None, "a replacement UNet or a LoRA"),
        (not config.compile, "compile = true"),
        (not (folder / "time_cond").is_dir(), "time conditioning (not exported)"),
    ]
    for ok, what in checks:
        if not ok:
            return f"the settings ask for {what}"
    record = read_export(folder)
    if config.image_size not in (None, record.get("image_size")):
        return f"image_size = {config.image_size} (the export is fixed at {record.get('image_size')})"
    return scheduler_problem(_scheduler_config(folder))


def choose_runtime(config: GeneratorConfig) -> str:
    """``"onnx"`` or ``"torch"`` for ``config`` (``[generator] runtime``; see the module)."""
    if config.runtime == "torch":
        return "torch"
    problem = onnx_problem(config, model_folder(config))
    if config.runtime == "onnx":
        if problem is not None:
            raise ConfigError(f'[generator] runtime = "onnx" cannot run: {problem}; or set '
                              '[generator] runtime = "torch"')
        return "onnx"
    if problem is not None:
        logger.info("runtime auto: torch (%s)", problem)
        return "torch"
    if config.device == "auto" and _cuda_present():
        logger.info("runtime auto: torch (a CUDA driver is present)")
        return "torch"
    return "onnx"


def generator_imports(config: GeneratorConfig) -> tuple[tuple[str, str], ...]:
    """The slow imports the decoder for ``config`` needs, as (module, progress line)."""
    try:
        return () if choose_runtime(config) == "onnx" else TORCH_IMPORTS
    except ConfigError:
        return ()  # the decoder's own construction says why


def _scheduler_config(folder: Path) -> dict[str, Any]:
    path = folder / "scheduler" / "scheduler_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path} is not readable: {exc}") from None


class OnnxEEGDecoder(EEGDecoder):
    """:class:`~dd_live.decoding.EEGDecoder` on ONNX Runtime: window -> conditioner graph ->
    numpy DPM-Solver++ loop over the UNet graph -> decoder graph -> 8-bit images."""

    runtime = "onnx"

    def __init__(self, conditioner: OnnxConditioner, generator: OnnxImageGenerator, *,
                 description: str = "", ch_names: Any = None) -> None:
        self.conditioner = conditioner
        self.generator = generator
        self.retriever = None
        self.n_channels, self.n_times = conditioner.n_channels, conditioner.n_times
        self.description = description or generator.description
        self.ch_names = tuple(ch_names) if ch_names else None
        self.device, self.dtype = "cpu", "float32"

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> OnnxEEGDecoder:
        folder = model_folder(config)
        problem = onnx_problem(config, folder)
        if problem is not None:
            raise ConfigError(f"the ONNX runtime cannot run: {problem}")
        threads = resolve_threads(config.threads)
        record = read_export(folder)
        _, n_channels, n_times = record["eeg"]
        conditioner = OnnxConditioner(folder / CONDITIONER_FILE, n_channels, n_times,
                                      threads)
        generator = OnnxImageGenerator(folder, _scheduler_config(folder),
                                       num_inference_steps=config.steps, threads=threads,
                                       source=str(folder))
        settings = read_model_settings(folder)
        description = f"{settings.get('description', str(folder))} [{RUNTIME_LABEL}]"
        logger.info("ONNX runtime: %r, %d thread(s)", generator, threads)
        return cls(conditioner, generator, description=description,
                   ch_names=settings.get("channels"))

    def __repr__(self) -> str:
        return (f"<OnnxEEGDecoder: generate | {self.n_channels} ch x {self.n_times} | "
                f"{self.description}>")

    def __call__(self, eeg: np.ndarray, seed: int) -> DecodedImages:
        """Decode one window ``[n_channels, n_times]`` float32 (the model's montage)."""
        if eeg.shape != (self.n_channels, self.n_times):
            raise GenerationError(
                f"window shaped {eeg.shape} but the model wants ({self.n_channels}, "
                f"{self.n_times}); map and resample it first (WindowPreprocessor)")
        t0 = time.perf_counter()
        context, clip = self.conditioner(eeg)
        t_encode = time.perf_counter() - t0
        result = self.generator(context, seed=seed)
        clip_vec = np.asarray(clip[0], np.float32)
        if result.interrupted:
            return DecodedImages([], list(result.seeds), dict(result.timings), clip_vec,
                                 interrupted=True)
        timings = {"encode": t_encode, **result.timings}
        timings["sample"] = timings.pop("unet", 0.0)
        timings["total"] = time.perf_counter() - t0
        return DecodedImages(list(result.images), list(result.seeds), timings, clip_vec)


def onnx_decoder_for(config: GeneratorConfig) -> OnnxEEGDecoder | None:
    """The ONNX decoder when :func:`choose_runtime` picks ONNX for ``config``, else None."""
    if choose_runtime(config) != "onnx":
        return None
    return OnnxEEGDecoder.from_config(config)
