"""Things that happen in a stream, placed on the ring buffer's sample index axis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

EVENT_KINDS = (
    "marker",  # a stimulus or annotation from the source
    "gap",  # samples missing: a timestamp jump, or reported by the source
    "discontinuity",  # timestamps went backwards (a clock reset, a replay that looped)
    "stall",  # no data for stall_timeout seconds
    "resume",  # data again after a stall or an error
    "error",  # the source raised; the acquisition keeps trying
    "reconnect",
    "disconnect",
    "end",  # a finite source delivered everything
    "nonfinite",  # NaN/Inf samples begin (on the channels named in extra)
    "finite",  # ... and end
    "bad_channel",  # a channel the model reads is marked bad (replaced for the model)
    "channel_ok",  # ... and is good again
    "mains",  # the automatic notch chose a mains frequency (or none)
    "degraded",  # the stream's rate rules out the online filter or the model: shown raw, why
)


@dataclass(frozen=True)
class StreamEvent:
    """An event at an absolute sample index of the acquisition's ring buffers.

    Attributes:
        kind: one of :data:`EVENT_KINDS` (a source may add its own).
        sample_index: index of the first sample at or after the event.
        timestamp: seconds, on the sample timestamps' clock.
        description: marker text or a human-readable explanation.
        duration: seconds (a gap's length), >= 0.
        extra: small JSON-able details (``{"n_missing": 150}``).
    """

    kind: str
    sample_index: int
    timestamp: float
    description: str = ""
    duration: float = 0.0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind:
            raise ValueError("StreamEvent: kind must be a non-empty string")
        if self.sample_index < 0:
            raise ValueError(f"StreamEvent: sample_index must be >= 0, got {self.sample_index}")
        if not (self.duration >= 0 and math.isfinite(self.duration)):
            raise ValueError(f"StreamEvent: duration must be finite and >= 0, got {self.duration}")
