"""``dd-live sys-info``: versions and devices, for bug reports."""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import platform
import sys

PACKAGES = ("numpy", "scipy", "mne", "pylsl", "brainflow", "diffusers", "transformers",
            "PySide6-Essentials", "pyqtgraph", "open_clip_torch", "accelerate")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def collect() -> dict[str, str]:
    """Name -> one line of text, in reading order."""
    from dd_live import __version__

    info = {
        "dd-live": __version__,
        "python": f"{sys.version.split()[0]} ({platform.platform()})",
    }
    try:
        torch = importlib.import_module("torch")
        cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} device(s): "
                + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
                if torch.cuda.is_available() else "no CUDA device (CPU only)")
        info["torch"] = f"{torch.__version__} | {cuda}"
    except ImportError:
        info["torch"] = "not installed"
    for dist in PACKAGES:
        info[dist] = _version(dist)
    try:
        pylsl = importlib.import_module("pylsl")
        info["liblsl"] = str(pylsl.library_version())
    except Exception as exc:  # liblsl missing or broken: say so instead of failing
        info["liblsl"] = f"unavailable ({exc})"
    try:
        from dd_live.sources.discovery import list_lsl_streams

        streams = list_lsl_streams(timeout=0.5)
        info["LSL streams"] = ", ".join(s["name"] for s in streams) or "none visible"
    except Exception as exc:
        info["LSL streams"] = f"unavailable ({exc})"
    return info
