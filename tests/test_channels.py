"""Channel mapping, resampling, standardising and the whole window -> model-input path."""

import mne
import numpy as np
import pytest

from dd_live.errors import ConfigError, MontageError
from dd_live.sources.base import StreamInfo
from dd_live.stream import (
    ChannelMapper,
    ChannelRepair,
    Window,
    WindowPreprocessor,
    resample_window,
    standardize,
)

# the 16 channels of an OpenBCI Cyton + Daisy in a common 10-20 layout
CYTON16 = (
    "Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2",
    "F7", "F8", "F3", "F4", "T7", "T8", "P3", "P4",
)  # fmt: skip
SFREQ = 250.0


def test_replicate_to_a_count_tiles_the_channels():
    mapper = ChannelMapper(["a", "b", "c"], 7)
    data = np.arange(3)[:, None] * np.ones((1, 5))
    out = mapper(data)
    assert out.shape == (7, 5)
    np.testing.assert_array_equal(out[:, 0], [0, 1, 2, 0, 1, 2, 0])
    np.testing.assert_array_equal(mapper.matrix.sum(axis=1), np.ones(7))


def test_replicate_to_names_matches_and_fills_the_missing():
    mapper = ChannelMapper(["CZ", "Fz", "Oz"], ["Fz", "Cz", "T7", "Pz", "T8"])
    data = np.array([[1.0], [2.0], [3.0]])  # CZ=1, Fz=2, Oz=3
    out = mapper(data)[:, 0]
    assert out[:2].tolist() == [2.0, 1.0]  # matched by name, case-insensitively
    assert out[2:].tolist() == [1.0, 2.0, 3.0]  # the missing ones cycle through the sources
    assert mapper.n_matched == 2
    assert "2 matched" in repr(mapper)


def test_spline_interpolates_a_smooth_field_close_to_truth():
    montage = mne.channels.make_standard_montage("colin27_1020")
    positions = montage.get_positions()["ch_pos"]
    targets = CYTON16 + ("Fz", "Cz", "Pz")

    def field(name: str) -> float:  # a smooth potential over the head
        x, y, z = positions[name] / 0.1
        return 3.0 * x + 2.0 * y + z

    mapper = ChannelMapper(CYTON16, targets, method="spline", montage="standard_1020")
    source = np.array([[field(name)] for name in CYTON16])
    out = mapper(source)[:, 0]
    np.testing.assert_allclose(out[:16], source[:, 0], atol=1e-12)  # present channels kept
    truth = np.array([field(name) for name in ("Fz", "Cz", "Pz")])
    spread = np.ptp(source)
    assert np.max(np.abs(out[16:] - truth)) < 0.03 * spread
    # replicate would be far off for the same channels
    replicated = ChannelMapper(CYTON16, targets)(source)[16:, 0]
    assert np.max(np.abs(replicated - truth)) > np.max(np.abs(out[16:] - truth))


def test_spline_without_positions_says_what_to_do():
    with pytest.raises(
        MontageError,
        match=r"no position for channel\(s\) EXG1, EXG2 in the montage .* method='replicate'",
    ):
        ChannelMapper(["Fz", "EXG1", "EXG2"], ["Fz", "Cz"], method="spline")
    with pytest.raises(MontageError, match="needs the model's channel names"):
        ChannelMapper(["Fz", "Cz"], 128, method="spline")


def test_resample_window_shape_and_endpoints():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((3, 110))
    for method in ("linear", "fft", "poly"):
        out = resample_window(data, 512, method)
        assert out.shape == (3, 512), method
    linear = resample_window(data, 512)
    np.testing.assert_array_equal(linear[:, 0], data[:, 0])
    np.testing.assert_allclose(linear[:, -1], data[:, -1], rtol=0, atol=1e-12)
    # a straight line stays a straight line
    ramp = np.linspace(0, 1, 440)[None, :]
    np.testing.assert_allclose(resample_window(ramp, 512)[0], np.linspace(0, 1, 512), atol=1e-12)
    # fft keeps a band-limited periodic signal
    t = np.arange(110) / 110
    sine = np.sin(2 * np.pi * 3 * t)[None, :]
    t512 = np.arange(512) / 512
    np.testing.assert_allclose(
        resample_window(sine, 512, "fft")[0], np.sin(2 * np.pi * 3 * t512), atol=1e-9
    )
    with pytest.raises(ConfigError, match="method must be one of"):
        resample_window(data, 512, "cubic")


