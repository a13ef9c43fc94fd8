"""File readers: any supported recording into a :class:`Recording` in memory.

:func:`read_recording` loads a file (or a dd-live session folder) into volts,
``(n_channels, n_times)``, with its annotations and what the reader found on the way
(:class:`FileEvent`: dropped packets as ``"gap"``, markers outside the data as ``"notice"``);
:class:`~dd_live.sources.replay.ReplaySource` streams a :class:`Recording` as if live.

Formats: every format MNE reads (FIF, EDF, BDF, GDF, BrainVision, EEGLAB, Neuroscan CNT), XDF
(pyxdf), OpenBCI GUI text files (``.txt``/``.csv`` starting with ``%OpenBCI``) and BrainFlow
CSV files. A damaged file is a one-line :class:`~dd_live.errors.FileFormatError` naming the
file and what is wrong with it.
"""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
import logging
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.units import (
    MICROVOLT,
    VOLT_TYPES,
    check_amplitude,
    parse_unit,
    plausible_scale,
)

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
# what MNE's readers warn when a file is shorter than its header says
TRUNCATION_HINTS = ("does not match the file size", "truncated", "file is smaller")
SESSION_EEG_NAMES = ("eeg.vhdr", "raw.fif", "eeg.fif")
SESSION_EVENTS = "events.jsonl"
SESSION_MARKER_TYPE = "Comment/"  # how MNE prefixes the BrainVision markers dd-live records
OPENBCI_MAGIC = "%OpenBCI"
# raw values beyond this are not measurements but a damaged file (a float read from the
# wrong bytes); no amplifier's numbers come near it in any unit
CORRUPT_MAGNITUDE = 1e15
XDF_FORMATS = {
    "float32": 4,
    "double64": 8,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "string": 0,
}
XDF_TAGS = range(1, 7)
CHANNEL_TYPES = VOLT_TYPES | {"misc", "stim", "resp", "bio", "gsr", "temperature", "syst"}
# a step in an XDF stream's time stamps longer than max(these) is a pause (a gap in the
# data): the time stamps on either side are dejittered separately. pyxdf's default, max(1 s,
# 500 samples), smears a 1.5-s pause at 250 Hz over the recording; shorter stalls (Bluetooth
# bursts stamped on arrival) stay inside one segment and lose nothing
XDF_BREAK_SECONDS = 1.0
XDF_BREAK_SAMPLES = 10
# a chunk longer than the rest of the file is a recording cut short when its length is
# plausible for one chunk (recorders write a chunk every second or so); longer is damage
XDF_MAX_CHUNK = 2**26


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


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _starts_with(path: Path, magic: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(magic)) == magic.encode()


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    listing = ", ".join(sorted(SUPPORTED))
    raise FileFormatError(
        f"{path} has an unsupported extension {path.suffix or '(none)'!r}; supported: "
        f"{listing} (.txt/.csv: OpenBCI GUI or BrainFlow files), or a dd-live session folder"
    )


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


def _session_file(folder: Path) -> Path:
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
        recording = _session_markers(read_recording(_session_file(path), board=board,
                                                    stream=stream))
        gaps = _session_gaps(path / SESSION_EVENTS, recording.n_times)
        if not gaps:
            return recording
        events = tuple(sorted(recording.events + gaps, key=lambda e: e.index))
        return dataclasses.replace(recording, events=events)
    suffix = _format_of(path)
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path} is empty (0 bytes)")
    if suffix in (".txt", ".csv") and _starts_with(path, OPENBCI_MAGIC):
        suffix = ".txt"
    fmt = SUPPORTED[suffix]
    stream = None if stream is None else str(stream)
    if stream is not None and suffix not in (".xdf", ".xdfz"):
        raise ConfigError(f"stream={stream!r} picks a stream of an XDF file; {path.name} is {fmt}")
    if suffix == ".txt" and not _starts_with(path, OPENBCI_MAGIC):
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
            return _read_mne(path, fmt)
        if suffix in (".xdf", ".xdfz"):
            return _read_xdf(path, stream)
        if suffix == ".txt":
            from dd_live.sources.openbci import read_openbci  # it builds on this module

            return read_openbci(path)
        return _read_brainflow_csv(path, board)
    except (FileFormatError, ConfigError) as err:
        text = _one_line(str(err))
        if text == str(err):
            raise
        raise type(err)(text) from err
    except Exception as err:  # readers fail in many ways on a damaged file
        reason = _one_line(str(err)) or type(err).__name__
        raise FileFormatError(f"{path.name} could not be read as {fmt}: {reason}") from err


