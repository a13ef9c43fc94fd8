"""Export a small dd-live model folder (the demo model) to ONNX, beside its torch weights.

``python -m training.demo.export_onnx dd_live/assets/demo`` writes, beside each part's torch
weights (the graph reads its weights from that part's safetensors file, so nothing is stored
twice: a graph file holds the operators and the few constants the exporter made):

- ``conditioner/model.onnx``: ``eeg [1, n_channels, n_times]`` float32 -> ``context [1, 77, 768]``,
  ``clip [1, clip_dim]``;
- ``unet/model.onnx``: ``sample [1, 4, h, w]``, ``timestep [1]`` int64, ``context [1, 77, 768]`` ->
  ``noise [1, 4, h, w]`` (one denoising step's model output; the scheduler's arithmetic runs in
  numpy, :mod:`dd_live.generate.onnx_runtime`);
- ``vae/decoder.onnx``: ``latents [1, 4, h, w]`` (already divided by the VAE's scaling factor)
  -> ``pixels [1, 3, H, W]`` in about [-1, 1];
- ``classifier/model.onnx`` (when the folder has ``classifier/``): ``images [1, 3, S, S]`` in
  [-1, 1] -> ``logits [1, n_classes]``;
- ``onnx.json``: the shapes, the opset and the torch version the graphs were exported with.

Every graph has fixed shapes (batch 1, the model's native size): the live path decodes one
window at a time. Weights that float16 holds exactly (the demo's UNet and VAE are stored in
float16) are kept in float16 in the file with a Cast to float32 in front, which ONNX Runtime
folds at load: the arithmetic is float32 on the very values the torch path computes with, and
the files are half the size. Each graph is checked against its torch module on random inputs
before it is kept.
"""

from __future__ import annotations

import argparse
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

from dd_live.generate.onnx_runtime import (
    CLASSIFIER_FILE,
    CONDITIONER_FILE,
    EXPORT_FILE,
    UNET_FILE,
    VAE_DECODER_FILE,
)

logger = logging.getLogger(__name__)

OPSET = 18
#: the largest difference an exported graph may show against its torch module on random inputs
TOLERANCE = 1e-4
#: initializers smaller than this stay float32 (the Cast would cost more than it saves)
MIN_HALF_ELEMENTS = 1024
HALF_SUFFIX = "__f16"


class _Conditioner(torch.nn.Module):
    def __init__(self, conditioner: torch.nn.Module) -> None:
        super().__init__()
        self.conditioner = conditioner

    def forward(self, eeg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.conditioner(eeg)
        return out["context"], out["clip"]


class _UNetStep(torch.nn.Module):
    def __init__(self, unet: torch.nn.Module) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor,
                context: torch.Tensor) -> torch.Tensor:
        return self.unet(sample, timestep, encoder_hidden_states=context, return_dict=False)[0]


class _VaeDecode(torch.nn.Module):
    def __init__(self, vae: torch.nn.Module) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latents, return_dict=False)[0]


def _export(module: torch.nn.Module, inputs: tuple, path: Path, input_names: list[str],
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
                                    optimize=False, external_data=False)
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

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
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


def export_model_folder(folder: str | Path) -> Path:
    """Export the conditioner, UNet, VAE decoder (and state classifier) of a dd-live model
    folder (graphs beside the weights, onnx.json); returns the folder."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from dd_live.model import load
    from dd_live.verdict import load_classifier

    folder = Path(folder)
    out = folder
    torch.manual_seed(0)
    conditioner = load(folder / "conditioner").float().eval()
    enc = conditioner.config.encoder
    unet = UNet2DConditionModel.from_pretrained(folder / "unet", torch_dtype=torch.float32).eval()
    vae = AutoencoderKL.from_pretrained(folder / "vae", torch_dtype=torch.float32).eval()
    latent = unet.config.sample_size
    channels = unet.config.in_channels
    context = torch.zeros(1, 77, 768)
    _export(_Conditioner(conditioner), (torch.zeros(1, enc.n_channels, enc.n_times),),
            out / CONDITIONER_FILE, ["eeg"], ["context", "clip"],
            folder / "conditioner" / "model.safetensors")
    _export(_UNetStep(unet), (torch.zeros(1, channels, latent, latent),
                              torch.tensor([999], dtype=torch.int64), context),
            out / UNET_FILE, ["sample", "timestep", "context"], ["noise"],
            folder / "unet" / "diffusion_pytorch_model.safetensors")
    _export(_VaeDecode(vae), (torch.zeros(1, vae.config.latent_channels, latent, latent),),
            out / VAE_DECODER_FILE, ["latents"], ["pixels"],
            folder / "vae" / "diffusion_pytorch_model.safetensors")
    record = {
        "opset": OPSET,
        "torch": torch.__version__,
        "eeg": [1, enc.n_channels, enc.n_times],
        "latent": [1, channels, latent, latent],
        "image_size": latent * 2 ** (len(vae.config.block_out_channels) - 1),
        "vae_scaling_factor": float(vae.config.scaling_factor),
        "files": [CONDITIONER_FILE, UNET_FILE, VAE_DECODER_FILE],
    }
    if (folder / "classifier").is_dir():
        classifier = load_classifier(folder / "classifier")
        size = classifier.config.image_size
        _export(classifier, (torch.zeros(1, 3, size, size),), out / CLASSIFIER_FILE,
                ["images"], ["logits"], folder / "classifier" / "model.safetensors")
        record["files"].append(CLASSIFIER_FILE)
        record["classifier_image_size"] = size
    (out / EXPORT_FILE).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="python -m training.demo.export_onnx",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the model folder (e.g. dd_live/assets/demo)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = export_model_folder(args.folder)
    record = json.loads((out / EXPORT_FILE).read_text(encoding="utf-8"))
    total = sum((out / name).stat().st_size for name in record["files"])
    logger.info("exported to %s (%.2f MB of graphs)", out, total / 1e6)
    return out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
