"""Inputs of dd-live: every kind of source delivers volts as ``(n_channels, n_times)`` chunks.

Device libraries (pylsl, brainflow, mne, pyxdf) are imported only when a source needs them.
"""

from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.sources.brainflow import BrainFlowSource
from dd_live.sources.discovery import list_brainflow_boards, list_lsl_streams
from dd_live.sources.lsl import LSLSource
from dd_live.sources.player import LSLPlayer
from dd_live.sources.replay import Recording, ReplaySource, read_recording
from dd_live.sources.spec import open_source
from dd_live.sources.synthetic import (
    DEFAULT_STATES,
    SyntheticSource,
    SyntheticState,
    synthetic_eeg,
)

__all__ = [
    "DEFAULT_STATES",
    "BrainFlowSource",
    "LSLPlayer",
    "LSLSource",
    "Recording",
    "ReplaySource",
    "Source",
    "SourceEvent",
    "StreamInfo",
    "SyntheticSource",
    "SyntheticState",
    "empty_chunk",
    "list_brainflow_boards",
    "list_lsl_streams",
    "open_source",
    "read_recording",
    "synthetic_eeg",
]
