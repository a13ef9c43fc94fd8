"""EDF/BDF: the header fields MNE's reader does not check or expose (an open record count, the
channels' physical dimension), read before MNE reads the data."""

from __future__ import annotations

import logging
from pathlib import Path

from dd_live.errors import FileFormatError

logger = logging.getLogger(__name__)


def edf_header(path: Path) -> dict:
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


def check_record_count(path: Path, header: dict) -> bool:
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
