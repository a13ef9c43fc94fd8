"""dd-live: real-time EEG-to-image.

Live EEG (LSL, BrainFlow, recorded files, a synthetic board) is filtered online, cut into
windows, encoded by an EEG encoder and used to condition a Stable Diffusion sampler.
The map of the package is ``docs/architecture.md``; every array is ``(n_channels, n_times)``.
"""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("dd_live")
logger.addHandler(logging.NullHandler())

__all__ = ["__version__", "logger"]
