"""File readers: any supported recording into a :class:`Recording` in memory.

:func:`read_recording` loads a file (or a dd-live session folder) into volts,
``(n_channels, n_times)``, with its annotations; :class:`~dd_live.sources.replay.ReplaySource`
streams a :class:`Recording` as if live.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError, FileFormatError

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
OTHER_FORMATS = {".xdf": "XDF", ".xdfz": "XDF", ".csv": "BrainFlow CSV"}
SUPPORTED = {**MNE_FORMATS, **OTHER_FORMATS}
# what MNE's readers warn when a file is shorter than its header says
TRUNCATION_HINTS = ("does not match the file size", "truncated", "file is smaller")
SESSION_EEG_NAMES = ("raw.fif", "eeg.fif")
VOLT_TYPES = {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs"}
MICROVOLT = 1e-6
XDF_UNIT_SCALES = {"microvolts": 1e-6, "uv": 1e-6, "µv": 1e-6, "millivolts": 1e-3, "mv": 1e-3}


@dataclass(frozen=True)
class Recording:
    """A whole recording in memory.

    Attributes:
        data: ``(n_channels, n_times)`` float64, volts for EEG-like channels.
        sfreq: Hz.
        ch_names, ch_types, units: one per channel.
        annotations: ``(onset_s, duration_s, description)`` from the start of ``data``,
            sorted by onset.
        name: a human-readable name (the file's).
        source: the path read.
    """

    data: np.ndarray
    sfreq: float
    ch_names: tuple[str, ...]
    ch_types: tuple[str, ...]
    units: tuple[str, ...]
    annotations: tuple[tuple[float, float, str], ...]
    name: str
    source: str

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


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix in sorted(SUPPORTED, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    listing = ", ".join(sorted(SUPPORTED))
    raise FileFormatError(
        f"{path} has an unsupported extension {path.suffix or '(none)'!r}; supported: "
        f"{listing}, or a dd-live session folder. Convert other files with MNE first."
    )


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


def read_recording(path: str | Path, *, board: int | str | None = None) -> Recording:
    """Load a recording: any MNE format, XDF, a BrainFlow CSV (needs ``board``), or a folder.

    Raises:
        FileFormatError: missing, empty, unsupported or unreadable; the message names the file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileFormatError(f"no such file or folder: {path.resolve()}")
    if path.is_dir():
        path = _session_file(path)
    suffix = _format_of(path)
    if path.stat().st_size == 0:
        raise FileFormatError(f"{path} is empty (0 bytes)")
    fmt = SUPPORTED[suffix]
    if suffix == ".csv" and board is None:
        raise ConfigError(
            f"{path.name} is read as a BrainFlow CSV, which needs the id of the board that "
            "recorded it: file:rec.csv?board=-1 (or board=-1)"
        )
    try:
        if suffix in MNE_FORMATS:
            return _read_mne(path, fmt)
        if suffix in (".xdf", ".xdfz"):
            return _read_xdf(path)
        return _read_brainflow_csv(path, board)
    except (FileFormatError, ConfigError):
        raise
    except Exception as err:  # readers fail in many ways on a damaged file
        reason = str(err) or type(err).__name__
        raise FileFormatError(f"{path.name} could not be read as {fmt}: {reason}") from err


def _read_mne(path: Path, fmt: str) -> Recording:
    import mne

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = mne.io.read_raw(path, preload=True, verbose="warning")
    for warning in caught:
        text = str(warning.message)
        if any(hint in text.lower() for hint in TRUNCATION_HINTS):
            raise FileFormatError(f"{path.name} could not be read as {fmt}: truncated? {text}")
        logger.warning("%s: %s", path.name, text)
    types = tuple(raw.get_channel_types())
    annotations = tuple(
        (float(a["onset"]) - raw.first_time, float(a["duration"]), str(a["description"]))
        for a in raw.annotations
    )
    return Recording(
        data=raw.get_data(),
        sfreq=float(raw.info["sfreq"]),
        ch_names=tuple(raw.ch_names),
        ch_types=types,
        units=tuple("V" if t in VOLT_TYPES else "" for t in types),
        annotations=tuple(sorted(annotations)),
        name=path.name,
        source=str(path),
    )


def _xdf_value(info: dict, key: str, default: str = "") -> str:
    value = info.get(key, [default])
    return value[0] if value and value[0] is not None else default


def _xdf_channels(info: dict, n_channels: int):
    names, units = [f"EEG{i + 1:03d}" for i in range(n_channels)], [""] * n_channels
    try:
        channels = info["desc"][0]["channels"][0]["channel"]
    except (KeyError, IndexError, TypeError):
        return names, units
    for i, channel in enumerate(channels[:n_channels]):
        names[i] = _xdf_value(channel, "label", names[i])
        units[i] = _xdf_value(channel, "unit")
    return names, units


def _read_xdf(path: Path) -> Recording:
    import pyxdf

    streams, _ = pyxdf.load_xdf(str(path))
    numeric = [
        s
        for s in streams
        if float(_xdf_value(s["info"], "nominal_srate", "0")) > 0
        and _xdf_value(s["info"], "channel_format") != "string"
    ]
    eeg = [s for s in numeric if _xdf_value(s["info"], "type").lower() == "eeg"] or numeric
    if not eeg:
        raise FileFormatError(f"{path.name} holds no stream with a sampling rate (EEG)")
    stream = eeg[0]
    info = stream["info"]
    series = np.asarray(stream["time_series"], dtype=np.float64).T  # (n_channels, n_times)
    names, units = _xdf_channels(info, series.shape[0])
    scales = np.array([XDF_UNIT_SCALES.get(u.lower(), 1.0) for u in units])[:, None]
    t0 = float(stream["time_stamps"][0])
    annotations = []
    for marker in streams:
        if _xdf_value(marker["info"], "channel_format") != "string":
            continue
        for value, stamp in zip(marker["time_series"], marker["time_stamps"]):
            annotations.append((float(stamp) - t0, 0.0, " ".join(str(v) for v in value)))
    return Recording(
        data=series * scales,
        sfreq=float(_xdf_value(info, "nominal_srate")),
        ch_names=tuple(names),
        ch_types=("eeg",) * len(names),
        units=("V",) * len(names),
        annotations=tuple(sorted(annotations)),
        name=path.name,
        source=str(path),
    )


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
    return Recording(
        data=table[eeg_rows] * MICROVOLT,
        sfreq=float(BoardShim.get_sampling_rate(board_id)),
        ch_names=names,
        ch_types=("eeg",) * len(names),
        units=("V",) * len(names),
        annotations=(),
        name=path.name,
        source=str(path),
    )
