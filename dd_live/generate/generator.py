"""ImageGenerator: EEG context [B, 77, 768] -> images, with diffusers' UNet, VAE and schedulers.

There is no tokenizer, text encoder or safety checker: the context is the UNet's
``encoder_hidden_states`` and the null context (learned, or zeros) the unconditional branch of
guidance. The denoising loop is dd-live's own fixed-shape loop (the same arithmetic as
diffusers' StableDiffusionPipeline), so its UNet call and decoder can be captured as CUDA
graphs. ``prepare()`` does the one-time work, ``warmup()`` captures, ``__call__`` is the hot
path::

    generator = ImageGenerator.from_pretrained("models/sd15", scheduler="dpm++").prepare()
    result = generator(context, seed=2022)        # context: [B, 77, 768]
    result.images, result.timings["unet"], result.timings["decode"]
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    PNDMScheduler,
    SchedulerMixin,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.models.attention_processor import AttnProcessor2_0
from PIL import Image

from dd_live.assets import sd15_config_dir
from dd_live.errors import ConfigError, GenerationError, require_extra
from dd_live.generate.backend import choose_attention_backend, resolve_device, resolve_dtype
from dd_live.generate.loading import load_components, load_unet
from dd_live.generate.schedulers import (
    DEFAULT_SCHEDULER,
    DISTILLED_SCHEDULERS,
    LCM_MAX_STEPS,
    SCHEDULERS,
    STEP_ETA,
    make_scheduler,
    model_scheduler,
)
from dd_live.generate.static import CapturedCall, StageClock
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
WARMUP_GUIDANCE = 2.0  # the guidance-on variant is captured with this scale (any scale > 1 replays it)


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
        if self.scheduler in DISTILLED_SCHEDULERS and self.num_inference_steps > LCM_MAX_STEPS:
            raise ConfigError(
                f"scheduler {self.scheduler!r} is made for 1-{LCM_MAX_STEPS} steps, got {self.num_inference_steps}; "
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
    ``tiny`` (random weights), call ``prepare()`` once (``warmup()`` to capture the hot path
    ahead of the first window), then call with contexts and seeds.

    The hot path is dd-live's own denoising loop over fixed shapes: the window's context goes
    to the device once, the UNet call (and the decoder) are CUDA graphs on CUDA
    (``cuda_graphs``, default on CUDA; one captured variant per guidance on/off, batch and
    size), nothing waits for the device until the image, converted to 8-bit on the device, is
    read back. The reference's time conditioning is part of the model: its output is the
    UNet's ``class_labels`` (``class_embed_type="identity"``), computed once per image.

    ``interrupt()`` (any thread) stops the running generation before its next UNet step; the
    flag stays set until ``clear_interrupt()`` (the worker clears it when it takes a new job).
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
        lora: str | Path | None = None,
        one_step_unet: bool = False,
        device: str | torch.device = "auto",
        dtype: str | torch.dtype = "auto",
        attention: str = "auto",
        compile: bool = False,
        cuda_graphs: bool | None = None,
        source: str = "",
        is_tiny: bool = False,
    ):
        if lcm_lora is not None and lora is not None:
            raise GenerationError("give one of lcm_lora= and lora= (both load a few-step LoRA)")
        self.unet, self.vae, self.tiny_vae, self.time_cond = unet, vae, tiny_vae, time_cond
        self.scheduler_config = dict(model_scheduler(scheduler_config).config)
        self.settings = settings or GeneratorSettings()
        self.null_context = null_context
        self.lora = lora if lora is not None else lcm_lora
        self.one_step_unet = one_step_unet
        self.source, self.is_tiny = source, is_tiny
        self._requested = {"device": device, "dtype": dtype, "attention": attention}
        self._compile = compile
        self._cuda_graphs = cuda_graphs
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.attention: str | None = None
        self.use_graphs = False
        self.scheduler: SchedulerMixin | None = None
        self._null: torch.Tensor | None = None  # [1, 77, 768] on device
        self._captured: dict[tuple, CapturedCall] = {}
        self._graph_pool: tuple[int, int] | None = None
        self._guidance_cond: dict[float, torch.Tensor] = {}
        self._interrupt = threading.Event()
        self._check_settings(self.settings)

    # -- set-up ------------------------------------------------------------------------------

    @property
    def prepared(self) -> bool:
        return self.scheduler is not None

    def prepare(self) -> ImageGenerator:
        """One-time set-up: device, dtype, attention, LoRA, scheduler, null context, compile."""
        if self.prepared:
            return self
        # 1. device and precision
        self.device = resolve_device(self._requested["device"])
        self.dtype = resolve_dtype(self.device, self._requested["dtype"])
        self._resolve_graphs()
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
        scheduler = make_scheduler(self.settings.scheduler, self.scheduler_config)
        # 4. few-step LoRA weights (LCM, TCD, Hyper-SD; peft), fused into the UNet, then the
        #    LoRA layers removed: the UNet is a plain UNet again (no extra kernels per step)
        if self.lora is not None:
            require_extra("peft", "lcm", "few-step LoRA weights (lora=, lcm_lora=)")
            pipe = StableDiffusionPipeline(
                vae=self.vae, text_encoder=None, tokenizer=None, unet=self.unet, scheduler=scheduler,
                safety_checker=None, feature_extractor=None, requires_safety_checker=False,
            )
            pipe.load_lora_weights(str(self.lora))
            pipe.fuse_lora()
            pipe.unload_lora_weights()
        # 5. attention processors (after LoRA, which wraps the attention projections)
        for module in (self.unet, self.vae):
            if self.attention == "xformers":
                module.enable_xformers_memory_efficient_attention()
            else:
                module.set_attn_processor(AttnProcessor2_0())
        if self.time_cond is not None and self.unet.config.class_embed_type != "identity":
            raise GenerationError(
                "time conditioning needs a UNet built with class_embed_type='identity'; "
                f"this one has class_embed_type={self.unet.config.class_embed_type!r}"
            )
        # 6. null context for guidance: the learned one, or zeros
        null = self.null_context.detach() if self.null_context is not None else torch.zeros(CLIP_TOKENS, CLIP_DIM)
        self._null = self._check_context(null.reshape(1, CLIP_TOKENS, CLIP_DIM), "null_context")
        # 7. optional torch.compile of the UNet (in place; the first call is slow)
        if self._compile:
            self.unet.compile()
        self.scheduler = scheduler
        logger.info("image generator ready: %r", self)
        return self

    def _resolve_graphs(self) -> None:
        want = self._cuda_graphs if self._cuda_graphs is not None else self.device.type == "cuda"
        if want and self.device.type != "cuda":
            raise GenerationError(f"cuda_graphs=True needs a CUDA device, the generator runs on {self.device}")
        self.use_graphs = bool(want)

    def set_cuda_graphs(self, enabled: bool | None) -> ImageGenerator:
        """Capture the hot path as CUDA graphs (True), run it eagerly (False), or decide by
        device (None: on CUDA). Variants captured so far are dropped (captured again when used)."""
        self._cuda_graphs = enabled
        self._captured.clear()
        if self.prepared:
            self._resolve_graphs()
        return self

    def drop_captured(self) -> ImageGenerator:
        """Forget the captured variants (captured again when next used): needed after the UNet's
        attention processors or their constants changed (a CUDA graph replays what it saw)."""
        self._captured.clear()
        return self

    def warmup(self, progress: Callable[[str], Any] | None = None) -> ImageGenerator:
        """Run the hot path once per variant the settings can switch between (guidance off and,
        where the UNet takes a null context, on), so kernels are chosen and, on CUDA, the CUDA
        graphs are captured before the first window. ``progress(message)`` is told each step."""
        self.prepare()
        context = torch.zeros(1, CLIP_TOKENS, CLIP_DIM)
        scales = [self.settings.guidance_scale]
        if self.use_graphs and self.unet.config.time_cond_proj_dim is None:
            other = 1.0 if self.settings.guidance_scale > 1.0 else WARMUP_GUIDANCE
            scales.append(other)
        current = self.settings
        try:
            for i, scale in enumerate(scales, 1):
                what = "guidance on" if scale > 1.0 else "guidance off"
                verb = "capturing CUDA graphs" if self.use_graphs else "warming up"
                if progress is not None:
                    progress(f"{verb} ({what}) {i}/{len(scales)}")
                self.settings = dataclasses.replace(current, guidance_scale=scale)
                t0 = time.perf_counter()
                self(context, seed=0)
                logger.info("%s (%s) in %.2f s", verb, what, time.perf_counter() - t0)
        finally:
            self.settings = current
        return self

    def configure(self, **changes: Any) -> ImageGenerator:
        """Change settings (``scheduler``, ``num_inference_steps``, ``guidance_scale``,
        ``image_size``, ``tiny_decoder``); takes effect at the next call."""
        settings = dataclasses.replace(self.settings, **changes)
        self._check_settings(settings)
        if self.prepared and settings.scheduler != self.settings.scheduler:
            self.scheduler = make_scheduler(settings.scheduler, self.scheduler_config)
        self.settings = settings
        return self

    def _check_settings(self, settings: GeneratorSettings) -> None:
        lcm_ready = (self.lora is not None or self.one_step_unet
                     or self.unet.config.time_cond_proj_dim is not None)
        if settings.scheduler in DISTILLED_SCHEDULERS and not lcm_ready:
            raise GenerationError(
                f"scheduler {settings.scheduler!r} needs few-step weights: pass lcm_lora= / lora= (a local "
                "folder/file or hub id, e.g. 'latent-consistency/lcm-lora-sdv1-5' or a Hyper-SD/TCD LoRA), "
                "load a UNet distilled for LCM, or a one-step UNet (unet=)"
            )
        if settings.tiny_decoder and self.tiny_vae is None:
            raise GenerationError(
                "tiny_decoder=True needs a tiny autoencoder: pass tiny_vae= (a TAESD folder or hub id, "
                "e.g. 'madebyollin/taesd')"
            )

    # -- generation --------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the generation in progress before its next UNet step (safe from any thread).

        The flag stays set (a generation started later stops at once) until
        :meth:`clear_interrupt`, which the worker calls when it takes a new job.
        """
        self._interrupt.set()

    def clear_interrupt(self) -> None:
        """Let generations run again (called when a new job is taken, not at each call)."""
        self._interrupt.clear()

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    @torch.inference_mode()
    def __call__(self, context: torch.Tensor, seed: int | list[int], *,
                 on_step: Callable[[int], Any] | None = None,
                 image_embeds: torch.Tensor | None = None,
                 null_image_embeds: torch.Tensor | None = None,
                 init_latents: torch.Tensor | None = None,
                 denoising_strength: float = 1.0) -> GenerationResult:
        """Images for context [B, 77, 768]; ``seed`` is one int (seeds seed..seed+B-1) or B ints.

        ``context`` may already be on the generator's device (it is then not copied). Nothing
        waits for the device until the 8-bit images are read back; a non-finite context is
        reported then. ``on_step(i)`` is called after each UNet step (on the caller's thread).

        A UNet with IP-Adapter weights loaded takes ``image_embeds`` [B, 1, D] (diffusers'
        ``added_cond_kwargs={"image_embeds": [...]}``); with guidance the unconditional rows are
        ``null_image_embeds`` [1, 1, D] (zeros when not given). ``init_latents`` [B, 4, h, w]
        (scaled VAE latents) start an img2img generation as StableDiffusionImg2ImgPipeline does:
        only the last ``denoising_strength`` of the schedule runs (at least one step), from the
        start noised to its first timestep with the scheduler's ``add_noise``.
        """
        # 1. check inputs
        self.prepare()
        clock = StageClock(self.device)
        clock.mark("unet")
        t_start = time.perf_counter()
        context = self._check_context(context, "context")
        batch_size = context.shape[0]
        seeds = [seed + i for i in range(batch_size)] if isinstance(seed, int) else list(seed)
        if len(seeds) != batch_size:
            raise GenerationError(f"got {len(seeds)} seeds for a batch of {batch_size} contexts; give one per context")
        settings, scheduler, unet = self.settings, self.scheduler, self.unet
        finite = torch.isfinite(context).all()  # read with the images: no synchronisation here
        # 2. guidance: a null-context branch only for a UNet without a guidance embedding
        use_cfg = settings.guidance_scale > 1.0 and unet.config.time_cond_proj_dim is None
        if use_cfg:
            context = torch.cat([self._null.expand(batch_size, -1, -1), context])
        if image_embeds is not None:
            image_embeds = image_embeds.to(self.device, self.dtype)
            if use_cfg:
                null_rows = (torch.zeros_like(image_embeds[:1]) if null_image_embeds is None
                             else null_image_embeds.to(self.device, self.dtype))
                image_embeds = torch.cat([null_rows.expand_as(image_embeds), image_embeds])
        class_labels = self.time_cond(context) if self.time_cond is not None else None  # once per image
        timestep_cond = self._guidance_embedding(settings.guidance_scale, context.shape[0])
        # 3. timesteps on the host for the scheduler, on the device for the UNet (one copy);
        #    img2img runs only the schedule's tail (StableDiffusionImg2ImgPipeline.get_timesteps)
        scheduler.set_timesteps(settings.num_inference_steps, device="cpu")
        timesteps = scheduler.timesteps
        if init_latents is not None:
            n_steps = settings.num_inference_steps
            n_run = min(max(int(n_steps * denoising_strength), 1), n_steps)
            begin = (n_steps - n_run) * scheduler.order
            timesteps = timesteps[begin:]
            if hasattr(scheduler, "set_begin_index"):
                scheduler.set_begin_index(begin)
        timesteps_device = self._to_device(timesteps)
        # 4. initial noise: one CPU generator per image, so a seed gives the same start on any
        #    device; step noise (stochastic samplers) from generators on the device
        size = settings.image_size or self.native_image_size
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        if init_latents is None:
            latents = self._initial_latents(generators, size) * scheduler.init_noise_sigma
        else:
            init_latents = init_latents.to(self.device, self.dtype)
            noise = self._initial_latents(generators, size)
            if noise.shape != init_latents.shape:
                raise GenerationError(
                    f"init_latents have shape {list(init_latents.shape)}, the generation's latents "
                    f"{list(noise.shape)}; give one start per image at the latent size")
            latents = scheduler.add_noise(init_latents, noise, timesteps[:1].repeat(batch_size))
        step_generators = (generators if self.device.type == "cpu"  # as diffusers' pipeline does
                           else [torch.Generator(self.device).manual_seed(s) for s in seeds])
        step_kwargs = self._step_kwargs(scheduler, settings.scheduler, step_generators)
        unet_call = self._unet_call(latents.shape[0] * (2 if use_cfg else 1), size, class_labels, timestep_cond,
                                    image_embeds)
        # 5. the denoising loop; an interrupt() stops it before the next UNet step
        steps_run = 0
        for i, t in enumerate(timesteps):
            if self._interrupt.is_set():
                break
            model_input = torch.cat([latents] * 2) if use_cfg else latents
            model_input = scheduler.scale_model_input(model_input, t)
            noise = unet_call(model_input, timesteps_device[i], context, class_labels, timestep_cond, image_embeds)
            if use_cfg:
                uncond, cond = noise.chunk(2)
                noise = uncond + settings.guidance_scale * (cond - uncond)
            latents = scheduler.step(noise, t, latents, **step_kwargs, return_dict=False)[0]
            steps_run += 1
            if on_step is not None:
                on_step(i)
        if self._interrupt.is_set() and steps_run < len(timesteps):
            timings = {"unet": time.perf_counter() - t_start, "steps": float(steps_run)}
            timings.update(unet_per_step=timings["unet"] / max(steps_run, 1), total=timings["unet"])
            return GenerationResult(images=[], seeds=seeds, timings=timings, interrupted=True)
        # 6. decode (full VAE or tiny autoencoder) and convert to 8-bit on the device
        clock.mark("decode")
        pixels = self._decode_call(latents)(latents)
        clock.mark("end")
        # 7. the one synchronisation: the images come back to the host (the finiteness flag
        #    rides along: a non-blocking copy queued before, complete once the images are)
        finite = finite.to("cpu", non_blocking=True) if finite.device.type != "cpu" else finite
        array = pixels.cpu().numpy()
        if not bool(finite):
            raise GenerationError(
                "context has NaN or infinite values; check the EEG window (flat or saturated channels) "
                "and the encoder's weights"
            )
        images = [Image.fromarray(row) for row in array]
        timings = clock.durations()
        timings.update(steps=float(steps_run), unet_per_step=timings["unet"] / max(steps_run, 1),
                       total=time.perf_counter() - t_start)
        return GenerationResult(images=images, seeds=seeds, timings=timings)

    # -- the hot path's pieces -------------------------------------------------------------------

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        """Host -> device without making the host wait (pinned memory, non-blocking copy)."""
        if self.device.type == "cpu":
            return tensor
        return tensor.pin_memory().to(self.device, non_blocking=True)

    def _initial_latents(self, generators: list[torch.Generator], size: int) -> torch.Tensor:
        """[B, C, h, w] standard normal noise, row k from the CPU generator ``generators[k]``
        (as diffusers' ``randn_tensor`` draws it), then moved to the device."""
        vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        shape = (1, self.unet.config.in_channels, size // vae_scale, size // vae_scale)
        rows = [torch.randn(shape, generator=g, dtype=self.dtype) for g in generators]
        return self._to_device(torch.cat(rows))

    def _guidance_embedding(self, scale: float, batch: int) -> torch.Tensor | None:
        """The guidance-scale embedding of an LCM-distilled UNet (``time_cond_proj_dim``), else None."""
        dim = self.unet.config.time_cond_proj_dim
        if dim is None:
            return None
        if scale not in self._guidance_cond:
            w = torch.tensor([scale - 1.0]) * 1000.0
            half = dim // 2
            freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
            emb = torch.cat([torch.sin(w[:, None] * freqs), torch.cos(w[:, None] * freqs)], dim=1)
            if dim % 2:
                emb = torch.nn.functional.pad(emb, (0, 1))
            self._guidance_cond[scale] = self._to_device(emb.to(self.dtype))
        return self._guidance_cond[scale].expand(batch, -1)

    @staticmethod
    def _step_kwargs(scheduler: SchedulerMixin, name: str, generators: list[torch.Generator]) -> dict[str, Any]:
        accepted = inspect.signature(scheduler.step).parameters
        kwargs: dict[str, Any] = {}
        if "eta" in accepted:
            kwargs["eta"] = STEP_ETA.get(name, 0.0)
        if "generator" in accepted:
            kwargs["generator"] = generators
        return kwargs

    def _unet_call(self, batch: int, size: int, class_labels: torch.Tensor | None,
                   timestep_cond: torch.Tensor | None, image_embeds: torch.Tensor | None = None) -> CapturedCall:
        """The UNet step for this shape: a captured CUDA graph (CUDA), the same static path run
        eagerly elsewhere. One variant per (batch incl. guidance rows, size, IP-Adapter input)."""
        latent = size // 2 ** (len(self.vae.config.block_out_channels) - 1)
        key = ("unet", batch, latent, class_labels is not None, timestep_cond is not None, self._float_timesteps(),
               None if image_embeds is None else tuple(image_embeds.shape))
        if key not in self._captured:
            unet = self.unet

            def step(sample, t, context, labels, t_cond, ip_embeds):
                added = None if ip_embeds is None else {"image_embeds": [ip_embeds]}
                return unet(sample, t, encoder_hidden_states=context, class_labels=labels,
                            timestep_cond=t_cond, added_cond_kwargs=added, return_dict=False)[0]

            example = (
                torch.zeros(batch, unet.config.in_channels, latent, latent, device=self.device, dtype=self.dtype),
                torch.zeros((), device=self.device, dtype=torch.float32 if self._float_timesteps() else torch.long),
                torch.zeros(batch, CLIP_TOKENS, CLIP_DIM, device=self.device, dtype=self.dtype),
                None if class_labels is None else torch.zeros_like(class_labels),
                None if timestep_cond is None else torch.zeros_like(timestep_cond),
                None if image_embeds is None else torch.zeros_like(image_embeds),
            )
            self._captured[key] = self._capture(step, example)
        return self._captured[key]

    def _float_timesteps(self) -> bool:
        return self.scheduler.timesteps is not None and self.scheduler.timesteps.is_floating_point()

    def _decode_call(self, latents: torch.Tensor) -> CapturedCall:
        """Latents -> [B, H, W, 3] uint8 on the device (the decoder, then 8-bit conversion)."""
        decoder = self.tiny_vae if self.settings.tiny_decoder else self.vae
        key = ("decode", "tiny" if self.settings.tiny_decoder else "vae", tuple(latents.shape))
        if key not in self._captured:
            scale = decoder.config.scaling_factor

            def decode(z):
                pixels = decoder.decode(z / scale, return_dict=False)[0]
                pixels = (pixels.float() / 2 + 0.5).clamp(0, 1)
                return (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

            self._captured[key] = self._capture(decode, (torch.zeros_like(latents),))
        return self._captured[key]

    def _capture(self, fn: Callable[..., Any], example: tuple) -> CapturedCall:
        if self.use_graphs and self._graph_pool is None:
            self._graph_pool = torch.cuda.graph_pool_handle()
        return CapturedCall(fn, example, use_graph=self.use_graphs, pool=self._graph_pool)

    def _check_context(self, context: torch.Tensor, name: str) -> torch.Tensor:
        if not isinstance(context, torch.Tensor):
            raise GenerationError(f"{name} must be a torch.Tensor [B, {CLIP_TOKENS}, {CLIP_DIM}], got {type(context).__name__}")
        if context.ndim != 3 or tuple(context.shape[1:]) != (CLIP_TOKENS, CLIP_DIM):
            raise GenerationError(
                f"{name} must have shape [B, {CLIP_TOKENS}, {CLIP_DIM}], got {list(context.shape)}; "
                "it is the EEG conditioner's output (EEGConditioner.encode)"
            )
        if context.device.type == "cpu" and not torch.isfinite(context).all():
            raise GenerationError(
                f"{name} has NaN or infinite values; check the EEG window (flat or saturated channels) "
                "and the encoder's weights"
            )
        if context.device.type == "cpu" and self.device.type != "cpu":
            return self._to_device(context.to(self.dtype))
        return context.to(self.device, self.dtype)

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
        where = f"{self.device} {self.dtype} {self.attention}" if self.prepared else "not prepared"
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
        tiny_decoder: bool | None = None,
        lcm_lora: str | Path | None = None,
        lora: str | Path | None = None,
        unet: str | Path | None = None,
        compile: bool = False,
        cuda_graphs: bool | None = None,
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

        Few-step weights: ``lora=`` (or ``lcm_lora=``) an LCM, TCD or Hyper-SD LoRA, fused at
        ``prepare()``; ``unet=`` a distilled SD 1.5 UNet (folder or single file, e.g. DMD2's
        one-step UNet) replacing the model's, run with ``scheduler="lcm", num_inference_steps=1``.
        ``cuda_graphs``: capture the hot path as CUDA graphs (default: on CUDA).
        ``tiny_decoder``: decode with the tiny autoencoder (``tiny_vae=`` or the folder's
        ``tiny_vae/``); default: when ``tiny_vae=`` is given.
        """
        dtype_for_load = resolve_dtype(resolve_device(device), dtype)
        parts = load_components(path_or_id, torch_dtype=dtype_for_load, config=config, tiny_vae=tiny_vae)
        if unet is not None:
            parts.unet = load_unet(unet, torch_dtype=dtype_for_load, config=config)
            if parts.time_cond is not None and parts.unet.config.class_embed_type != "identity":
                raise GenerationError(
                    f"{path_or_id} carries time conditioning, which the UNet {unet} has no input for "
                    "(class_embed_type='identity'); a distilled UNet replaces a plain SD 1.5 model's UNet"
                )
        settings = GeneratorSettings(
            scheduler=scheduler,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            image_size=image_size,
            tiny_decoder=tiny_vae is not None if tiny_decoder is None else tiny_decoder,
        )
        return cls(
            parts.unet, parts.vae, parts.scheduler_config, settings=settings, tiny_vae=parts.tiny_vae,
            time_cond=parts.time_cond, null_context=null_context, lcm_lora=lcm_lora, lora=lora,
            one_step_unet=unet is not None, device=device, dtype=dtype, attention=attention,
            compile=compile, cuda_graphs=cuda_graphs, source=parts.source,
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
