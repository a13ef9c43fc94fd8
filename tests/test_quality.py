"""QualityChecker: one test per reason, each asserting on the text; clean data passes."""

import re

import numpy as np
import pytest

from dd_live.errors import ConfigError
from dd_live.stream import BadChannelTracker, QualityChecker, QualityResult

SFREQ = 250.0
N_TIMES = 110
NAMES = ("Fz", "Cz", "Pz", "Oz")


def eeg(rng: np.random.Generator, scale: float = 10e-6) -> np.ndarray:
    """Clean-looking EEG: ``(4, N_TIMES)`` noise plus alpha, ~10 µV."""
    t = np.arange(N_TIMES) / SFREQ
    return scale * (rng.standard_normal((len(NAMES), N_TIMES)) + np.sin(2 * np.pi * 10 * t))


def test_clean_data_passes_in_both_modes():
    rng = np.random.default_rng(0)
    for mode in ("adaptive", "fixed"):
        checker = QualityChecker(SFREQ, mode=mode, ch_names=NAMES)
        for _ in range(20):
            result = checker.check(eeg(rng))
            assert result == QualityResult(True)
            assert str(result) == "ok"


def test_nan_burst_names_channel_and_fix():
    data = eeg(np.random.default_rng(1))
    data[2, 30:45] = np.nan
    result = QualityChecker(SFREQ, ch_names=NAMES).check(data)
    assert not result.ok and result.bad_channels == (2,)
    assert result.reasons == (
        "channel Pz: 15 of 110 samples NaN/Inf (non-finite samples from the source: the window "
        "overlaps them)",
    )


def test_flat_channel():
    data = eeg(np.random.default_rng(2))
    data[0] = 3e-6
    result = QualityChecker(SFREQ, ch_names=NAMES).check(data)
    assert result.reasons == ("channel Fz: flat (std 0 V)",)
    assert result.bad_channels == (0,)


def test_saturated_by_level_and_by_stuck_run():
    data = eeg(np.random.default_rng(3))
    data[1, 50] = 0.2
    result = QualityChecker(SFREQ, saturation=0.1, ch_names=NAMES).check(data)
    assert result.reasons == ("channel Cz: saturated (|x| reached 200 mV >= 100 mV)",)

    data = eeg(np.random.default_rng(3))
    data[3, 20:60] = 187.5e-3  # the amplifier clipped at its rail for 40 samples
    result = QualityChecker(SFREQ, ch_names=NAMES).check(data)
    assert result.reasons == ("channel Oz: saturated (40 samples stuck at 188 mV)",)


def test_fixed_peak_to_peak_threshold():
    data = eeg(np.random.default_rng(4))
    data[1, 10] += 250e-6
    result = QualityChecker(SFREQ, mode="fixed", max_ptp=100e-6, ch_names=NAMES).check(data)
    assert result.bad_channels == (1,)
    (reason,) = result.reasons
    assert re.fullmatch(r"channel Cz: peak-to-peak \d{3} µV > 100 µV \(fixed threshold\)", reason)


def test_adaptive_flags_an_outlier_against_the_channel_own_history():
    rng = np.random.default_rng(5)
    # a noisy channel (Oz, 150 µV ptp) that a fixed 100 µV rule would always reject
    checker = QualityChecker(SFREQ, ch_names=NAMES)
    scales = np.array([[10e-6], [10e-6], [10e-6], [40e-6]])
    for _ in range(30):
        assert checker.check(scales / 10e-6 * eeg(rng)).ok
    data = scales / 10e-6 * eeg(rng)
    data[0, 60] += 300e-6  # a blink on Fz
    result = checker.check(data)
    assert result.bad_channels == (0,)
    (reason,) = result.reasons
    assert reason.startswith("channel Fz: peak-to-peak ")
    assert "robust SDs above its recent median" in reason
    assert reason.endswith("(adaptive threshold z > 6)")
    assert not QualityChecker(SFREQ, mode="fixed").check(scales / 10e-6 * eeg(rng)).ok


def test_default_names_and_bad_settings():
    data = eeg(np.random.default_rng(6))
    data[3] = 0.0
    assert QualityChecker(SFREQ).check(data).reasons == ("channel #3: flat (std 0 V)",)
    with pytest.raises(ConfigError, match="mode must be one of"):
        QualityChecker(SFREQ, mode="strict")
    with pytest.raises(ConfigError, match="4 channel names but the window has 2 channels"):
        QualityChecker(SFREQ, ch_names=NAMES).check(np.zeros((2, 10)))


