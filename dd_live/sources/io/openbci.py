"""OpenBCI GUI recordings (``OpenBCI-RAW-*.txt``) read into a :class:`Recording`.

The GUI (v5/v6, "%OpenBCI Raw EXG Data") writes ``%`` header lines (channel count, sample
rate, board), a row of column names, then one row per sample: ``Sample Index``, the EXG
channels in µV, accelerometer, digital/analog columns, a Unix ``Timestamp``, (v6) a
``Marker Channel`` and a formatted time. GUI v4 and older files have no column-name row and
are read by position. Boards: Cyton 8 ch at 250 Hz, Cyton+Daisy 16 ch at 125 Hz, Ganglion
4 ch at 200 Hz.

Dropped packets are found from the wrapping sample index (0-255 on a Cyton, even numbers on a
Cyton+Daisy), cross-checked with the time stamps for losses longer than one wrap, and become
``"gap"`` :class:`FileEvent` (a replay moves its clock on by their duration); a Ganglion's
index (two samples per packet id) cannot tell and is not used. The Marker column becomes
annotations. :func:`read_openbci` is called by :func:`~dd_live.sources.io.read_recording`
for ``.txt`` (and ``.csv``) files that start with ``%OpenBCI``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from dd_live.errors import FileFormatError
from dd_live.sources.io.base import FileEvent, Recording
from dd_live.sources.units import MICROVOLT, check_amplitude

logger = logging.getLogger(__name__)

OPENBCI_MAGIC = "%OpenBCI"  # the first line of every OpenBCI GUI recording

# the sample-index modulus of the boards whose index counts samples one by one (BrainFlow:
# the Cyton's packet counter 0-255; Cyton+Daisy: even numbers 0-254, one per pair of packets).
# A Ganglion packs two samples per packet under one id: its index does not tell drops.
OPENBCI_INDEX_MODULUS = {"cyton": 256, "daisy": 256}
OPENBCI_MAX_IRREGULAR = 0.05  # more irregular index steps than this: not a sample counter
OPENBCI_LEGACY_AUX = 3  # accelerometer/aux columns after the EXG channels in GUI v4 files
_HEADER_FIELD = re.compile(r"^%\s*([^=]+?)\s*=\s*(.+?)\s*$")
_OPENBCI_SEPARATOR = re.compile(r"\s*[,\t]\s*")  # ", " in most versions, tabs in some


def _openbci_header(path: Path, lines: list[str]) -> dict:
    fields = {}
    for line in lines:
        match = _HEADER_FIELD.match(line)
        if match:
            fields[match.group(1).lower()] = match.group(2)
    try:
        sfreq = float(fields["sample rate"].split()[0])
        n_channels = int(fields.get("number of channels", "-1"))
    except (KeyError, ValueError, IndexError):
        raise FileFormatError(
            f"{path.name}: the OpenBCI GUI header lacks a readable '%Sample Rate = N Hz' line "
            "(or its '%Number of channels = N' line is not a number)"
        ) from None
    n_channels = None if n_channels == -1 and "number of channels" not in fields else n_channels
    if not ((n_channels is None or n_channels > 0) and sfreq > 0):
        raise FileFormatError(
            f"{path.name}: the OpenBCI GUI header says {n_channels} channels at {sfreq:g} Hz"
        )
    board = fields.get("board", "")
    return {"n_channels": n_channels, "sfreq": sfreq, "board": board}


def _openbci_modulus(board: str, index: np.ndarray, step: int) -> int | None:
    key = re.sub(r"[^a-z]", "", board.lower())
    if "ganglion" in key:
        return None
    for name, modulus in OPENBCI_INDEX_MODULUS.items():
        if name in key:
            return modulus
    return int(np.nanmax(index)) + step


def _openbci_gaps(
    index: np.ndarray, unix: np.ndarray | None, sfreq: float, board: str, name: str
) -> list[FileEvent]:
    """Dropped packets from the wrapping sample index (0-255 on a Cyton), cross-checked with
    the Unix time stamps for losses longer than one wrap. Boards whose index does not count
    samples one by one (Ganglion) give none (logged)."""
    if index.size < 2 or not np.isfinite(index).all():
        return []
    diffs = np.diff(index)
    positive = diffs[diffs > 0]
    step = int(np.bincount(positive.astype(int)).argmax()) if positive.size else 1
    modulus = _openbci_modulus(board, index, step)
    steps = np.mod(diffs, modulus) / step if modulus else diffs
    if modulus is None or np.mean(steps != 1) > OPENBCI_MAX_IRREGULAR:
        logger.info(
            "%s: the sample index of board %s does not count samples one by one; dropped "
            "packets cannot be found from it",
            name,
            board or "?",
        )
        return []
    cycle = modulus // step
    gaps = []
    for k in np.flatnonzero(steps != 1):
        n_missing = int(round(steps[k])) - 1
        if n_missing < 0:  # the same index twice: wraps to a whole cycle
            n_missing += cycle
        if unix is not None and np.isfinite(unix[k : k + 2]).all():
            # longer than a wrap: the clock says how many cycles went by
            by_time = (unix[k + 1] - unix[k]) * sfreq - 1
            if by_time > n_missing + cycle / 2:
                n_missing += int(round((by_time - n_missing) / cycle)) * cycle
        if n_missing <= 0:
            continue
        gaps.append(
            FileEvent(
                int(k) + 1,
                "gap",
                f"{n_missing} sample(s) dropped (sample index {int(index[k])} -> "
                f"{int(index[k + 1])})",
                {"n_missing": n_missing},
            )
        )
    if gaps:
        total = sum(g.extra["n_missing"] for g in gaps)
        logger.warning(
            "%s: %d dropped packet stretch(es), %d sample(s) missing in all",
            name,
            len(gaps),
            total,
        )
    return gaps


def _openbci_table(
    path: Path, rows: list[str], columns: list[str], numeric: list[int], first_line: int
) -> np.ndarray:
    """``(n_times, n_columns)`` float64 of the ``numeric`` columns (NaN elsewhere): numpy's
    parser first, a row-by-row pass to say where when it fails."""
    table = np.full((len(rows), len(columns)), np.nan)
    separator = "," if "," in rows[0] else "\t"
    try:
        table[:, numeric] = np.loadtxt(rows, delimiter=separator, usecols=numeric, ndmin=2)
        return table
    except ValueError:
        pass  # find the line below
    for r, row in enumerate(rows):
        cells = _OPENBCI_SEPARATOR.split(row.strip())
        if len(cells) != len(columns):
            raise FileFormatError(
                f"{path.name}: line {first_line + r} has {len(cells)} values, the column "
                f"row {len(columns)}: truncated or damaged"
            )
        for c in numeric:
            try:
                table[r, c] = float(cells[c])
            except ValueError:
                raise FileFormatError(
                    f"{path.name}: line {first_line + r} column {columns[c]!r} is not a "
                    f"number: {cells[c].strip()[:30]!r}"
                ) from None
    return table


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _openbci_legacy_columns(path: Path, cells: list[str], n_channels: int | None) -> list[str]:
    """Column names for a GUI v4 (or older) file, which has none: the sample index, the EXG
    channels, three accelerometer/aux columns, then the time (formatted, and in v4 also Unix
    milliseconds). Without a '%Number of channels' line the count is what is left."""
    leading = next((k for k, c in enumerate(cells) if not _is_number(c)), len(cells))
    unix_last = len(cells) > leading and _is_number(cells[-1]) and float(cells[-1]) > 1e11
    if n_channels is None:
        n_channels = leading - 1 - OPENBCI_LEGACY_AUX
        if unix_last and leading == len(cells):
            n_channels -= 1
        if n_channels not in (4, 8, 16):
            raise FileFormatError(
                f"{path.name}: an OpenBCI GUI file without column names or a channel count, "
                f"and its {leading} numbers per line do not fit 4, 8 or 16 channels"
            )
        logger.info("%s: OpenBCI GUI v4 layout, %d channels", path.name, n_channels)
    if 1 + n_channels > leading:
        raise FileFormatError(
            f"{path.name}: the header says {n_channels} channels but its lines hold only "
            f"{leading} numbers"
        )
    columns = ["Sample Index", *(f"EXG Channel {k}" for k in range(n_channels))]
    columns += ["Other"] * (len(cells) - len(columns))
    if unix_last:
        columns[-1] = "Timestamp"
    return columns


def read_openbci(path: str | Path) -> Recording:
    """An OpenBCI GUI recording (v5/v6 "%OpenBCI Raw EXG Data"): ``%`` header lines, a row of
    column names, then one comma- (or tab-) separated row per sample; EXG channels in µV; the
    ``Timestamp`` column in Unix seconds (or milliseconds, older GUIs). GUI v4 and older files
    (no column-name row) are read by position."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as handle:
        text = handle.read()
    lines = text.splitlines()
    header = [line for line in lines if line.startswith("%")]
    body = [line for line in lines if line.strip() and not line.startswith("%")]
    meta = _openbci_header(path, header)
    if not body:
        raise FileFormatError(f"{path.name}: an OpenBCI GUI header without a column-name row")
    columns = [c.strip() for c in _OPENBCI_SEPARATOR.split(body[0].strip())]
    legacy = _is_number(columns[0])
    if legacy:  # GUI v4 and older: no column-name row
        columns = _openbci_legacy_columns(path, columns, meta["n_channels"])
    exg = [k for k, c in enumerate(columns) if c.lower().startswith(("exg channel", "eeg channel"))]
    if not exg or columns[0].lower() != "sample index":
        raise FileFormatError(
            f"{path.name}: the column-name row {body[0][:60]!r} is not the OpenBCI GUI's "
            "('Sample Index, EXG Channel 0, ...')"
        )
    if meta["n_channels"] is not None and len(exg) != meta["n_channels"]:
        raise FileFormatError(
            f"{path.name}: the header says {meta['n_channels']} channels but the column row "
            f"has {len(exg)} EXG columns"
        )
    wanted = ["sample index", "timestamp", "marker channel", "marker"]
    lowered = [c.lower() for c in columns]
    position = {w: lowered.index(w) for w in wanted if w in lowered}
    numeric = sorted({0, *exg, *position.values()})
    rows = body if legacy else body[1:]
    if rows and len(_OPENBCI_SEPARATOR.split(rows[-1].strip())) != len(columns):
        logger.warning(
            "%s: its last line is cut short (a recording that was not closed?); read the %d "
            "complete lines before it",
            path.name,
            len(rows) - 1,
        )
        rows = rows[:-1]
    if not rows:
        raise FileFormatError(f"{path.name} holds no samples after its column-name row")
    first_line = len(header) + (1 if legacy else 2)
    table = _openbci_table(path, rows, columns, numeric, first_line=first_line)
    sfreq = meta["sfreq"]
    data = table[:, exg].T * MICROVOLT
    check_amplitude(data, path.name)
    unix = None
    if "timestamp" in position:
        unix = table[:, position["timestamp"]]
        unix = unix / 1000.0 if np.nanmedian(unix) > 1e11 else unix  # Unix ms (older GUIs)
    events = _openbci_gaps(table[:, 0], unix, sfreq, meta["board"], path.name)
    annotations = []
    marker_column = position.get("marker channel", position.get("marker"))
    if marker_column is not None:
        values = table[:, marker_column]
        for k in np.flatnonzero(np.nan_to_num(values) != 0):
            annotations.append((k / sfreq, 0.0, f"{values[k]:g}"))
    names = tuple(f"EXG{k + 1}" for k in range(len(exg)))
    logger.info(
        "%s: OpenBCI GUI file, board %s, %d channels at %g Hz, %d samples",
        path.name,
        meta["board"] or "?",
        len(exg),
        sfreq,
        len(rows),
    )
    return Recording(
        data=data,
        sfreq=sfreq,
        ch_names=names,
        ch_types=("eeg",) * len(names),
        units=("V",) * len(names),
        annotations=tuple(annotations),
        name=path.name,
        source=str(path),
        events=tuple(events),
    )
