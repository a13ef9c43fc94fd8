"""Safetensors files checked before a library reads them, without torch.

The header of a ``.safetensors`` file says where each tensor lies; a file cut short, still being
copied or overwritten with other bytes fails that check. :func:`check_safetensors` runs it for
the torch loaders (``dd_live.model.safe_load`` re-exports it) and for the ONNX Runtime path,
whose graphs read their weights in place from the same files: without the check a garbled file
would be read as numbers (NaN images) instead of refused.
"""

from __future__ import annotations

from pathlib import Path

from dd_live.errors import CheckpointError

SAFETENSORS_SUFFIX = ".safetensors"


def garbled_error(path: Path, exc: Exception) -> CheckpointError:
    """The one-line refusal of a garbled safetensors file ``path`` (``exc``: why it failed)."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return CheckpointError(
        f"{path} is not a readable safetensors file ({reason}): it is truncated, still being "
        "copied or downloaded, or damaged; copy or download it again"
    )


def check_safetensors(path: str | Path) -> None:
    """Check, before a library loads them, that the safetensors files at ``path`` (the file,
    or every ``*.safetensors`` below a folder) open: a header of the length it says, valid
    JSON, tensor offsets that cover the data exactly. Reads the headers only (memory-mapped).
    Other paths (a hub id, a ``.bin`` file) are left to their loader.

    Raises CheckpointError naming the first garbled file.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob(f"*{SAFETENSORS_SUFFIX}"))
    else:
        files = [path] if path.suffix == SAFETENSORS_SUFFIX and path.is_file() else []
    for file in files:
        try:
            with safe_open(file, framework="numpy") as handle:
                handle.keys()
        except (SafetensorError, OSError) as exc:
            raise garbled_error(file, exc) from None