def test_standardize_is_per_channel_and_constant_safe():
    data = np.vstack([np.arange(10.0), np.full(10, 5.0), 1e-6 * np.sin(np.arange(10.0))])
    out = standardize(data)
    assert out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_allclose(out[[0, 2]].mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(out[[0, 2]].std(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(out[1], 0)


def make_info(n_eeg: int = 16) -> StreamInfo:
    names = CYTON16[:n_eeg] + ("counter", "trigger")
    types = ("eeg",) * n_eeg + ("misc", "stim")
    return StreamInfo("cyton-daisy", SFREQ, names, types)


def make_window(info: StreamInfo, n_times: int = 110, sfreq: float = SFREQ) -> Window:
    rng = np.random.default_rng(1)
    data = 10e-6 * rng.standard_normal((info.n_channels, n_times))
    data[-2] = np.arange(n_times)  # the counter must not reach the model
    return Window(1000, 1000 + n_times, data, 4 + np.arange(n_times) / sfreq, sfreq, "periodic")


@pytest.mark.parametrize("channel_method", ["replicate", "spline"])
def test_window_preprocessor_end_to_end(channel_method):
    info = make_info()
    targets = None
    if channel_method == "spline":  # a 128-name 10-05 target set including all 16 sources
        montage_names = mne.channels.make_standard_montage("colin27_1005").ch_names
        targets = list(CYTON16) + [n for n in montage_names if n not in CYTON16][: 128 - 16]
    prep = WindowPreprocessor(info, target_names=targets, channel_method=channel_method)
    out = prep(make_window(info))
    assert out.shape == (128, 512) and out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out.mean(axis=1), 0, atol=1e-5)
    np.testing.assert_allclose(out.std(axis=1), 1, atol=1e-4)
    assert prep.picks.tolist() == list(range(16))  # counter and trigger dropped


def test_window_preprocessor_mismatches_say_how_to_fix():
    info = make_info()
    prep = WindowPreprocessor(info)
    with pytest.raises(MontageError, match=r"sampled at 500 Hz but it was set up for 250 Hz"):
        prep(make_window(info, sfreq=500.0))
    with pytest.raises(MontageError, match=r"window has 10 channels but was set up for 18"):
        prep(make_window(make_info(8)))
    with pytest.raises(MontageError, match=r"too short to stretch to 512 model samples"):
        prep(make_window(info, n_times=4))
    with pytest.raises(MontageError, match=r"takes 128 channels but 3 target names"):
        WindowPreprocessor(info, target_names=["Fz", "Cz", "Pz"])
    no_eeg = StreamInfo("aux", SFREQ, ("a", "b"), ("misc", "stim"))
    with pytest.raises(MontageError, match=r"no EEG channel to feed the model .* eeg_only=False"):
        WindowPreprocessor(no_eeg)
    window = make_window(info)
    window.data[3, 5:9] = np.nan
    with pytest.raises(ConfigError, match="NaN/Inf samples; check it with QualityChecker"):
        prep(window)


# -- names, aliases, non-EEG channels, the map described (issue 10) ---------------------------
def test_names_match_through_file_decorations_and_10_20_aliases():
    sources = ["EEG Fp1-REF", "T3", "T4", "EEG T5-LE", "T6", "Cz"]
    mapper = ChannelMapper(sources, ["Fp1", "T7", "T8", "P7", "P8", "CZ", "Oz"])
    out = mapper(np.arange(6.0)[:, None])[:, 0]
    assert out[:6].tolist() == [0, 1, 2, 3, 4, 5]
    rows = mapper.describe()
    assert rows[0] == ("Fp1", "EEG Fp1-REF", "name")
    assert rows[1] == ("T7", "T3", "alias") and rows[4] == ("P8", "T6", "alias")
    assert rows[6] == ("Oz", "EEG Fp1-REF", "replicated")
    assert "6 of 7 model channels fed directly" in mapper.describe_text()
    assert "1 copies of source channels (Oz<-EEG Fp1-REF)" in mapper.describe_text()


def test_only_eeg_feeds_the_model_unless_asked():
    names = ("Fp1", "Fp2", "HEOG", "ECG", "M1", "M2", "Cz", "Status", "EMG-chin", "Pz")
    info = StreamInfo("edf", SFREQ, names, ("eeg",) * 7 + ("stim", "eeg", "eeg"))  # EDF-like
    prep = WindowPreprocessor(info, n_channels=4)
    assert [names[i] for i in prep.picks] == ["Fp1", "Fp2", "Cz", "Pz"]
    asked = WindowPreprocessor(info, n_channels=4, include=["M1"], exclude=["fp2"])
    assert [names[i] for i in asked.picks] == ["Fp1", "M1", "Cz", "Pz"]
    with pytest.raises(MontageError, match=r"no EEG channel to feed the model .* excluded"):
        WindowPreprocessor(info, n_channels=4, exclude=["Fp1", "Fp2", "Cz", "Pz"])


def test_mapping_by_count_says_what_is_used_and_what_is_copied():
    many = ChannelMapper([f"E{i}" for i in range(88)], 16)
    assert many.used.tolist() == list(range(16))
    assert "16 of 16 model channels fed directly" in many.describe_text()
    assert "72 source channel(s) not used (E16, E17" in many.describe_text()
    few = ChannelMapper(CYTON16[:8], 16)
    assert [how for _, _, how in few.describe()] == ["count"] * 8 + ["replicated"] * 8
    assert "8 copies of source channels (#8<-Fp1, #9<-Fp2" in few.describe_text()
    spline = ChannelMapper(CYTON16, list(CYTON16[:14]) + ["Fz", "Cz"], method="spline")
    rows = spline.describe()
    assert rows[14][0] == "Fz" and rows[14][2] == "interpolated" and "F3" in rows[14][1]
    assert spline.used.tolist() == list(range(16))


def test_channel_repair_splines_a_smooth_field_and_falls_back_to_the_mean():
    montage = mne.channels.make_standard_montage("colin27_1020")
    positions = montage.get_positions()["ch_pos"]
    field = np.array([[3.0 * positions[n][0] / 0.1 + 2.0 * positions[n][1] / 0.1
                       + positions[n][2] / 0.1] for n in CYTON16])
    repair = ChannelRepair(CYTON16)
    assert repair.method == "spline"
    for bad in ([2], [10, 11]):  # C3; F3 and F4
        out = repair(field, bad)
        np.testing.assert_array_equal(np.delete(out, bad, 0), np.delete(field, bad, 0))
        assert np.max(np.abs(out[bad] - field[bad])) < 0.05 * np.ptp(field)
        mean = np.delete(field, bad, 0).mean()  # the fallback would be far off here
        assert np.max(np.abs(out[bad] - field[bad])) < 0.5 * np.max(np.abs(mean - field[bad]))
    odd = ChannelRepair(["EXG1", "EXG2", "EXG3"])
    assert odd.method == "mean"
    np.testing.assert_allclose(odd(np.array([[1.0], [5.0], [3.0]]), [1])[:, 0], [1, 2, 3])
    with pytest.raises(MontageError, match="spline interpolation needs standard"):
        ChannelRepair(["EXG1", "Cz"], method="spline")


def test_window_preprocessor_replaces_bad_channels_before_mapping():
    info = make_info()
    prep = WindowPreprocessor(info, n_channels=8, repair=True)
    assert prep.used_rows.tolist() == list(range(8))
    window = make_window(info)
    window.data[3] = np.nan  # C4 gone entirely: replaced, so the window is usable
    out = prep(window, bad=[3])
    assert out.shape == (8, 512) and np.isfinite(out).all()
    expected = prep.repair(window.data[:8], [3])[3]
    np.testing.assert_allclose(out[3], standardize(resample_window(expected[None]))[0],
                               atol=1e-5)
    window.data[12] = np.nan  # T7: the 8-channel model never reads it
    prep(window, bad=[3])
    with pytest.raises(ConfigError, match="NaN/Inf samples"):
        prep(window)


def test_non_eeg_names():
    from dd_live.stream.channels import looks_non_eeg

    others = ["HEOG", "VEOG-L", "ECG", "EKG1", "EMG-chin", "M1", "A2", "Status", "TRIGGER",
              "STI 014", "Resp", "GSR", "AccelX", "Sample Index", "Timestamp", "Photo"]
    # OpenBCI names its EEG inputs EXG (BioSemi's EXG externals: [channels] exclude)
    eeg = ["Fp1", "EEG Fp2-REF", "C3-A2", "T3", "TP9", "TP10", "P9", "Iz", "AFz", "E12", "FT9",
           "EXG1", "EXG Channel 0"]
    assert [n for n in others if not looks_non_eeg(n)] == []
    assert [n for n in eeg if looks_non_eeg(n)] == []
