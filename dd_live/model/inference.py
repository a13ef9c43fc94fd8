"""Inference context: no autograd, bf16/fp16 autocast on CUDA, fp32 elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def inference_context(
    device: torch.device, autocast_dtype: torch.dtype | None = torch.bfloat16
) -> Iterator[None]:
    """``torch.inference_mode()`` plus autocast to ``autocast_dtype`` when ``device`` is CUDA.

    Pass ``autocast_dtype=None`` to run in the weights' own dtype. On CPU nothing is autocast.
    """
    use_autocast = device.type == "cuda" and autocast_dtype is not None
    with torch.inference_mode():
        if use_autocast:
            with torch.autocast("cuda", dtype=autocast_dtype):
                yield
        else:
            yield
