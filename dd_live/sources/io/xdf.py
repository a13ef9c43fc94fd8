"""XDF (``.xdf``, ``.xdfz``), read with pyxdf after :mod:`~dd_live.sources.io.xdf_chunks` has
checked the file's chunks: one numeric stream as the data (EEG by default, ``stream=`` picks
another), every string marker stream (and mne-lsl annotation stream) placed at the nearest
sample, pauses in the time stamps as gaps. A file cut short (or damaged part way) is read up to
its last complete chunk, with a warning."""

from __future__ import annotations

import gzip
import io
import logging
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.io.base import FileEvent, Recording, one_line, unitless_scale
from dd_live.sources.io.stim import raw_array, stim_markers
from dd_live.sources.io.xdf_chunks import ChunkScan, scan_xdf
from dd_live.sources.units import VOLT_TYPES, check_amplitude, parse_unit

logger = logging.getLogger(__name__)

# raw values beyond this are not measurements but a damaged file (a float read from the
# wrong bytes); no amplifier's numbers come near it in any unit
CORRUPT_MAGNITUDE = 1e15
CHANNEL_TYPES = VOLT_TYPES | {"misc", "stim", "resp", "bio", "gsr", "temperature", "syst"}
# a step in an XDF stream's time stamps longer than max(these) is a pause (a gap in the
# data): the time stamps on either side are dejittered separately. pyxdf's default, max(1 s,
# 500 samples), smears a 1.5-s pause at 250 Hz over the recording; shorter stalls (Bluetooth
# bursts stamped on arrival) stay inside one segment and lose nothing
XDF_BREAK_SECONDS = 1.0
XDF_BREAK_SAMPLES = 10


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


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(one_line(record.getMessage()))


def _sound_part(path: Path, name: str, scan: ChunkScan):
    """The complete chunks before a cut or damaged one, as pyxdf's input (a file object),
    with a warning saying what was left out; the damage itself when nothing comes before it."""
    if scan.damaged and not scan.n_samples_chunks:
        raise FileFormatError(f"{name} is damaged: {scan.problem}")
    if scan.damaged:
        logger.warning(
            "%s is damaged: %s. Reading the %d complete chunks before it (%s bytes); the rest "
            "of the file is left out",
            name,
            scan.problem,
            scan.n_chunks,
            scan.complete,
        )
    else:
        logger.warning(
            "%s ends inside a chunk at byte %d (%s): a recording that was not closed? Reading "
            "the complete chunks before it",
            name,
            scan.complete,
            scan.problem,
        )
    opener = gzip.open if path.suffix.lower() == ".xdfz" else open
    with opener(path, "rb") as handle:
        return io.BytesIO(handle.read(scan.complete))


def _load_xdf(path: Path) -> tuple[list[dict], ChunkScan | None]:
    """pyxdf's streams of the file's sound part, and what the chunk scan found (None: the
    whole file is sound)."""
    import pyxdf

    try:
        scan = scan_xdf(path)
    except FileFormatError as err:
        raise FileFormatError(f"{path.name} is damaged: {err}") from None
    source = str(path) if scan is None else _sound_part(path, path.name, scan)
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
    return streams, scan


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


def read_xdf(path: Path, wanted: str | None = None) -> Recording:
    streams, scan = _load_xdf(path)
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
    scales[unitless] = unitless_scale(series, list(unitless), len(volts), path.name)
    data = series * scales[:, None]
    if volts:
        check_amplitude(data[volts], path.name)
    annotations, notices = _xdf_markers(streams, stamps, sfreq, path.name)
    stim = [k for k, kind in enumerate(types) if kind == "stim"]
    if stim:
        annotations += stim_markers(
            raw_array(data[stim], [names[k] for k in stim], sfreq),
            [names[k] for k in stim],
            bdf=False,
        )
    events = sorted(_xdf_gaps(stamps, sfreq, path.name) + notices, key=lambda e: e.index)
    if scan is not None and scan.damaged:  # said where the data stops, as a replay shows it
        message = f"the file is damaged after this sample ({scan.problem}); the rest is not read"
        events.append(FileEvent(data.shape[1] - 1, "notice", message, {"byte": scan.complete}))
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
