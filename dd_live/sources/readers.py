"""File readers, as callers import them: the readers themselves are one module per format in
:mod:`dd_live.sources.io`; this module names their entry and what it returns."""

from dd_live.sources.io import (
    MNE_FORMATS,
    SUPPORTED,
    FileEvent,
    Recording,
    one_hot_annotations,
    read_recording,
)

__all__ = ["MNE_FORMATS", "SUPPORTED", "FileEvent", "Recording", "one_hot_annotations",
           "read_recording"]
