"""The static, captured hot path: fixed-shape calls replayed as CUDA graphs, stage clocks.

A :class:`CapturedCall` owns static input buffers of fixed shapes; each call copies its inputs
into them and runs ``fn`` on the buffers. On CUDA ``fn`` is captured once as a CUDA graph
(``torch.cuda.CUDAGraph``) and each call is a graph replay: one launch instead of hundreds, and
no host synchronisation. On CPU (or with graphs off) the very same path runs ``fn`` eagerly on the
buffers, so the static path can be tested without a GPU.

:class:`StageClock` times stages without synchronising: CUDA events on CUDA (read once, after
the image is back on the host), ``time.perf_counter`` on CPU.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import torch

from dd_live.errors import GenerationError

logger = logging.getLogger(__name__)

WARMUP_RUNS = 2  # eager runs on a side stream before capture (cuDNN/cuBLAS choose their kernels)

Inputs = Sequence[torch.Tensor | None]
Outputs = torch.Tensor | tuple[torch.Tensor, ...]


class CapturedCall:
    """``fn(*inputs)`` with fixed input shapes, captured as a CUDA graph when ``use_graph``.

    Args:
        fn: tensors (or None) in, a tensor or a tuple of tensors out; no host synchronisation
            inside (no ``.item()``, no data-dependent Python branches).
        example_inputs: inputs of the shapes, dtypes and device every call will use; ``None``
            entries stay ``None``.
        use_graph: capture a CUDA graph (needs every input on one CUDA device).
        pool: a memory pool shared with other captures that are never replayed concurrently.

    Outputs are returned as fresh tensors (cloned from the graph's static outputs), so a caller
    may keep them across calls.
    """

    def __init__(self, fn: Callable[..., Outputs], example_inputs: Inputs, *, use_graph: bool,
                 pool: tuple[int, int] | None = None) -> None:
        self.fn = fn
        self.static_inputs = [None if x is None else x.detach().clone() for x in example_inputs]
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_outputs: Outputs | None = None
        if use_graph:
            devices = {x.device for x in self.static_inputs if x is not None}
            if len(devices) != 1 or next(iter(devices)).type != "cuda":
                raise GenerationError(f"CUDA graph capture needs every input on one CUDA device, got {devices}")
            self._capture(pool)

    def _capture(self, pool: tuple[int, int] | None) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self.fn(*self.static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, pool=pool):
            self.static_outputs = self.fn(*self.static_inputs)

    def __call__(self, *inputs: torch.Tensor | None) -> Outputs:
        for buffer, value in zip(self.static_inputs, inputs, strict=True):
            if buffer is None:
                if value is not None:
                    raise GenerationError("a captured call got a tensor where it was captured without one")
                continue
            if value.shape != buffer.shape:
                raise GenerationError(
                    f"a captured call got shape {list(value.shape)}, captured for {list(buffer.shape)}"
                )
            buffer.copy_(value, non_blocking=True)
        if self.graph is None:
            return self.fn(*self.static_inputs)
        self.graph.replay()
        out = self.static_outputs
        return tuple(o.clone() for o in out) if isinstance(out, tuple) else out.clone()

    @property
    def captured(self) -> bool:
        return self.graph is not None


class StageClock:
    """Marks between stages; ``durations()`` -> seconds from each mark to the next.

    On CUDA the marks are events recorded on the current stream: marking never waits for the
    device, and ``durations()`` must be called after the results are on the host (it
    synchronises on the last event, which has then already completed).
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.names: list[str] = []
        self.marks: list[float | torch.cuda.Event] = []

    def mark(self, name: str) -> None:
        self.names.append(name)
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def durations(self) -> dict[str, float]:
        """``{name_of_mark_i: seconds from mark i to mark i+1}`` for all but the last mark."""
        if self.cuda and self.marks:
            self.marks[-1].synchronize()
        out = {}
        for i in range(len(self.marks) - 1):
            a, b = self.marks[i], self.marks[i + 1]
            out[self.names[i]] = a.elapsed_time(b) / 1e3 if self.cuda else b - a
        return out