def _unitless_scale(data: np.ndarray, unitless: list[int], n_eeg: int, name: str) -> float:
    """The factor to volts of the ``unitless`` rows of ``data``: judged by their size when
    none of the file's ``n_eeg`` EEG channels has a unit; when the others have one, the
    unitless ones are counters, triggers or the like and stay as they are."""
    if not unitless:
        return 1.0
    if len(unitless) < n_eeg:
        logger.info("%s: %d channel(s) without a unit kept as they are", name, len(unitless))
        return 1.0
    return plausible_scale(data[unitless], f"{name} (no unit on any channel)")


# -- MNE formats --------------------------------------------------------------------------
def _edf_header(path: Path) -> dict:
    """The fields of an EDF/BDF header that MNE's reader does not expose."""
    with open(path, "rb") as handle:
        fixed = handle.read(256)
        if len(fixed) < 256:
            raise FileFormatError(f"{path.name}: a {len(fixed)}-byte file has no EDF/BDF header")
        try:
            header_bytes = int(fixed[184:192].decode("ascii").strip())
            n_records = int(fixed[236:244].decode("ascii").strip())
            n_signals = int(fixed[252:256].decode("ascii").strip())
        except ValueError:
            raise FileFormatError(
                f"{path.name}: the EDF/BDF header's byte count, record count or signal count "
                "is not a number"
            ) from None
        signals = handle.read(n_signals * 256)
    if n_signals <= 0 or len(signals) < n_signals * 256:
        raise FileFormatError(f"{path.name}: the EDF/BDF header is incomplete")

    def field_of(offset: int, width: int) -> list[str]:
        base = n_signals * offset
        return [
            signals[base + k * width : base + (k + 1) * width].decode("latin-1").strip()
            for k in range(n_signals)
        ]

    try:
        per_record = [int(v) for v in field_of(216, 8)]
    except ValueError:
        raise FileFormatError(
            f"{path.name}: the EDF/BDF header's samples-per-record field is not a number"
        ) from None
    return {
        "header_bytes": header_bytes,
        "n_records": n_records,
        "labels": field_of(0, 16),
        "units": field_of(96, 8),
        "samples_per_record": per_record,
    }


def _check_record_count(path: Path, header: dict) -> bool:
    """True when the header's record count is -1 (unknown) and the data holds whole records."""
    if header["n_records"] != -1:
        return False
    width = 3 if path.suffix.lower() == ".bdf" else 2
    record_bytes = width * sum(header["samples_per_record"])
    data_bytes = path.stat().st_size - header["header_bytes"]
    if record_bytes <= 0 or data_bytes <= 0 or data_bytes % record_bytes:
        raise FileFormatError(
            f"{path.name}: the header leaves the record count open (-1) and the "
            f"{max(data_bytes, 0)} data bytes are not whole records of {record_bytes} bytes: "
            "the file is truncated"
        )
    logger.info(
        "%s: record count -1 in the header; %d whole records in the file",
        path.name,
        data_bytes // record_bytes,
    )
    return True


def _stim_markers(raw, names: list[str], bdf: bool) -> list[tuple[float, float, str]]:
    """Status/STI/trigger channels -> ``(onset_s, 0, value)`` as :func:`mne.find_events` finds
    them (a change to a higher non-zero value is an event). A BDF's Status keeps its trigger
    codes in the low 16 bits (the others are BioSemi system flags), masked as MNE advises."""
    import mne

    markers = []
    mask = {"mask": 2**16 - 1, "mask_type": "and"} if bdf else {}
    for name in names:
        events = mne.find_events(
            raw, stim_channel=name, shortest_event=1, initial_event=True, verbose="error", **mask
        )
        prefix = "" if len(names) == 1 else f"{name}:"
        for sample, _, value in events:
            onset = (int(sample) - raw.first_samp) / raw.info["sfreq"]
            markers.append((onset, 0.0, f"{prefix}{int(value)}"))
    if markers:
        logger.info("%d marker(s) from trigger channel(s) %s", len(markers), ", ".join(names))
    return markers


