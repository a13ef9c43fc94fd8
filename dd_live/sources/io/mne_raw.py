"""Every format MNE reads (FIF, EDF, BDF, GDF, BrainVision, EEGLAB, Neuroscan CNT), through
:func:`mne.io.read_raw`: a file shorter than its header says is refused, trigger channels
become markers, EDF/BDF channels without a unit are scaled by their size."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from dd_live.errors import FileFormatError
from dd_live.sources.io.base import Recording, one_line, unitless_scale
from dd_live.sources.io.edf import check_record_count, edf_header
from dd_live.sources.io.stim import stim_markers
from dd_live.sources.units import VOLT_TYPES, check_amplitude

logger = logging.getLogger(__name__)

# what MNE's readers warn when a file is shorter than its header says
TRUNCATION_HINTS = ("does not match the file size", "truncated", "file is smaller")


def read_mne(path: Path, fmt: str) -> Recording:
    import mne

    edf = edf_header(path) if fmt in ("EDF", "BDF") else None
    open_count = edf is not None and check_record_count(path, edf)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = mne.io.read_raw(path, preload=True, verbose="warning")
    for warning in caught:
        text = one_line(warning.message)
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
        annotations += stim_markers(raw, stim, bdf=fmt == "BDF")
    eeg = [k for k, kind in enumerate(types) if kind in VOLT_TYPES]
    if edf is not None:  # an EDF/BDF whose channels have no physical dimension: by size
        units = dict(zip(edf["labels"], edf["units"]))
        unitless = [k for k in eeg if not units.get(raw.ch_names[k], "x").strip()]
        data[unitless] *= unitless_scale(data, unitless, len(eeg), path.name)
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
