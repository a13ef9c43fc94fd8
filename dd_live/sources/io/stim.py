"""Trigger channels (Status, STI, ...) into markers, as :func:`mne.find_events` finds them:
shared by the MNE formats and XDF streams with a channel of type "stim"."""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)


def stim_markers(raw, names: list[str], bdf: bool) -> list[tuple[float, float, str]]:
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


def raw_array(data: np.ndarray, names: list[str], sfreq: float):
    """Trigger channels ``(n_channels, n_times)`` as an MNE Raw, for :func:`stim_markers`."""
    import mne

    info = mne.create_info(names, sfreq, "stim")
    return mne.io.RawArray(data, info, verbose="error")