def _raw_array(data: np.ndarray, names: list[str], sfreq: float):
    """Trigger channels ``(n_channels, n_times)`` as an MNE Raw, for :func:`_stim_markers`."""
    import mne

    info = mne.create_info(names, sfreq, "stim")
    return mne.io.RawArray(data, info, verbose="error")


def _read_mne(path: Path, fmt: str) -> Recording:
    import mne

    edf = _edf_header(path) if fmt in ("EDF", "BDF") else None
    open_count = edf is not None and _check_record_count(path, edf)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = mne.io.read_raw(path, preload=True, verbose="warning")
    for warning in caught:
        text = _one_line(warning.message)
        if open_count and "does not match the file size" in text:
            continue  # the record count was -1 and the data holds whole records
        if any(hint in text.lower() for hint in TRUNCATION_HINTS):
            raise FileFormatError(f"{path.name} could not be read as {fmt}: truncated? {text}")
        logger.warning("%s: %s", path.name, text)
    types = list(raw.get_channel_types())
    data = raw.get_data()
    annotations = [
        (float(a["onset"]) - raw.first_time, float(a["duration"]), str(a["description"]))
        for a in raw.annotations
    ]
    stim = [name for name, kind in zip(raw.ch_names, types, strict=True) if kind == "stim"]
    if stim:
        annotations += _stim_markers(raw, stim, bdf=fmt == "BDF")
    eeg = [k for k, kind in enumerate(types) if kind in VOLT_TYPES]
    if edf is not None:  # an EDF/BDF whose channels have no physical dimension: by size
        units = dict(zip(edf["labels"], edf["units"]))
        unitless = [k for k in eeg if not units.get(raw.ch_names[k], "x").strip()]
        data[unitless] *= _unitless_scale(data, unitless, len(eeg), path.name)
    if eeg:
        check_amplitude(data[eeg], path.name)
    return Recording(
        data=data,
        sfreq=float(raw.info["sfreq"]),
        ch_names=tuple(raw.ch_names),
        ch_types=tuple(types),
        units=tuple("V" if t in VOLT_TYPES else "" for t in types),
        annotations=tuple(sorted(annotations)),
        name=path.name,
        source=str(path),
    )


# -- XDF ----------------------------------------------------------------------------------
def _xdf_value(info: dict, key: str, default: str = "") -> str:
    value = info.get(key, [default])
    return value[0] if value and value[0] is not None else default


