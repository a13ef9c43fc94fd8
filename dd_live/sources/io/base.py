"""What every reader returns (:class:`Recording`, :class:`FileEvent`), the table of file
formats by extension, and the small helpers the readers share."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dd_live.errors import FileFormatError
from dd_live.sources.units import plausible_scale

logger = logging.getLogger(__name__)

MNE_FORMATS = {
    ".fif": "FIF",
    ".fif.gz": "FIF",
    ".edf": "EDF",
    ".bdf": "BDF",
    ".gdf": "GDF",
    ".vhdr": "BrainVision",
    ".set": "EEGLAB",
    ".cnt": "Neuroscan CNT",
}
OTHER_FORMATS = {
    ".xdf": "XDF",
    ".xdfz": "XDF",
    ".txt": "OpenBCI GUI",
    ".csv": "BrainFlow CSV",
}
SUPPORTED = {**MNE_FORMATS, **OTHER_FORMATS}


@dataclass(frozen=True)
class FileEvent:
    """Something a reader found in a file that is not an annotation.

    Attributes:
        index: the sample (of ``Recording.data``) it belongs before/at.
        kind: ``"gap"`` (``extra["n_missing"]`` samples missing before ``index``) or
            ``"notice"`` (e.g. a marker outside the data).
        description: human-readable.
        extra: small JSON-able details.
    """

    index: int
    kind: str
    description: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Recording:
    """A whole recording in memory.

    Attributes:
        data: ``(n_channels, n_times)`` float64, volts for EEG-like channels.
        sfreq: Hz.
        ch_names, ch_types, units: one per channel.
        annotations: ``(onset_s, duration_s, description)`` from the start of ``data``,
            sorted by onset (``onset_s * sfreq`` is the sample's index in ``data``).
        name: a human-readable name (the file's).
        source: the path read.
        events: :class:`FileEvent` sorted by index: samples missing between two samples of
            ``data`` (dropped packets) and notices.
    """

    data: np.ndarray
    sfreq: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    units: tuple[str, ...]
    annotations: tuple[tuple[float, float, str], ...]
    name: str
    source: str
    events: tuple[FileEvent, ...] = ()

    def __post_init__(self) -> None:
        if self.data.ndim != 2 or self.data.shape[0] != len(self.ch_names):
            raise FileFormatError(
                f"{self.name}: data of shape {self.data.shape} does not match "
                f"{len(self.ch_names)} channel names"
            )
        if self.data.shape[1] == 0:
            raise FileFormatError(f"{self.name} holds no samples")

    @property
    def n_times(self) -> int:
        return self.data.shape[1]

    @property
    def gaps(self) -> list[tuple[int, int]]:
        """``(index, n_missing)`` of each gap: samples missing just before ``index``."""
        return [(e.index, int(e.extra["n_missing"])) for e in self.events if e.kind == "gap"]


def one_line(text: str) -> str:
    """``text`` on one line (an error message from a library, for one)."""
    return " ".join(str(text).split())


def starts_with(path: Path, magic: str) -> bool:
    """True when the file's first bytes are ``magic``."""
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic.encode()


def format_of(path: Path) -> str:
    """The key of :data:`SUPPORTED` that the file's name ends with (the longest)."""
    name = path.name.lower()
    for suffix in sorted(SUPPORTED, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    listing = ", ".join(sorted(SUPPORTED))
    raise FileFormatError(
        f"{path} has an unsupported extension {path.suffix or '(none)'!r}; supported: "
        f"{listing} (.txt/.csv: OpenBCI GUI or BrainFlow files), or a dd-live session folder"
    )


def unitless_scale(data: np.ndarray, unitless: list[int], n_eeg: int, name: str) -> float:
    """The factor to volts of the ``unitless`` rows of ``data``: judged by their size when
    none of the file's ``n_eeg`` EEG channels has a unit; when the others have one, the
    unitless ones are counters, triggers or the like and stay as they are."""
    if not unitless:
        return 1.0
    if len(unitless) < n_eeg:
        logger.info("%s: %d channel(s) without a unit kept as they are", name, len(unitless))
        return 1.0
    return plausible_scale(data[unitless], f"{name} (no unit on any channel)")
