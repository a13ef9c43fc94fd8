"""Export a torch module to an ONNX graph that reads its weights in place from a safetensors file.

:func:`export_graph` is what every dd-live export uses (the demo model,
:mod:`training.demo.export_onnx`; the personal route's torch decoders, ``python -m
training.decoder``): ``torch.onnx.export`` (the dynamo exporter, fixed shapes), the exporter's
per-node metadata dropped, float32 initializers that float16 holds exactly stored as float16 +
a Cast (lossless; ONNX Runtime folds the Cast at load), the initializers found byte for byte in
the module's safetensors file turned into external data pointing into that file (nothing is
stored twice), and the graph checked against the module on random inputs before it is kept.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper

logger = logging.getLogger(__name__)

OPSET = 18
#: the largest difference an exported graph may show against its torch module on random inputs
TOLERANCE = 1e-4
#: initializers smaller than this stay float32 (the Cast would cost more than it saves)
MIN_HALF_ELEMENTS = 1024
HALF_SUFFIX = "__f16"


def export_graph(module: torch.nn.Module, inputs: tuple, path: Path, input_names: list[str],
                 output_names: list[str], weights: Path | None = None) -> Path:
    """Export ``module`` with fixed shapes, halve what float16 holds exactly, point the
    initializers found byte for byte in ``weights`` (the torch weights' safetensors file) at
    that file instead of copying them, check it against the module."""
    module = module.eval()
    with torch.inference_mode(False), torch.no_grad():
        # not optimised by the exporter: its constant folding would store transposed copies of
        # the weights; ONNX Runtime folds the same transposes when it loads the graph
        program = torch.onnx.export(module, inputs, dynamo=True, opset_version=OPSET,
                                    input_names=input_names, output_names=output_names,
                                    optimize=False, external_data=False, verbose=False)
    model = program.model_proto
    _strip_metadata(model)
    _halve_exact_initializers(model)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    if weights is not None:
        shared = _share_weights(model, weights, path.parent)
        logger.info("%s: %d initializers read from %s", path.name, shared, weights.name)
    onnx.save_model(model, str(path))
    _check_against_torch(module, inputs, path, input_names)
    logger.info("%s: %.2f MB", path, path.stat().st_size / 1e6)
    return path


def _strip_metadata(model: onnx.ModelProto) -> None:
    """Drop the exporter's per-node metadata (stack traces, source names): a third of a
    small graph's bytes, of no use at run time."""
    for node in model.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del model.graph.value_info[:]


def _safetensors_index(path: Path) -> tuple[dict[str, Any], int]:
    """(header: name -> {dtype, shape, data_offsets}, where the data starts) of a safetensors
    file (8-byte little-endian header length, JSON header, raw tensors)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def _share_weights(model: onnx.ModelProto, weights: Path, folder: Path) -> int:
    """Initializers whose bytes are a tensor of ``weights`` (same name after the wrapper's
    prefix, same bytes) become external data pointing into that file (relative to the graph's
    ``folder``): the graph does not store a second copy. Returns how many."""
    header, start = _safetensors_index(weights)
    raw = weights.read_bytes()
    location = os.path.relpath(weights, folder)
    n = 0
    for init in model.graph.initializer:
        name = init.name.removesuffix(HALF_SUFFIX)  # a wrapper's attribute name in front, or not
        entry = header.get(name, header.get(name.split(".", 1)[-1]))
        if entry is None or not init.raw_data:
            continue
        begin, end = entry["data_offsets"]
        if raw[start + begin:start + end] != init.raw_data:
            continue
        init.ClearField("raw_data")
        init.data_location = onnx.TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", str(start + begin)),
                           ("length", str(end - begin))):
            init.external_data.add(key=key, value=value)
        n += 1
    return n


def _halve_exact_initializers(model: onnx.ModelProto) -> int:
    """Store float32 initializers that float16 represents exactly as float16 + a Cast node.

    Lossless: only tensors whose every value survives the round trip are converted. Returns
    the number converted."""
    graph = model.graph
    casts, kept, n = [], [], 0
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            kept.append(init)
            continue
        values = numpy_helper.to_array(init)
        half = values.astype(np.float16)
        if values.size < MIN_HALF_ELEMENTS or not np.array_equal(half.astype(np.float32), values):
            kept.append(init)
            continue
        stored = numpy_helper.from_array(half, init.name + HALF_SUFFIX)
        kept.append(stored)
        casts.append(helper.make_node("Cast", [stored.name], [init.name],
                                      to=onnx.TensorProto.FLOAT, name=init.name + "_cast"))
        n += 1
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return n


def _check_against_torch(module: torch.nn.Module, inputs: tuple, path: Path,
                         input_names: list[str]) -> None:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # not the optimiser's notes on nodes it cannot fold
    session = ort.InferenceSession(str(path), sess_options=options,
                                   providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(0)
    probe = tuple(torch.randn(x.shape, generator=generator) if x.is_floating_point() else x
                  for x in inputs)
    with torch.no_grad():
        expected = module(*probe)
    expected = expected if isinstance(expected, tuple) else (expected,)
    got = session.run(None, {name: x.numpy() for name, x in zip(input_names, probe, strict=True)})
    for e, g in zip(expected, got, strict=True):
        diff = float(np.abs(e.numpy() - g).max())
        if not diff <= TOLERANCE:
            raise RuntimeError(f"{path.name} differs from its torch module by {diff:.2e} "
                               f"(tolerance {TOLERANCE:g}); the export is not kept")
