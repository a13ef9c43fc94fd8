"""dd-live session folders: the EEG file a folder holds (BrainVision ``eeg.vhdr``, or FIF), its
markers as the live session had them and the gaps it recorded in ``events.jsonl``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from dd_live.errors import FileFormatError
from dd_live.sources.io.base import MNE_FORMATS, FileEvent, Recording

SESSION_EEG_NAMES = ("eeg.vhdr", "raw.fif", "eeg.fif")
SESSION_EVENTS = "events.jsonl"
SESSION_MARKER_TYPE = "Comment/"  # how MNE prefixes the BrainVision markers dd-live records


def _session_gaps(path: Path, n_times: int) -> tuple[FileEvent, ...]:
    """The gaps a dd-live session recorded in its events file, so that a replay has them
    where the live session had them (samples missing, the clock moved on)."""
    if not path.is_file():
        return ()
    gaps = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        if not isinstance(event, dict) or event.get("type") != "gap":
            continue
        index, n_missing = event.get("sample"), event.get("n_missing")
        if isinstance(index, int) and isinstance(n_missing, int) and 0 < index < n_times:
            description = str(event.get("description", f"{n_missing} samples missing"))
            if n_missing > 0:
                gaps.append(FileEvent(index, "gap", description, {"n_missing": n_missing}))
    return tuple(gaps)


def _session_markers(recording: Recording) -> Recording:
    """A session folder's markers with the text the live session had: dd-live writes them as
    BrainVision "Comment" markers, which MNE reads as ``"Comment/<text>"``."""
    if not recording.source.endswith(".vhdr"):
        return recording
    annotations = tuple((onset, duration, text.removeprefix(SESSION_MARKER_TYPE))
                        for onset, duration, text in recording.annotations)
    return dataclasses.replace(recording, annotations=annotations)


def session_file(folder: Path) -> Path:
    """The EEG file of a session folder: raw.fif / eeg.fif, else the first readable file."""
    for name in SESSION_EEG_NAMES:
        if (folder / name).is_file():
            return folder / name
    for candidate in sorted(folder.iterdir()):
        if candidate.is_file() and candidate.name.lower().endswith(tuple(MNE_FORMATS)):
            return candidate
    raise FileFormatError(
        f"folder {folder} holds no EEG file: a dd-live session folder has raw.fif (or any of "
        f"{', '.join(sorted(MNE_FORMATS))})"
    )


def with_session_events(folder: Path, recording: Recording) -> Recording:
    """``recording`` (of the folder's EEG file) with the session's markers and gaps."""
    recording = _session_markers(recording)
    gaps = _session_gaps(folder / SESSION_EVENTS, recording.n_times)
    if not gaps:
        return recording
    events = tuple(sorted(recording.events + gaps, key=lambda e: e.index))
    return dataclasses.replace(recording, events=events)
