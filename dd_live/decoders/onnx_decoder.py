"""The torch decoders of a personal model on ONNX Runtime's CPU provider (numpy + onnxruntime).

``python -m training.decoder`` writes, beside a conv or DreamDiffusion decoder's weights,
``decoder/model.onnx``: ``eeg [1, n_channels, n_times]`` float32 -> ``embedding [1, dim]``
float32 (the decoder's ``embed``: the target space's ``z`` scaled back). The graph reads its
weights in place from ``decoder/model.safetensors`` (nothing is stored twice); an existing folder
is exported with ``python -m training.decoder --export-onnx MODEL``.

:func:`decoder_runtime` resolves ``[generator] runtime`` for a decoder folder: ``"torch"``
loads the torch module, ``"onnx"`` the graph (a folder without it is a ConfigError giving the
export command), ``"auto"`` the graph when the file is there. Either way the decoder runs on
the CPU (one window at a time); the ridge decoder is NumPy on every runtime.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.decoders.base import check_window, read_meta
from dd_live.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
#: the decoder kinds that are torch modules (and so have an ONNX export)
TORCH_KINDS = ("conv", "dreamdiffusion")
RUNTIMES = ("auto", "torch", "onnx")
INPUT, OUTPUT = "eeg", "embedding"


def export_command(model_folder: str | Path) -> str:
    """The command that writes ``MODEL/decoder/model.onnx`` for an existing model folder."""
    return f"python -m training.decoder --export-onnx {model_folder}"


def torch_shape(kind: str, config: dict[str, Any]) -> tuple[int, int, int]:
    """``(n_channels, n_times, dim)`` of a torch decoder from its ``config.json`` (no torch)."""
    try:
        if kind == "conv":
            return int(config["subject_channels"][0]), int(config["n_times"]), int(config["dim"])
        return int(config["n_in"]), int(config["encoder"]["n_times"]), int(config["dim"])
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise CheckpointError(f"a {kind} decoder config without its shape ({exc!r})") from None


def decoder_runtime(decoder_folder: str | Path, runtime: str = "auto") -> str:
    """``"onnx"``, ``"torch"`` or ``"numpy"`` (ridge) for the decoder in ``decoder_folder``.

    Raises:
        ConfigError: ``runtime = "onnx"`` for a torch decoder without ``model.onnx`` (one line
            with the export command), or an unknown runtime.
    """
    if runtime not in RUNTIMES:
        raise ConfigError(f"[generator] runtime must be one of {RUNTIMES}, got {runtime!r}")
    folder = Path(decoder_folder)
    kind, _ = read_meta(folder)
    if kind not in TORCH_KINDS:
        return "numpy"
    if runtime == "torch":
        return "torch"
    if (folder / ONNX_FILE).is_file():
        return "onnx"
    if runtime == "onnx":
        raise ConfigError(f'[generator] runtime = "onnx" cannot run {folder.parent}: its {kind} '
                          f"decoder has no ONNX export ({folder / ONNX_FILE}); export it with "
                          f'`{export_command(folder.parent)}`, or set [generator] runtime = "torch"')
    logger.info("runtime auto: the %s decoder on torch (%s has no %s; %s makes it)", kind,
                folder, ONNX_FILE, export_command(folder.parent))
    return "torch"


class OnnxDecoder:
    """A conv / DreamDiffusion decoder's exported graph: ``encode(window [n_channels, n_times])
    -> [dim]`` float32, as the torch module's ``encode``.

    Args:
        folder: the decoder folder (``config.json``, ``model.safetensors``, ``model.onnx``).
        threads: ONNX Runtime's intra-op threads.
    """

    runtime = "onnx"

    def __init__(self, folder: str | Path, threads: int = 1) -> None:
        from dd_live.generate.onnx_runtime import make_session

        self.folder = Path(folder)
        self.kind, self.config = read_meta(self.folder, TORCH_KINDS)
        self.n_channels, self.n_times, self.dim = torch_shape(self.kind, self.config)
        command = export_command(self.folder.parent)
        self.session = make_session(self.folder / ONNX_FILE, threads, export=command)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        wanted = ([INPUT], [1, self.n_channels, self.n_times], [OUTPUT], [1, self.dim])
        got = ([i.name for i in inputs], list(inputs[0].shape) if inputs else [],
               [o.name for o in outputs], list(outputs[0].shape) if outputs else [])
        if got != wanted:
            raise CheckpointError(f"{self.folder / ONNX_FILE} takes {got[0]} {got[1]} -> {got[2]} "
                                  f"{got[3]} but the decoder's config.json says {wanted[1]} -> "
                                  f"{wanted[3]}: it is stale; export it again with `{command}`")

    def encode(self, eeg: np.ndarray) -> np.ndarray:
        """One window ``[n_channels, n_times]`` -> ``[dim]`` float32."""
        window = check_window(eeg, self.n_channels, self.n_times)
        (out,) = self.session.run(None, {INPUT: np.ascontiguousarray(window)[None]})
        return np.asarray(out[0], dtype=np.float32)

    def __repr__(self) -> str:
        return (f"<OnnxDecoder: {self.kind} | {self.n_channels} ch x {self.n_times} -> {self.dim} | "
                f"ONNX Runtime, CPU>")