def _xdf_channels(info: dict, n_channels: int):
    """``(names, units, types)`` from the stream's ``desc/channels``; a channel without a
    known type is EEG (the stream is read as EEG)."""
    names, units = [f"EEG{i + 1:03d}" for i in range(n_channels)], [""] * n_channels
    types = ["eeg"] * n_channels
    try:
        channels = info["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        return names, units, types
    for i, channel in enumerate(channels[:n_channels]):
        names[i] = _xdf_value(channel, "label", names[i]) or names[i]
        units[i] = _xdf_value(channel, "unit")
        kind = _xdf_value(channel, "type").strip().lower()
        types[i] = kind if kind in CHANNEL_TYPES else "eeg"
    return names, units, types


def _varlen(handle, where: str) -> tuple[int, int]:
    """``(value, bytes used)`` of an XDF variable-length integer."""
    width = handle.read(1)
    if not width:
        raise EOFError
    if width[0] not in (1, 4, 8):
        raise FileFormatError(f"invalid length byte {width[0]} {where}")
    raw = handle.read(width[0])
    if len(raw) < width[0]:
        raise FileFormatError(f"the file ends inside a length field {where}")
    return int.from_bytes(raw, "little"), 1 + width[0]


def _scan_xdf(path: Path) -> tuple[int, int] | None:
    """Walk the chunk structure before pyxdf reads it: every chunk inside the file, every
    sample count consistent with its chunk's size (a damaged length makes pyxdf allocate
    gigabytes or read the next chunks' bytes as samples).

    Returns None for a complete file; ``(complete, claimed)`` when the last chunk is cut short
    (a recording that was not closed): the bytes of the complete chunks and the length the
    cut chunk claims. Raises :class:`FileFormatError` for anything else.
    """
    opener = gzip.open if path.suffix.lower() == ".xdfz" else open
    size = path.stat().st_size if opener is open else None
    layouts: dict[int, tuple[int, int]] = {}  # stream id -> (n_channels, bytes per value)
    with opener(path, "rb") as handle:
        if handle.read(4) != b"XDF:":
            raise FileFormatError("it does not start with 'XDF:' (not an XDF file)")
        while True:
            start = handle.tell()
            where = f"at byte {start}"
            try:
                length, _ = _varlen(handle, where)
            except EOFError:
                return None
            except FileFormatError:
                if size is not None and size - start < 9:  # cut inside a length field
                    return start, 9
                raise
            tag_bytes = handle.read(2)
            if len(tag_bytes) < 2:
                return start, length
            tag = struct.unpack("<H", tag_bytes)[0]
            content_start = handle.tell()
            if tag not in XDF_TAGS or length < 2:
                raise FileFormatError(f"chunk {where} has an invalid tag {tag} or length {length}")
            if size is not None and content_start + length - 2 > size:
                if length <= XDF_MAX_CHUNK:
                    return start, length
                raise FileFormatError(
                    f"chunk {where} claims {length} bytes, beyond the end of the file "
                    f"({size} bytes)"
                )
            content = length - 2
            if tag == 2:
                _xdf_layout(handle.read(content), layouts, where)
            elif tag == 3:
                stream_id = struct.unpack("<I", handle.read(4))[0]
                n_samples, used = _varlen(handle, where)
                if stream_id not in layouts:
                    raise FileFormatError(f"samples chunk {where} of undeclared stream {stream_id}")
                n_channels, width = layouts[stream_id]
                payload = content - 4 - used
                smallest = n_samples * (1 + n_channels * (width or 2))
                largest = n_samples * (9 + n_channels * width) if width else payload
                if not smallest <= payload <= largest:
                    raise FileFormatError(
                        f"samples chunk {where} says {n_samples} samples of {n_channels} "
                        f"channels, which does not fit its {payload} bytes: damaged"
                    )
            handle.seek(content_start + content)


def _xdf_layout(content: bytes, layouts: dict, where: str) -> None:
    from xml.etree.ElementTree import ParseError, fromstring

    stream_id = struct.unpack("<I", content[:4])[0]
    try:
        info = fromstring(content[4:].decode("utf-8", "replace"))
        n_channels = int(info.findtext("channel_count", "0"))
        fmt = info.findtext("channel_format", "")
    except (ParseError, ValueError):
        raise FileFormatError(f"the stream header {where} is not valid XML") from None
    if n_channels < 1 or fmt not in XDF_FORMATS:
        raise FileFormatError(
            f"the stream header {where} declares {n_channels} channels of format {fmt!r}"
        )
    layouts[stream_id] = (n_channels, XDF_FORMATS[fmt])


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_one_line(record.getMessage()))


def _load_xdf(path: Path):
    import pyxdf

    try:
        cut = _scan_xdf(path)
    except FileFormatError as err:
        raise FileFormatError(f"{path.name} is damaged: {err}") from None
    source = str(path)
    if cut is not None:
        complete, claimed = cut
        logger.warning(
            "%s ends inside a chunk at byte %d (%d bytes claimed, %d there): a recording that "
            "was not closed? Reading the complete chunks before it",
            path.name,
            complete,
            claimed,
            path.stat().st_size - complete,
        )
        with open(path, "rb") as handle:
            source = io.BytesIO(handle.read(complete))
    capture = _Capture()
    pyxdf_logger = logging.getLogger("pyxdf.pyxdf")
    pyxdf_logger.addHandler(capture)
    try:
        streams, _ = pyxdf.load_xdf(
            source,
            jitter_break_threshold_seconds=XDF_BREAK_SECONDS,
            jitter_break_threshold_samples=XDF_BREAK_SAMPLES,
        )
    finally:
        pyxdf_logger.removeHandler(capture)
    if capture.messages:
        raise FileFormatError(f"{path.name} is damaged: {capture.messages[0]}")
    return streams


def _describe_stream(stream: dict) -> str:
    info = stream["info"]
    return (
        f"{_xdf_value(info, 'name')!r} (type {_xdf_value(info, 'type')!r}, "
        f"{len(stream['time_stamps'])} samples)"
    )


