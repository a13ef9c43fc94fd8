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
from collections.abc import Sequence
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
        interrupted: the sampler was stopped (``interrupt()``): no images; not a result to keep.
        embedding: the embedding route: the decoded image embedding ``[dim]``; else None.
        lowlevel: the embedding route: the decoded low-level picture (PIL RGB), or None.
        renderer: what made ``images``: ``"ip-adapter"``, ``"retrieval"``, ``"lowlevel"`` (the
            embedding route), ``"sd"`` (a dd-live model folder or checkpoint) or ``"tiny"``.
    """

    images: list[Any]
    seeds: list[int]
    timings: dict[str, float]
    clip: np.ndarray | None = None
    matches: list[tuple[str, float]] = field(default_factory=list)
    interrupted: bool = False
    embedding: np.ndarray | None = None
    lowlevel: Any = None
    renderer: str = "sd"


class EEGDecoder:
    """Turns an EEG window ``[n_channels, n_times]`` (float32, standardised) into images."""

    def __init__(self, conditioner: Any, generator: Any = None, retriever: Any = None,
                 *, description: str = "", ch_names: Any = None, renderer: str = "sd") -> None:
        if generator is None and retriever is None:
            raise GenerationError("EEGDecoder needs an image generator or a retriever")
        # what makes the images (DecodedImages.renderer): "sd" or "tiny"; "retrieval" without
        # a generator
        self.renderer_name = renderer if generator is not None else "retrieval"
        self.conditioner = conditioner.eval()
        self.generator = generator
        self.retriever = retriever
        enc = conditioner.config.encoder
        self.n_channels: int = enc.n_channels
        self.n_times: int = enc.n_times
        self.description = description or getattr(generator, "description", "")
        # the model's channel names in order (a model folder's dd_live.json "channels"), or None:
        # the session then maps the input by count
        self.ch_names: tuple[str, ...] | None = tuple(ch_names) if ch_names else None
        self.device, self.dtype = self._place_conditioner()
        self._staging: Any = None  # pinned host buffer [1, n_channels, n_times] (CUDA only)
        self._encode_call: Any = None

    def _place_conditioner(self) -> tuple[Any, Any]:
        """Put the conditioner on the generator's device, in :func:`conditioner_dtype`."""
        import torch

        device = torch.device("cpu")
        if self.generator is not None and hasattr(self.generator, "prepare"):
            self.generator.prepare()
            device = self.generator.device
        dtype = conditioner_dtype(device)
        place_conditioner(self.conditioner, device, dtype)
        return device, dtype

    def __repr__(self) -> str:
        mode = "generate" if self.generator is not None else "retrieve"
        return f"<EEGDecoder: {mode} | {self.n_channels} ch x {self.n_times} | {self.description}>"

    @classmethod
    def from_config(cls, config: GeneratorConfig) -> Any:
        """Build the models ``config.model`` names (``"tiny"``, a dd-live model folder, ...);
        a personal embedding-route folder gives an
        :class:`~dd_live.embedding_route.EmbeddingDecoder`, a model with an ONNX export on the
        CPU an :class:`~dd_live.decoding_onnx.OnnxEEGDecoder` (``[generator] runtime``)."""
        from dd_live.decoding_onnx import onnx_decoder_for
        from dd_live.embedding_route import EmbeddingDecoder, is_embedding_folder

        if config.model not in (TINY_MODEL, DEMO_MODEL) and is_embedding_folder(config.model):
            return EmbeddingDecoder.from_config(config)
        decoder = onnx_decoder_for(config)  # None: the torch path
        if decoder is not None:
            return decoder
        import torch

        from dd_live.generate import GeneratorSettings, ImageGenerator, ImageRetriever

        set_torch_threads(config.threads)
        from dd_live.model import EEGConditioner, get_preset, load

        ch_names = None  # a model folder may name its channels (dd_live.json "channels")
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
            unet=config.unet,
            lora=config.lora,
            cuda_graphs=None if config.cuda_graphs else False,
        )
        if config.model == TINY_MODEL:
            from dd_live.generate.schedulers import DISTILLED_SCHEDULERS

            torch.manual_seed(config.seed)
            conditioner = EEGConditioner(get_preset("tiny", kind="conditioner"))
            # random weights either way: with a few-step sampler the tiny UNet takes its input
            generator = ImageGenerator.tiny(
                seed=config.seed, lcm=config.scheduler in DISTILLED_SCHEDULERS,
                cuda_graphs=settings["cuda_graphs"], settings=GeneratorSettings(
                    scheduler=config.scheduler, num_inference_steps=config.steps,
                    guidance_scale=config.guidance_scale, image_size=config.image_size,
                    tiny_decoder=config.tiny_decoder or config.tiny_vae is not None))
            description = "tiny random models: images carry no meaning"
        elif _is_model_file(Path(config.model).expanduser()):  # the release's checkpoint
            from dd_live.generate.release import load_release

            conditioner, generator, description = load_release(
                Path(config.model).expanduser(), config, settings)
        else:
            folder = demo_model_dir() if config.model == DEMO_MODEL else Path(config.model).expanduser()
            if not (folder / CONDITIONER_FOLDER).is_dir():
                raise CheckpointError(
                    f"{folder} is not a dd-live model folder: it has no '{CONDITIONER_FOLDER}/' "
                    "subfolder with the EEG encoder. Train one with `python -m training.finetune` "
                    "or convert a DreamDiffusion checkpoint with `dd-live convert SRC DST` (or "
                    "give its generation checkpoint file itself); use --model tiny for random "
                    "tiny models."
                )
            conditioner = load(folder / CONDITIONER_FOLDER)
            has_tiny = config.tiny_vae is not None or (folder / "tiny_vae").is_dir()
            if config.tiny_decoder and not has_tiny:
                logger.warning("the tiny decoder was asked for but %s has no tiny_vae/ folder and "
                               "[generator] tiny_vae is not set: decoding with the full VAE", folder)
            generator = ImageGenerator.from_pretrained(
                str(folder), null_context=_null_context(conditioner),
                tiny_decoder=has_tiny and (config.tiny_decoder or config.tiny_vae is not None),
                **settings)
            description = read_model_settings(folder).get(
                "description", getattr(generator, "description", str(folder)))
            ch_names = read_model_settings(folder).get("channels")
        retriever = None
        if config.mode == "retrieve" or config.gallery:  # generate mode: nearest images beside
            from dd_live.generate.retrieval import retrieval_embedder

            model_folder = (None if config.model == TINY_MODEL else demo_model_dir()
                            if config.model == DEMO_MODEL else Path(config.model).expanduser())
            retriever = ImageRetriever.from_folder(config.gallery,
                                                   **retrieval_embedder(config, model_folder))
        if config.mode == "retrieve":
            generator = None
        return cls(conditioner, generator, retriever, description=description,
                   ch_names=ch_names, renderer=TINY_MODEL if config.model == TINY_MODEL else "sd")

    def __call__(self, eeg: np.ndarray, seed: int) -> DecodedImages:
        """Decode one window.

        The window goes to the model's device once (pinned memory, non-blocking on CUDA); the
        context stays there; the host waits for the device only when the images come back.

        Args:
            eeg: ``[n_channels, n_times]`` float32, already mapped to the model's montage.
            seed: sampler seed (ignored in retrieval mode).
        """
        import torch

        from dd_live.generate.static import StageClock

        if eeg.shape != (self.n_channels, self.n_times):
            raise GenerationError(
                f"window shaped {eeg.shape} but the model wants ({self.n_channels}, "
                f"{self.n_times}); map and resample it first (WindowPreprocessor)")
        t0 = time.perf_counter()
        clock = StageClock(self.device)
        clock.mark("encode")
        with torch.inference_mode():
            context, clip = self._encode(self._window_to_device(eeg))
        clock.mark("generate")
        if self.retriever is not None and self.generator is None:
            clip_vec = clip[0].float().cpu().numpy()
            t_encode = time.perf_counter() - t0
            matches = self.retriever.query(clip_vec[None], k=4)[0]
            from PIL import Image

            images = [Image.open(path).convert("RGB") for path, _ in matches]
            total = time.perf_counter() - t0
            return DecodedImages(images, [], {"encode": t_encode, "total": total},
                                 clip_vec, [(str(p), float(s)) for p, s in matches],
                                 renderer=self.renderer_name)
        result = self.generator(context, seed=seed)
        clip_vec = clip[0].float().cpu().numpy()  # the device is done by now: no extra wait
        if getattr(result, "interrupted", False):
            return DecodedImages([], list(result.seeds), dict(result.timings), clip_vec, interrupted=True,
                                 renderer=self.renderer_name)
        clock.mark("end")
        timings = {"encode": clock.durations()["encode"], **dict(result.timings)}
        timings["sample"] = timings.pop("unet", 0.0)  # the denoising loop, under its stage name
        timings["total"] = time.perf_counter() - t0
        matches = [] if self.retriever is None else [  # the gallery images nearest to this EEG
            (str(p), float(s)) for p, s in self.retriever.query(clip_vec[None], k=4)[0]]
        return DecodedImages(list(result.images), list(result.seeds), timings, clip_vec, matches,
                             renderer=self.renderer_name)

    def _window_to_device(self, eeg: np.ndarray) -> Any:
        """``[n_channels, n_times]`` -> ``[1, n_channels, n_times]`` on the model's device, in
        its dtype; on CUDA through one pinned host buffer and a non-blocking copy."""
        import torch

        window = torch.from_numpy(np.ascontiguousarray(eeg, dtype=np.float32))[None]
        if self.device.type == "cpu":
            return window.to(self.dtype)
        if self._staging is None:
            self._staging = torch.empty(window.shape, dtype=torch.float32).pin_memory()
        self._staging.copy_(window)  # the previous copy is done: every call ends with a readback
        return self._staging.to(self.device, non_blocking=True).to(self.dtype)

    def _encode(self, window: Any) -> tuple[Any, Any]:
        """(context ``[1, 77, 768]`` in the generator's dtype, clip ``[1, clip_dim]``), on the
        device; a CUDA graph when the generator captures its hot path."""
        from dd_live.generate.static import CapturedCall

        if self._encode_call is None:
            conditioner = self.conditioner
            out_dtype = getattr(self.generator, "dtype", None) or self.dtype

            def encode(x):
                out = conditioner(x)
                return out["context"].to(out_dtype), out["clip"]

            use_graph = bool(getattr(self.generator, "use_graphs", False)) and self.device.type == "cuda"
            self._encode_call = CapturedCall(encode, (window,), use_graph=use_graph)
        return self._encode_call(window)

    def warmup(self, progress: Any = None) -> None:
        """Run throw-away windows, so the first real image is not slowed by one-time set-up
        (kernel selection, memory allocation; on CUDA the capture of the hot path's graphs, one
        per guidance variant). ``progress(message)`` is told each step."""
        t0 = time.perf_counter()
        if getattr(self.generator, "use_graphs", False):  # capture both guidance variants
            self.generator.warmup(progress=progress)
        if progress is not None:
            progress("warming up the model")
        self(np.zeros((self.n_channels, self.n_times), np.float32), seed=0)
        logger.info("model warmed up in %.2f s", time.perf_counter() - t0)

    def interrupt(self) -> None:
        """Stop a running sampler before its next step; it stays stopped until
        :meth:`clear_interrupt` (the worker calls it when it takes a new window)."""
        if self.generator is not None:
            self.generator.interrupt()

    def clear_interrupt(self) -> None:
        if self.generator is not None and hasattr(self.generator, "clear_interrupt"):
            self.generator.clear_interrupt()


