"""The CPU runtime of small exported models: ONNX Runtime's CPU execution provider, no torch.

A model folder exported by ``python -m training.demo.export_onnx FOLDER`` holds the graphs
beside the torch weights they read (``conditioner/model.onnx``, ``unet/model.onnx``,
``vae/decoder.onnx``, optionally ``classifier/model.onnx``) and ``onnx.json``; see that module
for the graphs' inputs and outputs. This module runs the whole few-step loop on them with
numpy and ``onnxruntime`` only:

- :class:`OnnxConditioner`: EEG window ``[n_channels, n_times]`` -> context ``[1, 77, 768]``
  and CLIP-space vector ``[1, clip_dim]``;
- :class:`OnnxImageGenerator`: context -> images, the UNet steps with DPM-Solver++'s
  multistep arithmetic in numpy (:class:`DPMSolverMultistep`, the very formulas of diffusers'
  ``DPMSolverMultistepScheduler`` for the configurations it supports), the VAE decoder, the
  8-bit conversion; ``interrupt()`` between steps;
- :func:`torch_randn`: the starting noise. It reproduces ``torch.randn(shape,
  generator=torch.Generator("cpu").manual_seed(seed))`` in numpy (the same MT19937 stream and
  the same Box-Muller pairing of 16 values), so a seed gives the torch path's noise to within
  float32 rounding of the transcendental functions (< 3e-7) and the two runtimes make the same
  images for the same window and seed.

Nothing here imports torch or diffusers; ``onnxruntime`` is imported when a session is made.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.errors import CheckpointError, GenerationError
from dd_live.safetensors_files import check_safetensors

logger = logging.getLogger(__name__)

#: the exported graphs, each in the folder of the torch weights it reads (relative to the model
#: folder): their initializers point into those safetensors files, nothing is stored twice
CONDITIONER_FILE = "conditioner/model.onnx"
UNET_FILE = "unet/model.onnx"
VAE_DECODER_FILE = "vae/decoder.onnx"
CLASSIFIER_FILE = "classifier/model.onnx"
EXPORT_FILE = "onnx.json"
#: the files a folder needs for the ONNX runtime (the classifier is optional)
REQUIRED_FILES = (CONDITIONER_FILE, UNET_FILE, VAE_DECODER_FILE, EXPORT_FILE)
CONTEXT_SHAPE = (1, 77, 768)
#: the scheduler the numpy loop implements (``[generator] scheduler``) and the overrides the
#: torch path applies to the model's scheduler config for it (dd_live.generate.schedulers)
SCHEDULER = "dpm++"
SCHEDULER_OVERRIDES = {"algorithm_type": "dpmsolver++", "solver_order": 2}
SCHEDULER_CLASS = "DPMSolverMultistepScheduler"
#: DPMSolverMultistepScheduler's defaults for the keys the numpy loop reads
_DPM_DEFAULTS: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02, "beta_schedule": "linear",
    "trained_betas": None, "solver_order": 2, "prediction_type": "epsilon", "thresholding": False,
    "algorithm_type": "dpmsolver++", "solver_type": "midpoint", "lower_order_final": True,
    "euler_at_final": False, "use_karras_sigmas": False, "use_exponential_sigmas": False,
    "use_beta_sigmas": False, "use_lu_lambdas": False, "use_flow_sigmas": False,
    "final_sigmas_type": "zero", "lambda_min_clipped": -math.inf, "variance_type": None,
    "timestep_spacing": "linspace", "steps_offset": 0, "rescale_betas_zero_snr": False,
    "use_dynamic_shifting": False,
}
RUNTIME_LABEL = "ONNX Runtime, CPU"


def missing_onnx_files(model_folder: str | Path) -> list[str]:
    """The exported files ``model_folder`` lacks for the ONNX runtime (empty: complete)."""
    folder = Path(model_folder)
    return [name for name in REQUIRED_FILES if not (folder / name).is_file()]


def export_command(model_folder: str | Path) -> str:
    return f"python -m training.demo.export_onnx {model_folder}"


# -- the starting noise, as torch's CPU generator draws it -------------------------------------------

_TWO_PI = np.float32(2.0 * math.pi)


def _uniform24(state: np.random.RandomState, n: int) -> np.ndarray:
    """``n`` floats in [0, 1): 24 random bits of each 32-bit MT19937 output, as torch's
    ``uniform_real_distribution<float>`` makes them."""
    raw = state.randint(0, 2**32, size=n, dtype=np.uint32)
    return ((raw & np.uint32(0xFFFFFF)).astype(np.float64) / (1 << 24)).astype(np.float32)


def _box_muller16(block: np.ndarray) -> np.ndarray:
    """torch's ``normal_fill_16``: uniforms ``[16]`` -> normals ``[16]`` (pairs j, j + 8)."""
    u1 = np.float32(1.0) - block[:8]  # [0, 1) -> (0, 1] for the log
    radius = np.sqrt(np.float32(-2.0) * np.log(u1))
    theta = _TWO_PI * block[8:]
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)])


