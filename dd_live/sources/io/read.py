"""One entry for every format: :func:`read_recording` picks the reader by the file's extension
(or first line) and turns whatever a reader raises on a damaged file into one line naming it."""

from __future__ import annotations

from pathlib import Path

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.io.base import (
    MNE_FORMATS,
    SUPPORTED,
    Recording,
    format_of,
    one_line,
    starts_with,
)
from dd_live.sources.io.brainflow_csv import read_brainflow_csv
from dd_live.sources.io.mne_raw import read_mne
from dd_live.sources.io.openbci import OPENBCI_MAGIC, read_openbci
from dd_live.sources.io.session import session_file, with_session_events
from dd_live.sources.io.xdf import read_xdf

XDF_SUFFIXES = (".xdf", ".xdfz")


def read_recording(
    path: str | Path, *, board: int | str | None = None, stream: str | None = None
) -> Recording:
    """Load a recording: any MNE format, XDF, an OpenBCI GUI file, a BrainFlow CSV (needs
    ``board``), or a dd-live session folder.

    Args:
        path: the file or folder.
        board: BrainFlow board id or name of a BrainFlow CSV.
        stream: XDF only: the name (or type) of the stream to read; default: the first
            non-empty stream of type EEG, else the first non-empty numeric stream.

    Raises:
        FileFormatError: missing, empty, unsupported or unreadable; one line naming the file.
        ConfigError: an option that does not fit the file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileFormatError(f"no such file or folder: {path.resolve()}")
    if path.is_dir():
        recording = read_recording(session_file(path), board=board, stream=stream)
        return with_session_events(path, recording)
    suffix = format_of(path)
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path} is empty (0 bytes)")
    if suffix in (".txt", ".csv") and starts_with(path, OPENBCI_MAGIC):
        suffix = ".txt"
    fmt = SUPPORTED[suffix]
    stream = None if stream is None else str(stream)
    if stream is not None and suffix not in XDF_SUFFIXES:
        raise ConfigError(f"stream={stream!r} picks a stream of an XDF file; {path.name} is {fmt}")
    if suffix == ".txt" and not starts_with(path, OPENBCI_MAGIC):
        raise FileFormatError(
            f"{path.name} is not an OpenBCI GUI file (its first line does not start with "
            f"{OPENBCI_MAGIC!r}); .txt files are read as OpenBCI GUI recordings"
        )
    if suffix == ".csv" and board is None:
        raise ConfigError(
            f"{path.name} is read as a BrainFlow CSV, which needs the id of the board that "
            "recorded it: file:rec.csv?board=-1 (or board=-1)"
        )
    try:
        if suffix in MNE_FORMATS:
            return read_mne(path, fmt)
        if suffix in XDF_SUFFIXES:
            return read_xdf(path, stream)
        if suffix == ".txt":
            return read_openbci(path)
        return read_brainflow_csv(path, board)
    except (FileFormatError, ConfigError) as err:
        text = one_line(str(err))
        if text == str(err):
            raise
        raise type(err)(text) from err
    except Exception as err:  # readers fail in many ways on a damaged file
        reason = one_line(str(err)) or type(err).__name__
        raise FileFormatError(f"{path.name} could not be read as {fmt}: {reason}") from err
