"""ImageGenerator: EEG context [B, 77, 768] -> images, around diffusers' StableDiffusionPipeline.

The pipeline runs without tokenizer, text encoder or safety checker: the context comes in as
``prompt_embeds`` and the null context (learned, or zeros) as ``negative_prompt_embeds``.
``prepare()`` does the one-time work; ``__call__`` is the small hot path::

    generator = ImageGenerator.from_pretrained("models/sd15", scheduler="dpm++").prepare()
    result = generator(context, seed=2022)        # context: [B, 77, 768]
    result.images, result.timings["unet"], result.timings["decode"]
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image

from dd_live.assets import sd15_config_dir
from dd_live.errors import ConfigError, GenerationError
from dd_live.generate.backend import choose_attention_backend, resolve_device, resolve_dtype
from dd_live.generate.loading import load_components
from dd_live.generate.schedulers import (
    DEFAULT_SCHEDULER,
    LCM_MAX_STEPS,
    SCHEDULERS,
    make_scheduler,
    model_scheduler,
)
from dd_live.generate.timecond import TimeConditioner
from dd_live.generate.tiny import (
    TINY_DESCRIPTION,
    tiny_tiny_vae_config,
    tiny_unet_config,
    tiny_vae_config,
)
from dd_live.model import CLIP_DIM, CLIP_TOKENS

logger = logging.getLogger(__name__)

IMAGE_SIZE_MULTIPLE = 8  # the pipeline's own check on height and width
TINY_IMAGE_SIZE = 64


@dataclass(frozen=True)
class GeneratorSettings:
    """What a user may change between generations (scheduler, steps, guidance, size, decoder).

    ``guidance_scale <= 1`` runs one UNet call per step; above 1 the null context is the
    unconditional branch. ``image_size=None`` uses the model's native size.
    """

    scheduler: str = DEFAULT_SCHEDULER
    num_inference_steps: int = 20
    guidance_scale: float = 1.0
    image_size: int | None = None
    tiny_decoder: bool = False

    def __post_init__(self):
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"scheduler {self.scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        if not self.num_inference_steps >= 1:
            raise ConfigError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        if self.scheduler == "lcm" and self.num_inference_steps > LCM_MAX_STEPS:
            raise ConfigError(
                f"scheduler 'lcm' is made for 2-{LCM_MAX_STEPS} steps, got {self.num_inference_steps}; "
                "lower num_inference_steps or pick another scheduler"
            )
        if not self.guidance_scale >= 0:
            raise ConfigError(f"guidance_scale must be >= 0, got {self.guidance_scale}")
        if self.image_size is not None and (
            self.image_size <= 0 or self.image_size % IMAGE_SIZE_MULTIPLE
        ):
            raise ConfigError(
                f"image_size must be a positive multiple of {IMAGE_SIZE_MULTIPLE}, got {self.image_size}"
            )


@dataclass(frozen=True)
class GenerationResult:
    """Images for one batch of contexts. ``timings`` in seconds: "unet" (whole denoising loop),
    "unet_per_step", "decode", "total"; "steps" is the number of steps run. An interrupted
    generation has no images."""

    images: list[Image.Image]
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


class ImageGenerator:
    """A Stable Diffusion sampler conditioned on EEG contexts [B, 77, 768].

    Build with ``from_pretrained`` (folder, hub id, single file, reference checkpoint) or
    ``tiny`` (random weights), call ``prepare()`` once, then call with contexts and seeds.
    ``interrupt()`` (any thread) stops the running generation after the current step.
    """

    def __init__(
        self,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        scheduler_config: dict[str, Any],
        *,
        settings: GeneratorSettings | None = None,
        tiny_vae: AutoencoderTiny | None = None,
        time_cond: TimeConditioner | None = None,
        null_context: torch.Tensor | None = None,
        lcm_lora: str | Path | None = None,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        attention: str = "auto",
        compile: bool = False,
        source: str = "",
        is_tiny: bool = False,
    ):
        self.unet, self.vae, self.tiny_vae, self.time_cond = unet, vae, tiny_vae, time_cond
        self.scheduler_config = dict(model_scheduler(scheduler_config).config)
        self.settings = settings or GeneratorSettings()
        self.null_context = null_context
        self.lcm_lora = lcm_lora
        self.source, self.is_tiny = source, is_tiny
        self._requested = {"device": device, "dtype": dtype, "attention": attention}
        self._compile = compile
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.attention: str | None = None
        self._pipe: StableDiffusionPipeline | None = None
        self._null: torch.Tensor | None = None  # [1, 77, 768] on device
        self._interrupt = threading.Event()
        self._check_settings(self.settings)

    # -- set-up ------------------------------------------------------------------------------

    def prepare(self) -> ImageGenerator:
        """One-time set-up: device, dtype, attention, pipeline, scheduler, null context, compile."""
        if self._pipe is not None:
            return self
        # 1. device and precision
        self.device = resolve_device(self._requested["device"])
        self.dtype = resolve_dtype(self.device, self._requested["dtype"])
        # 2. attention backend (xformers only where its kernels really run)
        self.attention = choose_attention_backend(self.device, self._requested["attention"])
        # 3. modules to device, inference only, channels_last on CUDA
        modules = [m for m in (self.unet, self.vae, self.tiny_vae, self.time_cond) if m is not None]
        for module in modules:
            module.to(self.device).eval().requires_grad_(False)
            if module.dtype != self.dtype:
                module.to(dtype=self.dtype)
        if self.device.type == "cuda":
            self.unet.to(memory_format=torch.channels_last)
        # 4. the pipeline, without text encoder, tokenizer or safety checker
        self._pipe = StableDiffusionPipeline(
            vae=self.vae,
            text_encoder=None,
            tokenizer=None,
            unet=self.unet,
            scheduler=make_scheduler(self.settings.scheduler, self.scheduler_config),
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        self._pipe.set_progress_bar_config(disable=True)
        # 5. LCM-LoRA weights (peft), fused into the UNet
        if self.lcm_lora is not None:
            self._pipe.load_lora_weights(str(self.lcm_lora))
            self._pipe.fuse_lora()
        # 6. attention processors (after LoRA, which wraps the attention projections)
        for module in (self.unet, self.vae):
            if self.attention == "xformers":
                module.enable_xformers_memory_efficient_attention()
            else:
                module.set_attn_processor(AttnProcessor2_0())
        # 7. the reference's time conditioning, computed from each row's context
        if self.time_cond is not None:
            self.time_cond.attach(self.unet)
        # 8. null context for guidance: the learned one, or zeros
        null = self.null_context if self.null_context is not None else torch.zeros(CLIP_TOKENS, CLIP_DIM)
        self._null = self._check_context(null.reshape(1, CLIP_TOKENS, CLIP_DIM), "null_context")
        # 9. optional torch.compile of the UNet (in place; the first call is slow)
        if self._compile:
            self.unet.compile()
        logger.info("image generator ready: %r", self)
        return self

    def configure(self, **changes: Any) -> ImageGenerator:
        """Change settings (``scheduler``, ``num_inference_steps``, ``guidance_scale``,
        ``image_size``, ``tiny_decoder``); takes effect at the next call."""
        settings = dataclasses.replace(self.settings, **changes)
        self._check_settings(settings)
        if self._pipe is not None and settings.scheduler != self.settings.scheduler:
            self._pipe.scheduler = make_scheduler(settings.scheduler, self.scheduler_config)
        self.settings = settings
        return self

    def _check_settings(self, settings: GeneratorSettings) -> None:
        lcm_ready = self.lcm_lora is not None or self.unet.config.time_cond_proj_dim is not None
        if settings.scheduler == "lcm" and not lcm_ready:
            raise GenerationError(
                "scheduler 'lcm' needs LCM weights: pass lcm_lora= (a local folder/file or hub id, e.g. "
                "'latent-consistency/lcm-lora-sdv1-5') or load a UNet distilled for LCM"
            )
        if settings.tiny_decoder and self.tiny_vae is None:
            raise GenerationError(
                "tiny_decoder=True needs a tiny autoencoder: pass tiny_vae= (a TAESD folder or hub id, "
                "e.g. 'madebyollin/taesd')"
            )

    # -- generation --------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the generation in progress after its current step (safe from any thread)."""
        self._interrupt.set()

    @torch.inference_mode()
    def __call__(self, context: torch.Tensor, seed: int | list[int]) -> GenerationResult:
        """Images for context [B, 77, 768]; ``seed`` is one int (seeds seed..seed+B-1) or B ints."""
        t_start = time.perf_counter()
        # 1. check inputs
        self.prepare()
        context = self._check_context(context, "context")
        batch_size = context.shape[0]
        seeds = [seed + i for i in range(batch_size)] if isinstance(seed, int) else list(seed)
        if len(seeds) != batch_size:
            raise GenerationError(f"got {len(seeds)} seeds for a batch of {batch_size} contexts; give one per context")
        settings = self.settings
        # 2. one CPU generator per image: the same seed gives the same image on any device
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        # 3. unconditional branch only when guidance is on: the null context
        use_guidance = settings.guidance_scale > 1.0
        negative = self._null.expand(batch_size, -1, -1) if use_guidance else None
        # 4. denoising loop (the pipeline's), latents out; stop between steps on interrupt()
        self._interrupt.clear()
        steps_run = 0

        def on_step_end(pipe, step_index, timestep, callback_kwargs):
            nonlocal steps_run
            steps_run += 1
            if self._interrupt.is_set():
                pipe._interrupt = True  # the pipeline skips the remaining steps
            return callback_kwargs

        size = settings.image_size or self.native_image_size
        latents = self._pipe(
            prompt_embeds=context,
            negative_prompt_embeds=negative,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
            height=size,
            width=size,
            generator=generators,
            output_type="latent",
            return_dict=False,
            callback_on_step_end=on_step_end,
        )[0]
        self._synchronize()
        t_unet = time.perf_counter()
        timings = {"unet": t_unet - t_start, "steps": float(steps_run)}
        timings["unet_per_step"] = timings["unet"] / max(steps_run, 1)
        if self._interrupt.is_set():
            timings["total"] = timings["unet"]
            return GenerationResult(images=[], seeds=seeds, timings=timings, interrupted=True)
        # 5. decode: the full VAE or the tiny autoencoder
        images = self._decode(latents)
        t_end = time.perf_counter()
        timings.update(decode=t_end - t_unet, total=t_end - t_start)
        return GenerationResult(images=images, seeds=seeds, timings=timings)

    def _decode(self, latents: torch.Tensor) -> list[Image.Image]:
        decoder = self.tiny_vae if self.settings.tiny_decoder else self.vae
        pixels = decoder.decode(latents / decoder.config.scaling_factor, return_dict=False)[0]
        self._synchronize()
        return self._pipe.image_processor.postprocess(pixels, output_type="pil")

    def _check_context(self, context: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(context, torch.Tensor):
            raise GenerationError(f"{name} must be a torch.Tensor [B, {CLIP_TOKENS}, {CLIP_DIM}], got {type(context).__name__}")
        if context.ndim != 3 or tuple(context.shape[1:]) != (CLIP_TOKENS, CLIP_DIM):
            raise GenerationError(
                f"{name} must have shape [B, {CLIP_TOKENS}, {CLIP_DIM}], got {list(context.shape)}; "
                "it is the EEG conditioner's output (EEGConditioner.encode)"
            )
        if not torch.isfinite(context).all():
            raise GenerationError(
                f"{name} has NaN or infinite values; check the EEG window (flat or saturated channels) "
                "and the encoder's weights"
            )
        return context.to(self.device, self.dtype)

    def _synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    # -- description -------------------------------------------------------------------------

    @property
    def native_image_size(self) -> int:
        """Image side in pixels the UNet was trained for (latent size x VAE scale)."""
        vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        return self.unet.config.sample_size * vae_scale

    @property
    def description(self) -> str:
        """One line for the GUI and the log."""
        if self.is_tiny:
            return TINY_DESCRIPTION
        s = self.settings
        return f"{self.source} ({s.scheduler}, {s.num_inference_steps} steps, guidance {s.guidance_scale:g})"

    def __repr__(self) -> str:
        s = self.settings
        where = f"{self.device} {self.dtype} {self.attention}" if self._pipe else "not prepared"
        decoder = "tiny decoder" if s.tiny_decoder else "full VAE"
        name = "tiny random" if self.is_tiny else self.source
        return (
            f"<ImageGenerator: {name} | {s.scheduler} {s.num_inference_steps} steps, guidance "
            f"{s.guidance_scale:g}, {decoder}{', time-conditioned' if self.time_cond else ''} | {where}>"
        )

    # -- construction and saving ---------------------------------------------------------------

    @classmethod
    def tiny(
        cls,
        seed: int = 0,
        image_size: int = TINY_IMAGE_SIZE,
        *,
        time_conditioning: bool = False,
        lcm: bool = False,
        **kwargs: Any,
    ) -> ImageGenerator:
        """A complete pipeline with small random weights (tests, CI, the no-weights demo).

        ``time_conditioning`` adds the reference's time conditioning; ``lcm`` makes the UNet
        look LCM-distilled (guidance embedding), so the 'lcm' scheduler can run. Other keyword
        arguments go to the constructor (settings, device, attention, null_context, ...).
        """
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(**tiny_unet_config(image_size, time_conditioning=time_conditioning, lcm=lcm))
        vae = AutoencoderKL(**tiny_vae_config(image_size))
        tiny_vae = AutoencoderTiny(**tiny_tiny_vae_config())
        time_cond = (
            TimeConditioner(time_embed_dim=unet.config.block_out_channels[0] * 4) if time_conditioning else None
        )
        scheduler_config = PNDMScheduler.load_config(sd15_config_dir(), subfolder="scheduler")  # SD 1.5's schedule
        kwargs.setdefault("dtype", "float32")
        return cls(unet, vae, scheduler_config, tiny_vae=tiny_vae, time_cond=time_cond, is_tiny=True,
                   source="tiny", **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        path_or_id: str | Path,
        *,
        scheduler: str = DEFAULT_SCHEDULER,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        device: str = "auto",
        dtype: str = "auto",
        attention: str = "auto",
        tiny_vae: str | Path | None = None,
        lcm_lora: str | Path | None = None,
        compile: bool = False,
        image_size: int | None = None,
        null_context: torch.Tensor | None = None,
        config: str | Path | None = None,
    ) -> ImageGenerator:
        """Load a generator, offline-capable (``HF_HUB_OFFLINE=1`` is honoured).

        ``path_or_id``: a diffusers folder (model_index.json) or a dd-live model folder
        (unet/, vae/, scheduler/, optional time_cond/); a hub id (from the cache when
        offline); a single-file SD 1.5 checkpoint (.safetensors/.ckpt, LDM layout) read with
        the component configs in ``config`` (default: the packaged dd_live/assets/sd15); or the reference release's
        fine-tuned checkpoint (``model_state_dict``), read without executing pickled code.
        The reference's own sampling: ``scheduler="plms", num_inference_steps=250,
        guidance_scale=1.0``.
        """
        dtype_for_load = resolve_dtype(resolve_device(device), dtype)
        parts = load_components(path_or_id, torch_dtype=dtype_for_load, config=config, tiny_vae=tiny_vae)
        settings = GeneratorSettings(
            scheduler=scheduler,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            image_size=image_size,
            tiny_decoder=tiny_vae is not None,
        )
        return cls(
            parts.unet, parts.vae, parts.scheduler_config, settings=settings, tiny_vae=parts.tiny_vae,
            time_cond=parts.time_cond, null_context=null_context, lcm_lora=lcm_lora, device=device,
            dtype=dtype, attention=attention, compile=compile, source=parts.source,
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Write a dd-live model folder: unet/, vae/, scheduler/ (+ time_cond/, tiny_vae/)."""
        folder = Path(folder)
        self.unet.save_pretrained(folder / "unet")
        self.vae.save_pretrained(folder / "vae")
        model_scheduler(self.scheduler_config).save_pretrained(folder / "scheduler")
        for name, module in (("time_cond", self.time_cond), ("tiny_vae", self.tiny_vae)):
            if module is not None:
                module.save_pretrained(folder / name)
        return folder