def torch_randn(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Standard normal float32 noise of ``shape``, the values of
    ``torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))``.

    torch seeds MT19937 with the seed's low 32 bits (as ``numpy.random.RandomState`` does),
    fills the tensor with 24-bit uniforms, turns each block of 16 into normals by Box-Muller
    and, when the size is not a multiple of 16, redraws the last 16 uniforms and redoes the
    last block. (For fewer than 16 values torch draws them one by one with another method;
    that case is refused here.)
    """
    n = int(np.prod(shape))
    if n < 16:
        raise GenerationError(f"torch_randn needs at least 16 values, got shape {shape}")
    state = np.random.RandomState(int(seed) % 2**64 & 0xFFFFFFFF)
    data = _uniform24(state, n)
    out = np.empty(n, np.float32)
    for i in range(0, n - 15, 16):
        out[i:i + 16] = _box_muller16(data[i:i + 16])
    if n % 16:
        out[n - 16:] = _box_muller16(_uniform24(state, 16))
    return out.reshape(shape)


# -- DPM-Solver++ (multistep), diffusers' arithmetic in numpy ----------------------------------------

def _torch_linspace(start: float, end: float, steps: int) -> np.ndarray:
    """float32 ``torch.linspace``: start + step * i for the first half, end - step * (n - 1 - i)
    for the second (so both ends are exact)."""
    start32, end32 = np.float32(start), np.float32(end)
    step = (end32 - start32) / np.float32(steps - 1)
    idx = np.arange(steps)
    first = start32 + step * idx.astype(np.float32)
    second = end32 - step * (steps - idx - 1).astype(np.float32)
    return np.where(idx < steps // 2, first, second).astype(np.float32)


def scheduler_problem(config: dict[str, Any]) -> str | None:
    """Why :class:`DPMSolverMultistep` cannot run ``config`` (a scheduler_config.json with the
    "dpm++" overrides), or None when it can."""
    if config.get("_class_name", SCHEDULER_CLASS) != SCHEDULER_CLASS:
        return f"its scheduler is {config.get('_class_name')}, not {SCHEDULER_CLASS}"
    c = {**_DPM_DEFAULTS, **config, **SCHEDULER_OVERRIDES}
    checks = [
        (c["beta_schedule"] in ("linear", "scaled_linear") and c["trained_betas"] is None,
         f"beta_schedule {c['beta_schedule']!r}"),
        (c["prediction_type"] in ("epsilon", "v_prediction"), f"prediction {c['prediction_type']!r}"),
        (not c["thresholding"], "thresholding"),
        (c["solver_type"] in ("midpoint", "heun"), f"solver_type {c['solver_type']!r}"),
        (not any(c[k] for k in ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                                 "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting",
                                 "rescale_betas_zero_snr", "euler_at_final")),
         "a sigma schedule other than the plain one"),
        (c["final_sigmas_type"] in ("zero", "sigma_min"), f"final_sigmas {c['final_sigmas_type']!r}"),
        (c["lambda_min_clipped"] == -math.inf, "lambda_min_clipped"),
        (c["timestep_spacing"] in ("linspace", "leading", "trailing"),
         f"timestep_spacing {c['timestep_spacing']!r}"),
        (c["variance_type"] is None, f"variance_type {c['variance_type']!r}"),
    ]
    for ok, what in checks:
        if not ok:
            return f"its scheduler uses {what}, which the ONNX runtime's sampler does not implement"
    return None


class DPMSolverMultistep:
    """DPM-Solver++ of order 2 (multistep), deterministic, as diffusers' scheduler computes it.

    Args:
        config: the model's ``scheduler_config.json`` (the "dpm++" overrides are applied, as
            the torch path's ``make_scheduler("dpm++", ...)`` does).
        num_inference_steps: the steps of one image.

    ``timesteps`` ``[steps]`` int64; :meth:`start` before each image, then :meth:`step` once
    per timestep with the UNet's output: ``(model_output [B, C, h, w], sample) -> sample``.
    Scalars are float32 and combined in diffusers' order, so the result matches its to
    float32 rounding.
    """

    init_noise_sigma = 1.0

    def __init__(self, config: dict[str, Any], num_inference_steps: int) -> None:
        problem = scheduler_problem(config)
        if problem is not None:
            raise GenerationError(f"the ONNX runtime cannot sample this model: {problem}")
        c = {**_DPM_DEFAULTS, **config, **SCHEDULER_OVERRIDES}
        self.config = c
        n_train = int(c["num_train_timesteps"])
        if c["beta_schedule"] == "linear":
            betas = _torch_linspace(c["beta_start"], c["beta_end"], n_train)
        else:  # scaled_linear
            betas = _torch_linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n_train) ** 2
        alphas_cumprod = np.cumprod(np.float32(1.0) - betas, dtype=np.float32)
        steps = int(num_inference_steps)
        last = n_train  # lambda_min_clipped = -inf clips nothing
        spacing = c["timestep_spacing"]
        if spacing == "linspace":
            timesteps = np.linspace(0, last - 1, steps + 1).round()[::-1][:-1].copy().astype(np.int64)
        elif spacing == "leading":
            ratio = last // (steps + 1)
            timesteps = (np.arange(0, steps + 1) * ratio).round()[::-1][:-1].copy().astype(np.int64)
            timesteps += int(c["steps_offset"])
        else:  # trailing
            ratio = n_train / steps
            timesteps = np.arange(last, 0, -ratio).round().copy().astype(np.int64) - 1
        sigmas = (((np.float32(1.0) - alphas_cumprod) / alphas_cumprod) ** np.float32(0.5))
        sigmas = np.interp(timesteps, np.arange(0, len(sigmas)), sigmas.astype(np.float32))
        if c["final_sigmas_type"] == "zero":
            sigma_last = 0.0
        else:
            sigma_last = float(((1 - alphas_cumprod[0]) / alphas_cumprod[0]) ** 0.5)
        self.sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)
        self.timesteps = timesteps
        self.order = int(c["solver_order"])
        self.start()

    def start(self) -> None:
        """Forget the previous image's model outputs (diffusers' ``set_timesteps``)."""
        self._outputs: list[np.ndarray | None] = [None] * self.order
        self._lower_order_nums = 0
        self._index = 0

    def _alpha_sigma(self, sigma: np.float32) -> tuple[np.float32, np.float32]:
        alpha = np.float32(1.0) / np.sqrt(sigma * sigma + np.float32(1.0))
        return alpha, sigma * alpha

    def _lambda(self, index: int) -> tuple[np.float32, np.float32, np.float32]:
        alpha, sigma = self._alpha_sigma(self.sigmas[index])
        with np.errstate(divide="ignore"):  # sigma 0 at the end: lambda +inf, as in torch
            return alpha, sigma, np.float32(np.log(alpha) - np.log(sigma))

    def step(self, model_output: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """One step: the UNet's output at ``timesteps[i]`` and the sample -> the next sample."""
        i, n = self._index, len(self.timesteps)
        c = self.config
        lower_final = i == n - 1 and ((c["lower_order_final"] and n < 15)
                                      or c["final_sigmas_type"] == "zero")
        # convert_model_output: the predicted clean sample x0
        alpha_s0, sigma_s0, lambda_s0 = self._lambda(i)
        if c["prediction_type"] == "epsilon":
            x0 = (sample - sigma_s0 * model_output) / alpha_s0
        else:  # v_prediction
            x0 = alpha_s0 * sample - sigma_s0 * model_output
        x0 = x0.astype(np.float32)
        self._outputs = [*self._outputs[1:], x0]
        alpha_t, sigma_t, lambda_t = self._lambda(i + 1)
        h = np.float32(lambda_t - lambda_s0)
        expm = np.float32(np.exp(-h) - np.float32(1.0))
        if self.order == 1 or self._lower_order_nums < 1 or lower_final:
            prev = (sigma_t / sigma_s0) * sample - (alpha_t * expm) * x0
        else:  # order 2
            _, _, lambda_s1 = self._lambda(i - 1)
            h0 = np.float32(lambda_s0 - lambda_s1)
            r0 = np.float32(h0 / h)
            m0, m1 = self._outputs[-1], self._outputs[-2]
            d0, d1 = m0, (np.float32(1.0) / r0) * (m0 - m1)
            if c["solver_type"] == "midpoint":
                prev = ((sigma_t / sigma_s0) * sample - (alpha_t * expm) * d0
                        - np.float32(0.5) * (alpha_t * expm) * d1)
            else:  # heun
                prev = ((sigma_t / sigma_s0) * sample - (alpha_t * expm) * d0
                        + (alpha_t * (expm / h + np.float32(1.0))) * d1)
        if self._lower_order_nums < self.order:
            self._lower_order_nums += 1
        self._index += 1
        return np.asarray(prev, np.float32)


