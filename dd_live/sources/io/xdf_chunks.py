"""The chunk structure of an XDF file, walked before pyxdf reads it.

XDF is a sequence of chunks (``[length][tag][content]``); pyxdf trusts every length and sample
count it reads, so a damaged one makes it allocate gigabytes (``MemoryError``) or read the next
chunks' bytes as samples. :func:`scan_xdf` checks each chunk against the file and each samples
chunk sample by sample, and says where the first damage is.
"""

from __future__ import annotations

import gzip
import io
import struct
from dataclasses import dataclass
from pathlib import Path

from dd_live.errors import FileFormatError

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
# a chunk longer than the rest of the file is a recording cut short when its length is
# plausible for one chunk (recorders write a chunk every second or so); longer is damage
XDF_MAX_CHUNK = 2**26
# content bytes of the chunks whose size is fixed: clock offset (stream id, two doubles) and
# boundary (a 16-byte signature)
FIXED_LENGTHS = {4: 20, 5: 16}
CHUNK_NAMES = {4: "clock offset", 5: "boundary"}


@dataclass(frozen=True)
class ChunkScan:
    """What :func:`scan_xdf` found where the readable part of a file ends.

    Attributes:
        complete: bytes (from the file's start, uncompressed) of the complete, sound chunks
            before the first cut or damaged one.
        n_chunks: how many chunks those are; ``n_samples_chunks`` of them hold samples.
        problem: what is wrong with the next chunk, naming it and its byte offset.
        damaged: True for damage (a length or count that cannot be), False for a file cut
            short inside its last chunk (a recording that was not closed).
    """

    complete: int
    n_chunks: int
    n_samples_chunks: int
    problem: str
    damaged: bool


class _Damage(Exception):
    """A chunk that cannot be what it says (internal to the scan)."""


def _size_text(n_bytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.1f} {unit}"
    return f"{n_bytes} bytes"


def _varlen(handle) -> int | None:
    """An XDF variable-length integer read from ``handle``; None at the end of the data."""
    width = handle.read(1)
    if not width:
        return None
    if width[0] not in (1, 4, 8):
        raise _Damage(f"an invalid length byte {width[0]} (1, 4 or 8)")
    raw = handle.read(width[0])
    if len(raw) < width[0]:
        return None
    return int.from_bytes(raw, "little")


def _walk_samples(content: bytes, at: int, n_channels: int, width: int, where: str) -> None:
    """Check that a samples chunk's ``content`` (stream id, sample count, samples) holds
    exactly the samples it says, each with a time-stamp byte count of 0 or 8 (the XDF
    specification's values: pyxdf reads anything else as 8 and loses its place). ``at``: the
    content's byte offset in the file, for the messages."""
    view = io.BytesIO(content)
    view.seek(4)
    n_samples = _varlen(view)
    if n_samples is None:
        raise _Damage(f"samples {where} ends inside its sample count")
    pos = view.tell()
    payload = len(content) - pos
    smallest = n_samples * (1 + n_channels * (width or 2))
    largest = n_samples * (9 + n_channels * width) if width else payload
    if not smallest <= payload <= largest:
        raise _Damage(
            f"samples {where} says {n_samples} samples of {n_channels} channels, which does "
            f"not fit its {payload} bytes: damaged"
        )
    if width:
        size = n_channels * width
        for flag in (0, 8):  # every sample stamped, or none: one look at the flags
            step = 1 + flag + size
            if payload == n_samples * step and content[pos::step].count(flag) == n_samples:
                return
    for k in range(n_samples):
        if pos >= len(content):
            raise _Damage(f"samples {where} ends at sample {k} of the {n_samples} it says")
        flag = content[pos]
        if flag not in (0, 8):
            raise _Damage(
                f"samples {where}: sample {k} (at byte {at + pos}) has a time-stamp byte "
                f"count of {flag}, where XDF allows 0 or 8"
            )
        pos += 1 + flag
        if width:
            pos += n_channels * width
            continue
        view.seek(pos)
        for _ in range(n_channels):  # strings: a length, then the bytes
            length = _varlen(view)
            if length is None:
                raise _Damage(f"samples {where} ends inside sample {k}")
            view.seek(length, 1)
        pos = view.tell()
    if pos != len(content):
        raise _Damage(
            f"samples {where}: its {n_samples} samples take {pos} of its {len(content)} "
            "bytes (its length or sample count is wrong)"
        )