def conditioner_dtype(device: Any) -> Any:
    """The EEG conditioner's dtype on ``device``: bfloat16 weights on CUDA and on CPUs with
    native bf16 arithmetic (AVX512-BF16 or AMX), float32 elsewhere.

    On CPU, measured with ``benchmarks/encoder.py --cpu-runtimes`` (reference encoder, batch 1,
    2 threads, AVX512-BF16): bf16 weights 4.8x faster than fp32 eager at 1.2e-2 relative RMS
    output error, bf16 autocast 4.4x at 6e-3, int8 dynamic 6.3x but 3.1e-2 (over the 2e-2
    tolerance), torch.compile 1.0x: bf16 weights kept. Without native bf16 the arithmetic is
    emulated, so fp32 stays.

    Cast once at load rather than fp32 weights under bf16 autocast: the matmuls run in bf16
    either way (autocast's precision), but autocast would re-cast the reference encoder's
    152 M weights on every window. bf16 rather than fp16: the release trained in fp32 and
    bf16 keeps fp32's range (no overflow in the 24 LayerNorm'd blocks). The context is handed
    to the sampler in the sampler's own dtype.
    """
    import torch

    kind = torch.device(device).type
    if kind == "cuda" or (kind == "cpu" and cpu_has_native_bf16()):
        return torch.bfloat16
    return torch.float32