# -- bad channels (issue 10) -----------------------------------------------------------------
def run_tracker(tracker, windows, hop=25):
    """Feed windows ``(n_channels, N_TIMES)`` every ``hop`` samples; the verdicts."""
    return [tracker.update(w, N_TIMES + k * hop) for k, w in enumerate(windows)]


def test_flat_channel_is_replaced_at_once_marked_after_seconds_and_unmarked_after_seconds():
    rng = np.random.default_rng(20)
    tracker = BadChannelTracker(SFREQ, NAMES, bad_seconds=1.0, max_bad=0.5)
    windows = []
    for k in range(40):  # 25-sample hop: 10 windows a second at 250 Hz
        w = eeg(rng)
        if 5 <= k < 25:
            w[1] = 1e-3  # Cz railed: flat after the band-pass
        windows.append(w)
    verdicts = run_tracker(tracker, windows)
    assert all(v.replace == () for v in verdicts[:5])
    assert all(v.replace == (1,) for v in verdicts[5:25])
    assert verdicts[5].reasons == {1: "flat (std 0 V: unplugged, railed or bridged)"}
    marked_at = [k for k, v in enumerate(verdicts) if v.newly_bad]
    assert marked_at == [11] and verdicts[11].newly_bad[0][0] == 1  # 1 s after window 5 began
    assert verdicts[30].marked == (1,) and verdicts[30].replace == (1,)  # clean, still marked
    unmarked_at = [k for k, v in enumerate(verdicts) if v.newly_good]
    assert unmarked_at == [31] and verdicts[39].replace == () and tracker.marked == ()


def test_noisy_channel_nan_channel_too_many_and_forced():
    rng = np.random.default_rng(21)
    names = ("Fz", "Cz", "Pz", "Oz", "C3", "C4")
    tracker = BadChannelTracker(SFREQ, names, bad_seconds=0.5, max_bad=2)
    w = 10e-6 * rng.standard_normal((6, N_TIMES))
    w[4] *= 20  # C3 far noisier than the others
    w[5] = np.nan  # C4 delivers nothing
    verdicts = run_tracker(tracker, [w] * 8)
    assert "noisy" in verdicts[0].reasons[4] and verdicts[0].replace == (4,)
    assert verdicts[0].reasons[5] == "no data (only NaN/Inf samples)"  # rejected, not replaced
    assert verdicts[-1].replace == (4, 5) and verdicts[-1].marked == (4, 5)  # until marked
    tracker.set_forced([0])
    verdict = tracker.update(w, N_TIMES * 10)
    assert verdict.replace == (0, 4, 5) and tracker.forced == (0,)
    assert verdict.too_many.startswith("3 of 6 channels bad (Fz marked bad, C3 noisy")
    assert "at most 2 can be interpolated" in verdict.too_many
    assert "max_bad" in verdict.too_many
    assert BadChannelTracker(SFREQ, names, max_bad=0.25).max_bad == 1  # a fraction of 6
    with pytest.raises(ConfigError, match="max_bad must be >= 0"):
        BadChannelTracker(SFREQ, names, max_bad=-1)


def test_skipped_channels_are_not_judged():
    data = eeg(np.random.default_rng(22))
    data[0] = 0.0
    data[3, 5] = np.nan
    checker = QualityChecker(SFREQ, ch_names=NAMES)
    assert checker.check(data, skip=(0, 3)).ok
    assert checker.check(data, skip=(0,)).bad_channels == (3,)


def test_a_channel_stuck_as_received_is_flat_while_the_filter_still_rings():
    rng = np.random.default_rng(23)
    filtered = eeg(rng)
    filtered[2] = 300e-6 * np.exp(-np.arange(N_TIMES) / 40.0)  # the band-pass ringing out
    raw = eeg(rng) + 1e-3
    raw[2] = 0.187  # railed
    tracker = BadChannelTracker(SFREQ, NAMES, max_bad=1)
    assert tracker.update(filtered, N_TIMES).replace == ()
    verdict = tracker.update(filtered, 2 * N_TIMES, raw)
    assert verdict.replace == (2,) and verdict.reasons[2].startswith("flat (std 0 V")