# -- ONNX Runtime sessions ---------------------------------------------------------------------------

def make_session(path: Path, threads: int, export: str | None = None) -> Any:
    """An ONNX Runtime CPU session for ``path`` with ``threads`` intra-op threads, sequential
    execution (one window at a time has no independent operators to overlap); ``export``: the
    command that makes the file again (named when it cannot be read)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # no busy-waiting threads: on a 2-core machine they would take the core acquisition and the
    # window need
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    # the graph reads its weights in place from the part's safetensors files: a garbled one
    # would be read as numbers, so it is refused first (one line naming the file)
    check_safetensors(path.parent)
    try:
        return ort.InferenceSession(str(path), sess_options=options,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        raise CheckpointError(f"{path} is not a readable ONNX model ({type(exc).__name__}: "
                              f"{exc}); export it again with "
                              f"{export or export_command(path.parent.parent)}") from None


def read_export(model_folder: str | Path) -> dict[str, Any]:
    """``onnx.json``: shapes and versions the graphs were exported with."""
    path = Path(model_folder) / EXPORT_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable ({exc}); export the model again with "
                              f"{export_command(model_folder)}") from None
    return record


class OnnxConditioner:
    """EEG window -> (context ``[1, 77, 768]``, clip ``[1, clip_dim]``) with ONNX Runtime."""

    runtime = "onnx"

    def __init__(self, path: Path, n_channels: int, n_times: int, threads: int = 1) -> None:
        self.session = make_session(path, threads)
        self.n_channels, self.n_times = int(n_channels), int(n_times)

    def __call__(self, eeg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``eeg [n_channels, n_times]`` (or ``[1, n_channels, n_times]``) float32."""
        window = np.ascontiguousarray(eeg, np.float32).reshape(1, self.n_channels, self.n_times)
        context, clip = self.session.run(None, {"eeg": window})
        return context, clip