def scan_xdf(path: Path) -> ChunkScan | None:
    """Walk the chunk structure before pyxdf reads it: every chunk inside the file, every
    samples chunk holding exactly the samples it says (a damaged length or count makes pyxdf
    allocate gigabytes or read the next chunks' bytes as samples).

    Returns None for a sound file, else a :class:`ChunkScan` saying where the sound part
    ends and why. Raises :class:`FileFormatError` when the file is no XDF file at all.
    """
    opener = gzip.open if path.suffix.lower() == ".xdfz" else open
    size = path.stat().st_size if opener is open else None
    layouts: dict[int, tuple[int, int]] = {}  # stream id -> (n_channels, bytes per value)
    n_chunks = n_samples_chunks = 0
    with opener(path, "rb") as handle:
        if handle.read(4) != b"XDF:":
            raise FileFormatError("it does not start with 'XDF:' (not an XDF file)")
        start = handle.tell()

        def stop(problem: str, damaged: bool = True) -> ChunkScan:
            """Where the sound part ends: before the chunk at ``start`` (read when called)."""
            return ChunkScan(start, n_chunks, n_samples_chunks, problem, damaged)

        try:
            while True:
                start = handle.tell()
                where = f"chunk {n_chunks + 1} (at byte {start})"
                try:
                    length = _varlen(handle)
                except _Damage as err:
                    return stop(f"{where} starts with {err}")
                if length is None:
                    if handle.tell() == start:
                        return None  # the end, between two chunks
                    return stop(f"{where} is cut inside its length field", damaged=False)
                tag_bytes = handle.read(2)
                if len(tag_bytes) < 2:
                    return stop(f"{where} is cut before its tag", damaged=False)
                tag = struct.unpack("<H", tag_bytes)[0]
                content_start = handle.tell()
                if tag not in XDF_TAGS or length < 2:
                    return stop(f"{where} has an invalid tag {tag} or length {length}")
                beyond = size is not None and content_start + length - 2 > size
                if length > XDF_MAX_CHUNK and beyond:
                    return stop(
                        f"{where} claims {_size_text(length)}, beyond the end of the file "
                        f"({_size_text(size)})"
                    )
                if length > XDF_MAX_CHUNK and size is None:  # compressed: no size to compare
                    return stop(f"{where} claims {_size_text(length)}, more than a chunk holds")
                content = handle.read(length - 2)
                if len(content) < length - 2:
                    return stop(
                        f"{where} claims {length} bytes, {len(content) + 2} there", damaged=False
                    )
                try:
                    if tag in (1, 6):
                        _xml_of(content if tag == 1 else content[4:], where)
                    elif tag == 2:
                        _xdf_layout(content, layouts, where)
                    elif tag == 3:
                        stream_id = struct.unpack("<I", content[:4])[0] if len(content) >= 4 else -1
                        if stream_id not in layouts:
                            raise _Damage(f"samples {where} of undeclared stream {stream_id}")
                        _walk_samples(content, content_start, *layouts[stream_id], where)
                        n_samples_chunks += 1
                    elif tag in FIXED_LENGTHS and len(content) != FIXED_LENGTHS[tag]:
                        raise _Damage(
                            f"{where}, a {CHUNK_NAMES[tag]} chunk, holds {len(content)} bytes, "
                            f"not {FIXED_LENGTHS[tag]}"
                        )
                except _Damage as err:
                    return stop(str(err))
                n_chunks += 1
        except EOFError:  # gzip: the compressed data stop inside a chunk (a recording cut short)
            return stop(f"chunk {n_chunks + 1} (at byte {start}) is cut short: the compressed "
                        "data end inside it", damaged=False)


def _xml_of(content: bytes, where: str):
    """The XML element of a header or footer chunk's content."""
    from xml.etree.ElementTree import ParseError, fromstring

    try:
        return fromstring(content.decode("utf-8", "replace"))
    except ParseError:
        raise _Damage(f"{where} is not valid XML") from None


def _xdf_layout(content: bytes, layouts: dict, where: str) -> None:
    try:
        stream_id = struct.unpack("<I", content[:4])[0]
        info = _xml_of(content[4:], f"the stream header, {where},")
        n_channels = int(info.findtext("channel_count", "0"))
        fmt = info.findtext("channel_format", "")
    except (ValueError, struct.error):
        raise _Damage(f"the stream header, {where}, is not readable") from None
    if n_channels < 1 or fmt not in XDF_FORMATS:
        raise _Damage(
            f"the stream header, {where}, declares {n_channels} channels of format {fmt!r}"
        )
    layouts[stream_id] = (n_channels, XDF_FORMATS[fmt])
