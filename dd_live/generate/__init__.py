"""The image generator: EEG context [B, 77, 768] -> images, with diffusers' Stable Diffusion parts.

Public API::

    ImageGenerator.from_pretrained(path_or_id, *, scheduler="dpm++", num_inference_steps=20,
        guidance_scale=1.0, device="auto", dtype="auto", attention="auto", tiny_vae=None,
        tiny_decoder=None, lcm_lora=None, lora=None, unet=None, compile=False, cuda_graphs=None,
        image_size=None, null_context=None, config=None)
    ImageGenerator.tiny(seed=0, image_size=64, ...)      # random weights, for tests and demos
        .prepare() -> self;  .warmup(progress=None) -> self  (captures the CUDA graphs)
        (context [B, 77, 768], seed) -> GenerationResult
        .interrupt();  .clear_interrupt();  .set_cuda_graphs(True | False | None)
        .configure(scheduler=..., num_inference_steps=..., guidance_scale=..., tiny_decoder=...)
    GenerationResult(images, seeds, timings, interrupted)
    ImageRetriever.from_folder(folder, clip_model=..., pretrained=...).query(clip_vec, k=4)
    choose_attention_backend(device, requested="auto") -> "xformers" | "sdpa"
    SCHEDULERS: "dpm++", "ddim", "ddim-trailing", "euler-a", "plms", "lcm", "tcd"

open_clip is imported only by the retriever, and only when one is built. The names above are
imported on first use, so ``dd_live.generate.onnx_runtime`` (the ONNX Runtime CPU path: numpy
and onnxruntime only) loads without torch or diffusers.
"""

import importlib
from typing import Any

_NAMES = {
    "choose_attention_backend": "backend",
    "GenerationResult": "generator",
    "GeneratorSettings": "generator",
    "ImageGenerator": "generator",
    "ImageRetriever": "retrieval",
    "SCHEDULERS": "schedulers",
    "TimeConditioner": "timecond",
}

__all__ = [
    "SCHEDULERS",
    "GenerationResult",
    "GeneratorSettings",
    "ImageGenerator",
    "ImageRetriever",
    "TimeConditioner",
    "choose_attention_backend",
]


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