def _pick_xdf_stream(path: Path, streams: list[dict], wanted: str | None) -> dict:
    def numeric(s: dict) -> bool:
        info = s["info"]
        return _xdf_value(info, "channel_format") != "string" and (
            float(_xdf_value(info, "nominal_srate", "0") or 0) > 0
        )

    listing = "; ".join(_describe_stream(s) for s in streams) or "none"
    if wanted is not None:
        named = [
            s
            for s in streams
            if wanted in (_xdf_value(s["info"], "name"), _xdf_value(s["info"], "type"))
        ]
        if not named:
            raise ConfigError(f"{path.name} has no stream named {wanted!r}; streams: {listing}")
        if not numeric(named[0]) or not len(named[0]["time_stamps"]):
            raise FileFormatError(
                f"{path.name}: stream {_describe_stream(named[0])} is not a non-empty stream "
                f"with a sampling rate; streams: {listing}"
            )
        return named[0]
    usable = [s for s in streams if numeric(s) and len(s["time_stamps"])]
    eeg = [s for s in usable if _xdf_value(s["info"], "type").lower() == "eeg"]
    if not usable:
        raise FileFormatError(
            f"{path.name} holds no non-empty stream with a sampling rate (EEG); streams: {listing}"
        )
    chosen = (eeg or usable)[0]
    if len(usable) > 1:
        logger.info(
            "%s: reading stream %s; pick another with ?stream=NAME (streams: %s)",
            path.name,
            _describe_stream(chosen),
            listing,
        )
    return chosen


def one_hot_annotations(sample, labels) -> list[tuple[str, float]]:
    """mne-lsl's one-hot annotation sample -> ``[(description, duration_s)]``.

    mne-lsl's player streams annotations as one channel per description, the value on the
    channel of the annotation being its duration (``-1`` for a duration of 0), 0 elsewhere.
    """
    return [
        (str(label), max(float(value), 0.0))
        for label, value in zip(labels, sample)
        if value != 0 and np.isfinite(value)
    ]


def _marker_samples(stream: dict):
    """``(stamp, description, duration)`` of a string marker stream or of an mne-lsl one-hot
    annotation stream (numeric, irregular rate, type "annotations"); nothing for others."""
    info = stream["info"]
    if _xdf_value(info, "channel_format") == "string":
        for value, stamp in zip(stream["time_series"], stream["time_stamps"]):
            yield float(stamp), " ".join(str(v) for v in value), 0.0
        return
    irregular = float(_xdf_value(info, "nominal_srate", "0") or 0) == 0
    if not (irregular and _xdf_value(info, "type").lower() == "annotations"):
        return
    labels, _, _ = _xdf_channels(info, np.shape(stream["time_series"])[1])
    for sample, stamp in zip(stream["time_series"], stream["time_stamps"]):
        for text, duration in one_hot_annotations(sample, labels):
            yield float(stamp), text, duration


def _xdf_markers(streams: list[dict], stamps: np.ndarray, sfreq: float, name: str):
    """Markers of all string streams (and mne-lsl annotation streams) placed at the data
    sample whose (synchronised) time stamp is nearest to theirs. A marker more than one sample
    period from every sample (before, after or in a pause of the data) is not placed but
    reported as a ``"notice"``.

    Returns ``(annotations, notices)``.
    """
    annotations, notices = [], []
    for marker_stream in streams:
        for stamp, text, duration in _marker_samples(marker_stream):
            index = int(np.searchsorted(stamps, stamp))
            if index == len(stamps) or (
                index > 0 and stamp - stamps[index - 1] < stamps[index] - stamp
            ):
                index -= 1
            offset = stamp - float(stamps[index])
            if abs(offset) <= 1 / sfreq:
                annotations.append((index / sfreq, duration, text))
                continue
            where = (
                "before the data"
                if stamp < stamps[0]
                else "after the data"
                if stamp > stamps[-1]
                else "in a pause of the data"
            )
            message = (
                f"marker {text!r} at {stamp:.3f} s lies {where}, {abs(offset):.3f} s from the "
                "nearest sample; not placed"
            )
            logger.warning("%s: %s", name, message)
            notices.append(
                FileEvent(index, "notice", message, {"marker": text, "offset_s": offset})
            )
    return annotations, notices


