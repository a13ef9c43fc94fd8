"""What inputs are there? Backs ``dd-live devices`` and the "streams seen" of error messages."""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


def describe_lsl_info(info) -> dict:
    """A small dict describing one ``pylsl.StreamInfo``."""
    return {
        "name": info.name(),
        "type": info.type(),
        "source_id": info.source_id(),
        "n_channels": info.channel_count(),
        "sfreq": info.nominal_srate(),
        "channel_format": info.channel_format(),
        "hostname": info.hostname(),
    }


def format_lsl_stream(stream: dict) -> str:
    """One line: ``'name' (type EEG, source_id X, 8 ch @ 250 Hz, on host)``."""
    rate = f"{stream['sfreq']:g} Hz" if stream["sfreq"] > 0 else "irregular rate"
    return (
        f"{stream['name']!r} (type {stream['type'] or '-'}, source_id "
        f"{stream['source_id'] or '-'}, {stream['n_channels']} ch @ {rate}, on {stream['hostname']})"
    )


def list_lsl_streams(timeout: float = 1.0) -> list[dict]:
    """Every LSL stream visible within ``timeout`` seconds, sorted by name.

    Each entry: ``name, type, source_id, n_channels, sfreq, channel_format, hostname``.
    """
    import pylsl

    infos = pylsl.resolve_streams(wait_time=timeout)
    return sorted((describe_lsl_info(info) for info in infos), key=lambda s: s["name"])


def list_brainflow_boards() -> list[dict]:
    """Every board BrainFlow describes: ``id, name, n_eeg, sfreq``, sorted by id.

    Boards without a fixed description (the playback and streaming boards, which take their
    master board's) are listed with ``n_eeg = 0`` and ``sfreq = 0``.
    """
    from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError

    BoardShim.disable_board_logger()
    boards = []
    for board in BoardIds:
        try:
            descr = BoardShim.get_board_descr(board.value)
        except BrainFlowError:
            descr = {}
        boards.append(
            {
                "id": int(board.value),
                "name": board.name,
                "n_eeg": len(descr.get("eeg_channels", [])),
                "sfreq": float(descr.get("sampling_rate", 0)),
            }
        )
    return sorted(boards, key=lambda b: b["id"])


# USB vendor/product ids of the serial dongles BrainFlow boards connect through, and the boards
# (BoardIds names) that use each; a port is only ever a candidate: several boards share a chip.
USB_DONGLES: tuple[tuple[int, int, str, tuple[str, ...]], ...] = (
    (0x0403, 0x6015, "FTDI FT231X (OpenBCI USB dongle)", ("CYTON_BOARD", "CYTON_DAISY_BOARD")),
    (0x2458, 0x0001, "Silicon Labs BLED112 Bluetooth dongle",
     ("GANGLION_BOARD", "BRAINBIT_BLED_BOARD", "MUSE_S_BLED_BOARD", "MUSE_2_BLED_BOARD",
      "MUSE_2016_BLED_BOARD")),
    (0x0483, 0x5740, "STMicroelectronics virtual COM port (FreeEEG32/128)",
     ("FREEEEG32_BOARD", "FREEEEG128_BOARD")),
)


def match_dongle(vid: int | None, pid: int | None) -> tuple[str, list[dict]]:
    """``(description, boards)`` for a USB id: the BrainFlow boards (``id``, ``name``) known
    to connect through that dongle; ``("", [])`` for an unknown one."""
    from brainflow.board_shim import BoardIds

    for dongle_vid, dongle_pid, description, names in USB_DONGLES:
        if (vid, pid) == (dongle_vid, dongle_pid):
            boards = [{"id": int(BoardIds[name].value), "name": name}
                      for name in names if name in BoardIds.__members__]
            return description, boards
    return "", []


def list_serial_ports() -> list[dict]:
    """Serial ports present now (pyserial), each with the BrainFlow boards it may belong to.

    Each entry: ``device`` (e.g. ``/dev/ttyUSB0``), ``description``, ``vid``, ``pid`` (None for
    a port that is not USB), ``dongle`` (what the USB id is known as, or ``""``) and ``boards``
    (``[{"id", "name"}]``, empty for an unknown device). Sorted by device.
    """
    from serial.tools import list_ports

    ports = []
    for port in list_ports.comports():
        dongle, boards = match_dongle(port.vid, port.pid)
        ports.append({"device": port.device, "description": port.description or "",
                      "vid": port.vid, "pid": port.pid, "dongle": dongle, "boards": boards})
    return sorted(ports, key=lambda p: p["device"])


def format_serial_port(port: dict) -> str:
    """One line for ``dd-live devices``: the port, its USB id, and the specs to try."""
    usb = f"{port['vid']:04x}:{port['pid']:04x}" if port["vid"] is not None else "not USB"
    what = port["dongle"] or port["description"] or "unknown device"
    line = f"{port['device']}  {what} ({usb})"
    if port["boards"]:
        specs = ", ".join(f"brainflow:{b['name'].removesuffix('_BOARD').lower()}"
                          f"?serial_port={port['device']}" for b in port["boards"])
        line += f"  -> try {specs}"
    return line


MARKER_TYPES = ("markers", "annotations")  # LSL stream types of marker streams (lower case)


def xpath_literal(text: str) -> str:
    """``text`` as an XPath 1.0 string literal, whatever quotes it holds.

    XPath has no escape character: a value with ``'`` is written in ``"..."``, one with both
    kinds as ``concat(...)``. Stream names and ids from the user or the network go into LSL
    queries only through this, so a name cannot change what a query matches.
    """
    text = str(text)
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    parts = text.split("'")
    return "concat(" + ", \"'\", ".join(f"'{part}'" for part in parts) + ")"


def lsl_predicate(**props: str | None) -> str:
    """An LSL XPath predicate requiring each given property to equal its value, e.g.
    ``lsl_predicate(name="EEG 'A'", type="EEG")``; None values are left out."""
    return " and ".join(f"{prop}={xpath_literal(value)}" for prop, value in props.items()
                        if value is not None)


def companion_marker_predicate(eeg: dict) -> str | None:
    """An LSL XPath predicate for the marker streams that may belong to the stream ``eeg``
    (a :func:`describe_lsl_info` dict)."""
    name, host, source_id = eeg["name"], eeg.get("hostname", ""), eeg.get("source_id", "")
    same_host = f" and hostname={xpath_literal(host)}" if host else ""
    clauses = [f"(name={xpath_literal(name + '-markers')}{same_host})"]
    if source_id:
        types = " or ".join(f"type='{kind}' or type='{kind.capitalize()}'" for kind in MARKER_TYPES)
        clauses.append(f"(starts-with(source_id,{xpath_literal(source_id)}) and ({types}){same_host})")
    return " or ".join(clauses)


def marker_stream_for(eeg: dict, streams: list[dict]) -> dict | None:
    """The marker stream among ``streams`` that belongs to the EEG stream ``eeg``: on the same
    host and named ``NAME-markers``, or of type Markers with a source id equal to or starting
    with the EEG stream's. The name rule wins over the source-id rule; None when there is none.
    """
    host = eeg.get("hostname", "")
    candidates = [s for s in streams if s is not eeg and s.get("hostname", "") == host
                  and not s.get("sfreq", 0) > 0]
    for stream in candidates:
        if stream["name"] == f"{eeg['name']}-markers":
            return stream
    source_id = eeg.get("source_id", "")
    for stream in candidates:
        if (source_id and stream.get("type", "").lower() in MARKER_TYPES
                and stream.get("source_id", "").startswith(source_id)):
            return stream
    return None
