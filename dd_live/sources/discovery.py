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