def _xdf_gaps(stamps: np.ndarray, sfreq: float, name: str) -> list[FileEvent]:
    """Steps of more than 1.5 sample periods in the data's time stamps (pyxdf has dejittered
    them) are samples missing."""
    steps = np.diff(stamps) * sfreq
    gaps = []
    for k in np.flatnonzero(np.abs(steps - 1) > 0.5):
        n_missing = int(round(steps[k])) - 1
        if n_missing <= 0:
            message = f"time stamps go back by {-steps[k] / sfreq:.3f} s before sample {k + 1}"
            logger.warning("%s: %s", name, message)
            gaps.append(FileEvent(int(k) + 1, "notice", message))
            continue
        gaps.append(
            FileEvent(
                int(k) + 1,
                "gap",
                f"{n_missing} samples ({n_missing / sfreq:.3f} s) missing in the file",
                {"n_missing": n_missing},
            )
        )
    if gaps:
        logger.warning("%s: %d gap(s) in the data's time stamps", name, len(gaps))
    return gaps


def _read_xdf(path: Path, wanted: str | None = None) -> Recording:
    streams = _load_xdf(path)
    stream = _pick_xdf_stream(path, streams, wanted)
    info = stream["info"]
    sfreq = float(_xdf_value(info, "nominal_srate"))
    series = np.asarray(stream["time_series"], dtype=np.float64).T  # (n_channels, n_times)
    finite = series[np.isfinite(series)]
    if finite.size and np.abs(finite).max() > CORRUPT_MAGNITUDE:
        raise FileFormatError(
            f"{path.name} is damaged: stream {_describe_stream(stream)} holds values up to "
            f"{np.abs(finite).max():.3g}, which no amplifier produces"
        )
    stamps = np.asarray(stream["time_stamps"], dtype=np.float64)
    if not np.all(np.isfinite(stamps)):
        raise FileFormatError(f"{path.name} is damaged: non-finite time stamps")
    names, units, types = _xdf_channels(info, series.shape[0])
    volts = [k for k, kind in enumerate(types) if kind in VOLT_TYPES]
    scales = np.ones(len(names))
    for k in volts:  # other channels (stim, misc...) keep their values and unit
        scales[k] = parse_unit(units[k]) or np.nan
        units[k] = "V"
    unitless = np.flatnonzero(np.isnan(scales))
    scales[unitless] = _unitless_scale(series, list(unitless), len(volts), path.name)
    data = series * scales[:, None]
    if volts:
        check_amplitude(data[volts], path.name)
    annotations, notices = _xdf_markers(streams, stamps, sfreq, path.name)
    stim = [k for k, kind in enumerate(types) if kind == "stim"]
    if stim:
        annotations += _stim_markers(
            _raw_array(data[stim], [names[k] for k in stim], sfreq),
            [names[k] for k in stim],
            bdf=False,
        )
    events = sorted(_xdf_gaps(stamps, sfreq, path.name) + notices, key=lambda e: e.index)
    return Recording(
        data=data,
        sfreq=sfreq,
        ch_names=tuple(names),
        ch_types=tuple(types),
        units=tuple(units),
        annotations=tuple(sorted(annotations)),
        name=path.name,
        source=str(path),
        events=tuple(events),
    )


# -- BrainFlow CSV ------------------------------------------------------------------------
def _read_brainflow_csv(path: Path, board: int | str) -> Recording:
    from brainflow.board_shim import BoardShim

    from dd_live.sources.brainflow import resolve_board_id

    board_id = resolve_board_id(board)
    # rows on disk are samples: transpose to (n_rows, n_times)
    table = np.loadtxt(path, delimiter="\t", ndmin=2).T
    eeg_rows = BoardShim.get_eeg_channels(board_id)
    if table.shape[0] <= max(eeg_rows):
        raise FileFormatError(
            f"{path.name} has {table.shape[0]} columns, too few for board {board_id} "
            f"(EEG in rows {eeg_rows}): is board= the board that recorded it?"
        )
    try:
        names = tuple(BoardShim.get_eeg_names(board_id))
    except Exception:  # boards without channel names
        names = ()
    if len(names) != len(eeg_rows):
        names = tuple(f"EEG{i + 1}" for i in range(len(eeg_rows)))
    data = table[eeg_rows] * MICROVOLT
    check_amplitude(data, path.name)
    return Recording(
        data=data,
        sfreq=float(BoardShim.get_sampling_rate(board_id)),
        ch_names=names,
        ch_types=("eeg",) * len(names),
        units=("V",) * len(names),
        annotations=(),
        name=path.name,
        source=str(path),
    )