_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU does bf16 arithmetic in hardware (Linux: AVX512-BF16 or AMX flags)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return any(flag in line.split() for flag in _CPU_BF16_FLAGS)
    except OSError:
        pass
    return False


def place_conditioner(conditioner: Any, device: Any, dtype: Any) -> Any:
    """Move every parameter and buffer (incl. ``null_context``) to ``device``/``dtype``, eval,
    no gradients."""
    return conditioner.to(device=device, dtype=dtype).eval().requires_grad_(False)


def set_torch_threads(threads: int) -> int:
    """Torch's threads for ``[generator] threads`` (0: cores - 1, see
    :func:`~dd_live.config.resolve_threads`) and one inter-op thread (one window at a time has
    no independent operators to overlap). Returns the intra-op count."""
    import torch

    from dd_live.config import resolve_threads

    n = resolve_threads(threads)
    torch.set_num_threads(n)
    if torch.get_num_interop_threads() != 1:
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:  # only possible before torch's first parallel work
            logger.debug("torch's inter-op threads are already in use: left at %d",
                         torch.get_num_interop_threads())
    return n


def read_model_settings(folder: str | Path) -> dict[str, Any]:
    """The optional ``dd_live.json`` of a model folder: ``{"description": str, "generator":
    {setting: value}}`` with the settings it is meant to run with (e.g. its step count), and
    optionally ``"channels": [names]``, the model's channel names in order (the input is then
    mapped by name)."""
    from dd_live.decoders.model import read_settings  # one reader for both routes' folders

    return read_settings(folder)


def write_model_settings(folder: str | Path, description: str, generator: dict[str, Any],
                         channels: Sequence[str] | None = None) -> Path:
    """Write ``dd_live.json`` (see :func:`read_model_settings`) into a model folder;
    ``channels``: the model's channel names in order (the rows of its ``[n_channels, n_times]``
    windows), written as ``"channels"`` when given."""
    settings: dict[str, Any] = {"description": description, "generator": generator}
    if channels is not None:
        settings["channels"] = [str(name) for name in channels]
    path = Path(folder) / MODEL_SETTINGS_FILE
    path.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    return path


def _is_model_file(path: Path) -> bool:
    """A single-file model: a file, or a missing path named like one (its error says so)."""
    from dd_live.generate.release import RELEASE_SUFFIXES

    return path.is_file() or (not path.exists() and path.suffix.lower() in RELEASE_SUFFIXES)


def _null_context(conditioner: Any) -> Any:
    return getattr(conditioner, "null_context", None)
