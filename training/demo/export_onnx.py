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
before it is kept. (The export itself is :func:`training.onnx_export.export_graph`, shared with
the personal route's decoders.)
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from dd_live.generate.onnx_runtime import (
    CLASSIFIER_FILE,
    CONDITIONER_FILE,
    EXPORT_FILE,
    UNET_FILE,
    VAE_DECODER_FILE,
)
from training.onnx_export import OPSET
from training.onnx_export import export_graph as _export

logger = logging.getLogger(__name__)


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