@dataclass(frozen=True)
class OnnxGenerationResult:
    """The same fields as :class:`dd_live.generate.GenerationResult`."""

    images: list[Any]
    seeds: list[int]
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False


class OnnxImageGenerator:
    """Context ``[1, 77, 768]`` -> images with the exported UNet and VAE decoder.

    The loop of :class:`~dd_live.generate.ImageGenerator` for guidance <= 1 and the "dpm++"
    sampler: noise from the seed (:func:`torch_randn`), ``steps`` UNet calls with the numpy
    scheduler in between, the decoder, ``(x / 2 + 0.5).clip(0, 1) * 255`` rounded to uint8.
    ``interrupt()`` (any thread) stops before the next UNet step until ``clear_interrupt()``.
    """

    runtime = "onnx"
    use_graphs = False
    device = "cpu"
    dtype = "float32"

    def __init__(self, model_folder: str | Path, scheduler_config: dict[str, Any], *,
                 num_inference_steps: int, threads: int = 1, source: str = "") -> None:
        folder = Path(model_folder)
        record = read_export(model_folder)
        self.latent_shape = tuple(int(v) for v in record["latent"])
        self.image_size = int(record["image_size"])
        self.vae_scaling_factor = np.float32(record["vae_scaling_factor"])
        self.scheduler = DPMSolverMultistep(scheduler_config, num_inference_steps)
        self.num_inference_steps = int(num_inference_steps)
        self.unet = make_session(folder / UNET_FILE, threads)
        self.vae_decoder = make_session(folder / VAE_DECODER_FILE, threads)
        self.source = source or str(model_folder)
        self.threads = threads
        self._interrupt = threading.Event()

    def prepare(self) -> OnnxImageGenerator:
        return self

    @property
    def description(self) -> str:
        return (f"{self.source} ({SCHEDULER}, {self.num_inference_steps} steps, guidance 1, "
                f"{RUNTIME_LABEL})")

    def __repr__(self) -> str:
        return (f"<OnnxImageGenerator: {self.source} | {SCHEDULER} {self.num_inference_steps} "
                f"steps | {self.image_size} px | {self.threads} thread(s)>")

    def interrupt(self) -> None:
        self._interrupt.set()

    def clear_interrupt(self) -> None:
        self._interrupt.clear()

    @property
    def interrupted(self) -> bool:
        return self._interrupt.is_set()

    def initial_latents(self, seed: int) -> np.ndarray:
        """``[1, C, h, w]``: the torch path's starting noise for ``seed``."""
        return torch_randn(seed, self.latent_shape) * np.float32(self.scheduler.init_noise_sigma)

    def denoise(self, context: np.ndarray, latents: np.ndarray,
                on_step: Callable[[int], Any] | None = None) -> tuple[np.ndarray, int]:
        """The UNet loop from ``latents``; returns (latents, steps run) (fewer when interrupted)."""
        scheduler = self.scheduler
        scheduler.start()
        steps_run = 0
        for i, t in enumerate(scheduler.timesteps):
            if self._interrupt.is_set():
                break
            (noise,) = self.unet.run(None, {"sample": latents, "timestep": np.array([t], np.int64),
                                            "context": context})
            latents = scheduler.step(noise, latents)
            steps_run += 1
            if on_step is not None:
                on_step(i)
        return latents, steps_run

    def decode(self, latents: np.ndarray) -> np.ndarray:
        """Latents ``[1, C, h, w]`` -> pixels ``[1, H, W, 3]`` uint8."""
        (pixels,) = self.vae_decoder.run(None, {"latents": (latents / self.vae_scaling_factor)
                                                .astype(np.float32)})
        pixels = np.clip(pixels / np.float32(2.0) + np.float32(0.5), 0.0, 1.0)
        return np.round(pixels * np.float32(255.0)).astype(np.uint8).transpose(0, 2, 3, 1)

    def __call__(self, context: np.ndarray, seed: int | list[int], *,
                 on_step: Callable[[int], Any] | None = None) -> OnnxGenerationResult:
        """Images for ``context [1, 77, 768]`` float32 and one seed."""
        from PIL import Image

        t_start = time.perf_counter()
        context = np.ascontiguousarray(context, np.float32)
        if context.shape != CONTEXT_SHAPE:
            raise GenerationError(f"context must have shape {list(CONTEXT_SHAPE)}, got "
                                  f"{list(context.shape)}; the ONNX runtime makes one image a call")
        seeds = [seed] if isinstance(seed, int) else list(seed)
        if len(seeds) != 1:
            raise GenerationError(f"got {len(seeds)} seeds for one context")
        if not np.isfinite(context).all():
            raise GenerationError(
                "context has NaN or infinite values; check the EEG window (flat or saturated "
                "channels) and the encoder's weights")
        latents, steps_run = self.denoise(context, self.initial_latents(seeds[0]), on_step)
        t_unet = time.perf_counter() - t_start
        timings = {"unet": t_unet, "steps": float(steps_run),
                   "unet_per_step": t_unet / max(steps_run, 1)}
        if steps_run < len(self.scheduler.timesteps):
            timings["total"] = t_unet
            return OnnxGenerationResult(images=[], seeds=seeds, timings=timings, interrupted=True)
        t_decode = time.perf_counter()
        pixels = self.decode(latents)
        timings["decode"] = time.perf_counter() - t_decode
        timings["total"] = time.perf_counter() - t_start
        return OnnxGenerationResult([Image.fromarray(row) for row in pixels], seeds, timings)


class OnnxStateClassifier:
    """The demo's state classifier on ONNX Runtime: PIL images -> class indices, like
    :class:`dd_live.verdict.StateClassifier`'s ``predict``."""

    runtime = "onnx"

    def __init__(self, path: Path, class_names: tuple[str, ...], image_size: int) -> None:
        self.session = make_session(path, 1)
        self.class_names = tuple(class_names)
        self.image_size = int(image_size)

    def logits(self, images: list[Any]) -> np.ndarray:
        """``[n_images, n_classes]`` (one image a run: the graph has batch 1)."""
        size = self.image_size
        rows = []
        for im in images:
            pixels = np.asarray(im.convert("RGB").resize((size, size)), np.float32) / 127.5 - 1
            batch = np.ascontiguousarray(pixels.transpose(2, 0, 1)[None], np.float32)
            rows.append(self.session.run(None, {"images": batch})[0][0])
        return np.stack(rows)

    def predict(self, images: list[Any]) -> np.ndarray:
        """Class index per PIL image, ``[n_images]``."""
        return self.logits(images).argmax(-1)

    def __repr__(self) -> str:
        return f"OnnxStateClassifier({len(self.class_names)} classes, {self.image_size} px)"
