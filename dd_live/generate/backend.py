"""Device, precision and attention backend of the image generator.

The choice is made once, in ``ImageGenerator.prepare()``, and logged.
"""

from __future__ import annotations

import importlib
import logging

import torch

from dd_live.errors import ConfigError, GenerationError

logger = logging.getLogger(__name__)

ATTENTION_BACKENDS = ("auto", "xformers", "sdpa")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# shape of the probe that proves xformers' compiled kernels load: [batch, tokens, heads, head_dim]
_XFORMERS_PROBE_SHAPE = (1, 8, 1, 8)


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as given (validated)."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device {device!r} is not a torch device; use 'auto', 'cpu' or 'cuda[:N]'") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise GenerationError(
            f"device {device!r} was asked for but CUDA is not available here; use device='auto' or 'cpu'"
        )
    return resolved


def resolve_dtype(device: torch.device, dtype: str | torch.dtype = "auto") -> torch.dtype:
    """``"auto"`` -> float16 on CUDA, float32 on CPU. Half precision on CPU is refused."""
    if isinstance(dtype, torch.dtype):
        resolved = dtype
    elif dtype == "auto":
        resolved = torch.float16 if device.type == "cuda" else torch.float32
    elif dtype in DTYPES:
        resolved = DTYPES[dtype]
    else:
        raise ConfigError(f"dtype {dtype!r} is not one of 'auto', {', '.join(map(repr, DTYPES))}")
    if device.type == "cpu" and resolved != torch.float32:
        raise ConfigError(f"dtype {resolved} is not supported on CPU (too slow or unsupported); use 'float32'")
    return resolved


def _xformers_kernels_load(device: torch.device) -> bool:
    """True when xformers imports AND its compiled attention kernel runs on ``device``.

    Importing the Python package is not enough (diffusers' ``is_xformers_available`` stops
    there): a wheel built for another torch/CUDA imports fine and fails at the first call.
    """
    try:
        ops = importlib.import_module("xformers.ops")
        probe = torch.zeros(_XFORMERS_PROBE_SHAPE, device=device, dtype=torch.float16)
        ops.memory_efficient_attention(probe, probe, probe)
    except Exception as err:  # any failure means "not usable here"; the reason is logged
        logger.info("xformers is not usable on %s: %s", device, err)
        return False
    return True


def choose_attention_backend(device: str | torch.device, requested: str = "auto") -> str:
    """The attention backend to use on ``device``: ``"xformers"`` or ``"sdpa"``.

    ``"auto"`` picks xformers only when the device is CUDA, CUDA is available and xformers'
    compiled kernels actually run; everything else uses PyTorch SDPA (``AttnProcessor2_0``).
    Asking for ``"xformers"`` where it cannot run is an error, not a silent fallback.
    """
    if requested not in ATTENTION_BACKENDS:
        raise ConfigError(f"attention {requested!r} is not one of {', '.join(ATTENTION_BACKENDS)}")
    if requested == "sdpa":
        return "sdpa"
    device = torch.device(device)
    usable = device.type == "cuda" and torch.cuda.is_available() and _xformers_kernels_load(device)
    if requested == "xformers" and not usable:
        raise GenerationError(
            f"attention='xformers' was asked for but xformers cannot run on {device} (it needs CUDA and an "
            "xformers build matching this torch); use attention='auto' or 'sdpa'"
        )
    return "xformers" if usable else "sdpa"
