"""Units of EEG data: unit strings to volts, and a plausibility check on amplitudes.

Every source delivers volts. Two helpers get it there:

- :func:`parse_unit` turns a unit string into the factor that brings the values to volts:
  names (``"uV"``, ``"µV"``, ``"microvolts"``, ``"mV"``, ``"V"``...) and mne-lsl's
  power-of-ten convention (``"0"``: volts, ``"-6"``: microvolts, ``"-3"``: millivolts).
- :func:`plausible_scale` judges unitless data by its size: EEG has an RMS between
  :data:`MIN_EEG_RMS` and :data:`MAX_EEG_RMS` volts. Unitless data that is only plausible as
  microvolts is scaled by 1e-6 with a warning; data that is implausible either way is left
  alone with a warning. :func:`check_amplitude` warns when data declared in volts is not
  plausible as EEG (e.g. microvolt numbers labelled volts: "38.4 V").
"""

from __future__ import annotations

import logging
import re

import numpy as np

logger = logging.getLogger(__name__)

MIN_EEG_RMS = 1e-7  # volts: quieter than any amplifier's noise floor
MAX_EEG_RMS = 1e-2  # volts: 10 mV RMS, far above any scalp EEG (and most DC offsets)
MICROVOLT = 1e-6
VOLT_TYPES = frozenset({"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs"})
UNIT_SCALES = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,  # micro sign
    "μv": 1e-6,  # Greek mu
    "microvolt": 1e-6,
    "microvolts": 1e-6,
    "nv": 1e-9,
    "nanovolt": 1e-9,
    "nanovolts": 1e-9,
}
_POWER_OF_TEN = re.compile(r"^[+-]?\d{1,2}$")


def parse_unit(unit: str | None) -> float | None:
    """The factor that brings values in ``unit`` to volts, or None when ``unit`` is unknown.

    Understands volt multiples by name or symbol (case-insensitive) and mne-lsl's
    power-of-ten strings: ``"0"`` -> 1.0, ``"-6"`` -> 1e-6, ``"-3"`` -> 1e-3 (mne-lsl writes
    ``str(unit_mul)``, a power of ten of the channel's SI unit). Empty, ``"none"`` and anything
    else give None: the caller decides (see :func:`plausible_scale`).
    """
    if unit is None:
        return None
    text = str(unit).strip()
    if _POWER_OF_TEN.match(text):
        return 10.0 ** int(text)
    return UNIT_SCALES.get(text.lower().replace(" ", ""))


def eeg_rms(data: np.ndarray) -> float:
    """Typical RMS of ``data`` ``(n_channels, n_times)``: the median over channels of each
    channel's standard deviation (the DC offset removed), ignoring non-finite samples and
    channels that are flat. 0.0 when every channel is flat or empty.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        finite = np.where(np.isfinite(data), data, np.nan)
        with_values = np.isfinite(finite).any(axis=1)
        if not with_values.any():
            return 0.0
        spread = np.nanstd(finite[with_values], axis=1)
    spread = spread[spread > 0]
    return float(np.median(spread)) if spread.size else 0.0


def plausible_scale(data: np.ndarray, what: str) -> float:
    """The factor to volts for unitless EEG ``data`` ``(n_channels, n_times)``, by its size.

    Returns 1.0 when the RMS is plausible as volts (or the data is flat), 1e-6 when it is only
    plausible as microvolts (logged as a warning naming ``what``). Implausible either way:
    1.0 and a warning.
    """
    rms = eeg_rms(data)
    if rms == 0 or MIN_EEG_RMS <= rms <= MAX_EEG_RMS:
        return 1.0
    if MIN_EEG_RMS <= rms * MICROVOLT <= MAX_EEG_RMS:
        logger.warning(
            "%s: no unit given and an RMS of %.3g is not plausible as volts: read as "
            "microvolts. Give the unit in the file or stream to silence this.",
            what,
            rms,
        )
        return MICROVOLT
    logger.warning(
        "%s: no unit given and an RMS of %.3g is not plausible as EEG in volts or microvolts; "
        "used as volts",
        what,
        rms,
    )
    return 1.0


def check_amplitude(data: np.ndarray, what: str) -> str | None:
    """Warn when EEG ``data`` ``(n_channels, n_times)`` in volts has an implausible RMS.

    Returns the warning text (None when plausible or flat), e.g. microvolt numbers declared as
    volts give "RMS 38.4 V".
    """
    rms = eeg_rms(data)
    if rms == 0 or MIN_EEG_RMS <= rms <= MAX_EEG_RMS:
        return None
    hint = (
        "values look like microvolts labelled as volts"
        if MIN_EEG_RMS <= rms * MICROVOLT <= MAX_EEG_RMS
        else "check the unit of the data"
    )
    message = (
        f"{what}: EEG RMS of {rms:.3g} V is outside the plausible {MIN_EEG_RMS:g}-"
        f"{MAX_EEG_RMS:g} V; {hint}"
    )
    logger.warning(message)
    return message
