"""The streaming core: ring buffers, online filters, the acquisition thread, windows,
quality checks and the preprocessing that turns a window into the model's input.

No torch, Qt or diffusers here. Every array is ``(n_channels, n_times)``.
"""

from dd_live.stream.acquisition import AcquisitionThread
from dd_live.stream.channels import ChannelMapper, ChannelRepair
from dd_live.stream.events import StreamEvent
from dd_live.stream.filters import StreamingFilter, design_filter, sos_group_delay
from dd_live.stream.mains import MainsFilter, line_noise_ratios
from dd_live.stream.nonfinite import NonFiniteWatch
from dd_live.stream.preprocess import WindowPreprocessor, resample_window, standardize
from dd_live.stream.quality import BadChannelTracker, QualityChecker, QualityResult
from dd_live.stream.ringbuffer import BufferRangeError, RingBuffer
from dd_live.stream.windows import MarkerWindower, PeriodicWindower, Window

__all__ = [
    "AcquisitionThread",
    "BadChannelTracker",
    "BufferRangeError",
    "ChannelMapper",
    "ChannelRepair",
    "MainsFilter",
    "NonFiniteWatch",
    "MarkerWindower",
    "PeriodicWindower",
    "QualityChecker",
    "QualityResult",
    "RingBuffer",
    "StreamEvent",
    "StreamingFilter",
    "Window",
    "WindowPreprocessor",
    "design_filter",
    "line_noise_ratios",
    "resample_window",
    "sos_group_delay",
    "standardize",
]
