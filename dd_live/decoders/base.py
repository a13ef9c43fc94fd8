"""What every embedding-route decoder shares: the embedder's name, the folder format, features.

A decoder folder is our checkpoint format (as :mod:`dd_live.model.checkpoints`)::

    config.json         {"kind": "ridge" | "conv" | "dreamdiffusion" | "lowlevel",
                         "config": {...}, "dd_live_version": "..."}
    model.safetensors   the arrays (weights, the target space's mean and scale)

Arrays are read and written with ``safetensors.numpy``, so the ridge decoder and the low-level
head run with NumPy alone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dd_live import __version__
from dd_live.errors import CheckpointError, ConfigError
from dd_live.safetensors_files import garbled_error

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class EmbedderSpec:
    """The frozen image embedder a decoder decodes into.

    Attributes:
        name: the open_clip model name, e.g. ``"ViT-H-14"``.
        pretrained: its weights: an open_clip tag (``"laion2b_s32b_b79k"``) or a file name.
        dim: the embedding width (1024 for ViT-H-14).
        id: ``"name/tag"``, the one string compared with the gallery's and the renderer's.
    """

    name: str
    pretrained: str
    dim: int
    id: str

    def __post_init__(self) -> None:
        if not self.name or not self.id:
            raise ConfigError("an embedder needs a name and an id (e.g. ViT-H-14/laion2b_s32b_b79k)")
        if int(self.dim) < 1:
            raise ConfigError(f"embedder {self.id}: dim must be >= 1, got {self.dim}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbedderSpec:
        try:
            return cls(str(data["name"]), str(data.get("pretrained") or ""), int(data["dim"]),
                       str(data.get("id") or f"{data['name']}/{data.get('pretrained')}"))
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"an embedder entry needs name, pretrained, dim and id, got "
                                  f"{data!r} ({exc})") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def save_arrays(folder: str | Path, kind: str, config: dict[str, Any],
                arrays: dict[str, np.ndarray], extra: dict[str, Any] | None = None) -> Path:
    """Write ``folder/config.json`` + ``folder/model.safetensors`` (float32/int arrays);
    ``extra``: more top-level entries of ``config.json``."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(folder / WEIGHTS_FILE),
              metadata={"format": "np", "kind": kind})
    meta = {"kind": kind, **(extra or {}), "config": config, "dd_live_version": __version__}
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return folder


def read_meta(folder: str | Path, kinds: tuple[str, ...] | None = None) -> tuple[str, dict]:
    """``(kind, config)`` of a decoder folder; a missing or foreign file is a CheckpointError."""
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {CONFIG_FILE}: it is not a decoder folder written by "
                              "python -m training.decoder")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        kind, config = str(meta["kind"]), dict(meta["config"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a valid decoder config ({type(exc).__name__}: {exc})") \
            from None
    if kinds is not None and kind not in kinds:
        raise CheckpointError(f"{path} holds a {kind!r}, expected one of {kinds}")
    return kind, config


def load_arrays(folder: str | Path, expected: set[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of ``folder/model.safetensors``; ``expected``: exactly these names."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(folder) / WEIGHTS_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {WEIGHTS_FILE}; copy the whole model folder")
    try:
        arrays = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise garbled_error(path, exc) from None
    if expected is not None and set(arrays) != expected:
        raise CheckpointError(f"{path} does not match its {CONFIG_FILE}: missing "
                              f"{sorted(expected - set(arrays))}, unexpected {sorted(set(arrays) - expected)}")
    return arrays


def pooled_features(eeg: np.ndarray, pool: int) -> np.ndarray:
    """Flattened windows averaged over bins of ``pool`` samples (the tail short of a bin dropped).

    Args:
        eeg: ``[n_channels, n_times]`` or ``[n, n_channels, n_times]``.
        pool: samples per time bin (1: every sample).

    Returns:
        ``[n_channels * (n_times // pool)]`` or ``[n, n_channels * (n_times // pool)]`` float32,
        channel-major.
    """
    eeg = np.asarray(eeg, dtype=np.float32)
    single = eeg.ndim == 2
    batch = eeg[None] if single else eeg
    n, n_channels, n_times = batch.shape
    n_bins = n_times // pool
    if n_bins < 1:
        raise ConfigError(f"a window of {n_times} samples has no bin of {pool} samples")
    binned = batch[:, :, : n_bins * pool].reshape(n, n_channels, n_bins, pool).mean(axis=3)
    features = binned.reshape(n, n_channels * n_bins)
    return features[0] if single else features


def auto_pool(n_channels: int, n_times: int, max_features: int) -> int:
    """The smallest bin (samples) that keeps ``n_channels * n_times // pool <= max_features``."""
    pool = 1
    while n_channels * (n_times // pool) > max_features and pool < n_times:
        pool += 1
    return pool


def check_window(eeg: np.ndarray, n_channels: int, n_times: int) -> np.ndarray:
    """``eeg`` as a float32 ``[n_channels, n_times]`` array, or a ConfigError naming the shape."""
    eeg = np.asarray(eeg, dtype=np.float32)
    if eeg.shape != (n_channels, n_times):
        raise ConfigError(f"a window shaped {list(eeg.shape)} but the decoder wants "
                          f"[{n_channels}, {n_times}]; map and resample it first (WindowPreprocessor)")
    return eeg
