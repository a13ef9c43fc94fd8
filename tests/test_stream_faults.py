"""Real-signal faults at the stream stage (issue 10): NaN/Inf samples, bad channels, mains.

The session tests replay files written here (MNE's FIF, read back by the app's own reader) into
a real :class:`LiveSession` with its default settings (interval windows for a fixed hop), driven
by ``step()`` with the tiny random model (its images carry no meaning; everything else is
real). Nothing is mocked.
"""

import logging

import mne
import numpy as np
import pytest

from dd_live.config import (
    AppConfig,
    ChannelsConfig,
    FilterConfig,
    GeneratorConfig,
    RecordConfig,
    WindowConfig,
)
from dd_live.decoding import EEGDecoder
from dd_live.errors import MontageError
from dd_live.recording import read_events
from dd_live.session import LiveSession
from dd_live.sources.replay import ReplaySource
from dd_live.sources.synthetic import STANDARD_NAMES, SyntheticSource, synthetic_eeg
from dd_live.stream import MainsFilter, NonFiniteWatch, StreamingFilter, design_filter

SFREQ = 250.0
N_EEG = 16
NAMES = STANDARD_NAMES[:N_EEG]
LENGTH, HOP = 0.44, 0.5


@pytest.fixture(scope="module")
def decoder():
    return EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=2))


def write_fif(path, data, names=NAMES, sfreq=SFREQ):
    """``data`` (n_channels, n_times) volts -> a FIF file (float32: NaN/Inf kept)."""
    info = mne.create_info(list(names), sfreq, "eeg")
    mne.io.RawArray(data, info, verbose="error").save(path, fmt="single", verbose="error")
    return path


def session_config(tmp_path=None, **sections):
    config = AppConfig(window=WindowConfig(mode="interval", length=LENGTH, hop=HOP),
                       generator=GeneratorConfig(model="tiny", steps=2))
    if tmp_path is not None:
        config = config.replace(record=RecordConfig(enabled=True, root=str(tmp_path), name="f"))
    return config.replace(**sections)


def run_file(path, config, decoder, **kwargs):
    """Replay ``path`` as fast as the session takes it; returns (session, images, rejected,
    events)."""
    session = LiveSession(config, source=ReplaySource(path, speed=0), decoder=decoder,
                          threaded=False, **kwargs)
    images, rejected, events = [], [], []
    session.callbacks.image.append(images.append)
    session.callbacks.event.append(events.append)
    session.callbacks.window_rejected.append(lambda window, why: rejected.append((window, why)))
    session.start()
    while not session.source.finished:
        session.step()
    for _ in range(3):
        session.step()
    session.stop()
    return session, images, rejected, events


# -- the filter alone ------------------------------------------------------------------------
def test_filter_isolates_nan_and_inf_to_their_channels_and_samples():
    rng = np.random.default_rng(3)
    n_times = int(4 * SFREQ)
    x = 20e-6 * rng.standard_normal((4, n_times)) + rng.uniform(-1e-3, 1e-3, (4, 1))
    sos = design_filter(SFREQ, 5.0, 95.0, notch=50.0)
    clean = StreamingFilter(sos, 4)(x)
    bad = x.copy()
    bad[1, 300] = np.nan
    bad[2, 500:550] = np.inf
    bad[2, 520] = -np.inf
    filt = StreamingFilter(sos, 4)
    bounds = np.r_[0, np.sort(rng.choice(np.arange(1, n_times), 60, replace=False)), n_times]
    bounds = np.r_[bounds[bounds < 290], 299, 300, 301, 505, 549, 550, bounds[bounds > 560]]
    out = np.concatenate([filt(bad[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])], axis=1)
    # untouched channels: exactly as without the fault
    np.testing.assert_allclose(out[[0, 3]], clean[[0, 3]], rtol=0, atol=1e-12)
    # NaN out exactly where the input was not finite, nowhere else
    np.testing.assert_array_equal(~np.isfinite(out), ~np.isfinite(bad))
    # before the fault: as clean; after it: a fresh start from the first finite sample
    np.testing.assert_allclose(out[1, :300], clean[1, :300], rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[1, 301:], StreamingFilter(sos, 1)(x[1:2, 301:])[0],
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[2, 550:], StreamingFilter(sos, 1)(x[2:3, 550:])[0],
                               rtol=0, atol=1e-12)
    assert filt.n_isolated == 51


def test_nonfinite_watch_one_event_pair_per_stretch_across_chunks():
    watch = NonFiniteWatch(["a", "b", "c"], SFREQ)
    data = np.zeros((3, 100))
    data[1, 10] = np.nan  # one sample
    data[0, 40:75] = np.inf  # spans the chunks [30, 60) and [60, 90)
    data[2, 70] = np.nan
    events = []
    for a, b in ((0, 30), (30, 60), (60, 90), (90, 100)):
        events += watch.update(data[:, a:b], 1000 + a, np.arange(a, b) / SFREQ)
    assert [(e.kind, e.sample_index) for e in events] == [
        ("nonfinite", 1010), ("finite", 1011), ("nonfinite", 1040), ("finite", 1075)]
    assert events[0].extra["channels"] == ["b"]
    assert events[3].extra == {"n_samples": 35, "channels": ["a", "c"]}
    assert "35 NaN/Inf samples" in events[3].description and not watch.active


# -- NaN and Inf through a live session ------------------------------------------------------
def test_nan_sample_and_inf_burst_reject_only_their_windows_and_images_resume(decoder, tmp_path):
    n_times = int(10 * SFREQ)
    data = synthetic_eeg(None, N_EEG, SFREQ, n_times, seed=4)
    nan_at, inf_from, inf_to = int(3 * SFREQ), int(6 * SFREQ), int(6.3 * SFREQ)
    data[[2, 5], nan_at] = np.nan  # one sample on two channels (the reported case)
    data[:4, inf_from:inf_to] = np.inf  # a burst on four channels
    data[1, inf_from + 7] = -np.inf
    path = write_fif(tmp_path / "faulty_raw.fif", data)

    session, images, rejected, _ = run_file(path, session_config(tmp_path), decoder)
    length, hop = round(LENGTH * SFREQ), round(HOP * SFREQ)
    stretches = [(nan_at, nan_at + 1), (inf_from, inf_to)]

    def overlaps(start, stop):
        return any(start < end and begin < stop for begin, end in stretches)

    # exactly the windows over a stretch are rejected, with the reason; none other for NaN
    nan_rejected = [w for w, why in rejected if any("NaN/Inf" in r for r in why)]
    assert [w.start for w in nan_rejected] == [
        k * hop for k in range(n_times // hop) if overlaps(k * hop, k * hop + length)
        and k * hop + length <= n_times]
    assert all(not overlaps(image.window_start, image.window_stop) for image in images)
    # images resume within one window length + one hop of each stretch's end
    for _, end in stretches:
        first_after = min(image.window_stop for image in images if image.window_start >= end)
        assert first_after - end <= length + hop
    assert len(images) >= n_times // hop - len(nan_rejected) - 2
    # raw data recorded exactly as received, NaN and Inf included
    folder = session.recording_path
    raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
    recorded = raw.get_data()
    sent = data.astype(np.float32)
    np.testing.assert_array_equal(np.isnan(recorded), np.isnan(sent))
    np.testing.assert_array_equal(np.isposinf(recorded), np.isposinf(sent))
    np.testing.assert_array_equal(np.isneginf(recorded), np.isneginf(sent))
    finite = np.isfinite(sent)
    np.testing.assert_allclose(recorded[finite], sent[finite], rtol=1e-6, atol=1e-12)
    # the user is told where they start and end
    told = [(e["type"], e["sample"]) for e in read_events(folder)
            if e["type"] in ("nonfinite", "finite")]
    assert told == [("nonfinite", nan_at), ("finite", nan_at + 1),
                    ("nonfinite", inf_from), ("finite", inf_to)]


# -- bad channels ----------------------------------------------------------------------------
def test_flat_channel_is_marked_bad_and_interpolated_images_go_on(decoder, tmp_path):
    n_times = int(9 * SFREQ)
    data = synthetic_eeg(None, N_EEG, SFREQ, n_times, seed=5)
    flat_from = int(3 * SFREQ)
    data[3, flat_from:] = 0.187  # C4 rails at the amplifier's limit and stays there
    data[12, :] = 0.0  # T7 is dead, but the 8-channel model never reads it
    path = write_fif(tmp_path / "flat_raw.fif", data)

    session, images, rejected, events = run_file(path, session_config(), decoder)
    hop, length = round(HOP * SFREQ), round(LENGTH * SFREQ)
    assert session.judged_channels == NAMES[:8]  # what the tiny model reads, by count
    assert session.bad_channels == ("C4",)
    assert session.replaced_channels == ("C4",)
    assert not any("T7" in r for _, why in rejected for r in why)
    # not even the band-pass ringing after the 0.187 V step: C4 is flat as received, so it is
    # replaced from the first window on and the quality check does not judge it
    assert not any("C4" in r for _, why in rejected for r in why)
    # images go on through the whole flat stretch
    after = [k * hop for k in range(n_times // hop) if k * hop >= flat_from
             and k * hop + length <= n_times]
    imaged = {image.window_start for image in images}
    assert all(start in imaged for start in after)
    marked = [e for e in events if e.kind == "bad_channel"]
    assert [e.extra["channel"] for e in marked] == ["C4"]
    assert "flat" in marked[0].description and "spline" in marked[0].description
    assert marked[0].sample_index >= flat_from + 2 * SFREQ  # after seconds, not at once


def test_a_channel_that_turns_to_nan_for_good_is_marked_bad_and_images_come_back(decoder,
                                                                                tmp_path):
    n_times = int(7 * SFREQ)
    data = synthetic_eeg(None, N_EEG, SFREQ, n_times, seed=7)
    gone_from = int(2 * SFREQ)
    data[5, gone_from:] = np.nan  # P8's electrode lost for good, the device sends NaN
    path = write_fif(tmp_path / "lost_raw.fif", data)
    session, images, rejected, events = run_file(path, session_config(), decoder)
    marked = [e for e in events if e.kind == "bad_channel"]
    assert [e.extra["channel"] for e in marked] == ["P8"]
    assert "no data" in marked[0].description
    # windows over the NaN are rejected until P8 is marked, then it is replaced
    assert rejected and all("NaN/Inf" in why[0] for _, why in rejected)
    assert max(w.stop for w, _ in rejected) <= marked[0].sample_index + 1
    assert [i for i in images if i.window_start >= marked[0].sample_index]
    assert session.bad_channels == ("P8",)


def test_bad_off_rejects_and_too_many_bad_rejects(decoder, tmp_path):
    n_times = int(4 * SFREQ)
    data = synthetic_eeg(None, N_EEG, SFREQ, n_times, seed=6)
    data[[0, 2, 4], :] = 0.0  # three of the eight channels the model reads
    path = write_fif(tmp_path / "dead_raw.fif", data)
    _, images, rejected, _ = run_file(path, session_config(), decoder)
    assert not images and rejected
    assert all("3 of 8 channels bad" in why[0] and "[channels] max_bad" in why[0]
               for _, why in rejected)
    # max_bad = 3 lets them through, interpolated
    _, images, _, _ = run_file(path, session_config(channels=ChannelsConfig(max_bad=3)), decoder)
    assert len(images) >= n_times // round(HOP * SFREQ) - 1
    # bad = "off": every window is rejected for its flat channels
    _, images, rejected, _ = run_file(path, session_config(channels=ChannelsConfig(bad="off")),
                                      decoder)
    assert not images and all("flat" in why[0] for _, why in rejected)


# -- channel mapping -------------------------------------------------------------------------
def test_spline_mapping_starts_with_model_names_and_the_map_is_logged(decoder, caplog):
    def source():
        return SyntheticSource(N_EEG, SFREQ, counter=True, realtime=False, seed=2)

    config = session_config(generator={"channel_method": "spline"})
    # the reported failure: spline with a model that names no channels; now it says how
    with pytest.raises(MontageError, match=r"\[channels\] model_names"):
        LiveSession(config, source=source(), decoder=decoder, threaded=False).start()
    names = ("Fp1", "Fp2", "C3", "C4", "Fz", "Cz", "Pz", "Oz")  # 4 of them not in the source
    config = config.replace(channels=ChannelsConfig(model_names=names))
    session = LiveSession(config, source=source(), decoder=decoder, threaded=False)
    images = []
    session.callbacks.image.append(images.append)
    with caplog.at_level(logging.INFO, logger="dd_live.session"):
        session.start()
    while len(images) < 2:
        session.step()
    session.stop()
    assert [(name, how) for name, _, how in session.channel_map] == [
        (n, "name") for n in names[:4]] + [(n, "interpolated") for n in names[4:]]
    assert "channel map (by name, spline): 4 of 8 model channels fed directly" in caplog.text
    assert "4 interpolated (Fz, Cz, Pz, Oz)" in caplog.text
    assert "COUNTER" not in session.judged_channels


# -- mains -----------------------------------------------------------------------------------
def hum_amplitude(x, sfreq, freq):
    """Amplitude of the ``freq`` sinusoid in ``(n_times,)`` by projection."""
    t = np.arange(x.shape[-1]) / sfreq
    basis = np.exp(-2j * np.pi * freq * t)
    return 2 * np.abs(x @ basis) / x.shape[-1]


def test_auto_notch_finds_60_hz_hum_and_an_explicit_value_wins(tmp_path):
    n_times = int(8 * SFREQ)
    rng = np.random.default_rng(8)
    data = synthetic_eeg(None, N_EEG, SFREQ, n_times, seed=8)  # it hums a little at 50 Hz
    t = np.arange(n_times) / SFREQ
    data += 400e-6 * np.sin(2 * np.pi * 60 * t + rng.uniform(0, 6, (N_EEG, 1)))  # America
    path = write_fif(tmp_path / "us_raw.fif", data)

    def run(**filter_settings):
        config = session_config(filter=FilterConfig(**filter_settings))
        session = LiveSession(config, source=ReplaySource(path, speed=0), generate=False,
                              threaded=False)
        told = []
        session.callbacks.event.append(told.append)
        session.start()
        while not session.source.finished:
            session.step()
        session.step()
        session.stop()
        late = session.filtered.get(int(4 * SFREQ), n_times)[0][:N_EEG]
        return session, [e for e in told if e.kind == "mains"], late

    session, told, late = run()  # the default: notch = "auto"
    assert FilterConfig().notch == "auto"
    assert session.mains_freq == 60.0
    assert len(told) == 1 and told[0].extra["freq"] == 60.0
    assert "60 Hz" in told[0].description and told[0].sample_index <= 2.1 * SFREQ
    residual = max(hum_amplitude(ch, SFREQ, 60) for ch in late)
    assert residual < 0.01 * 400e-6
    # a user's explicit 50 Hz wins: no measuring, the hum stays in
    session, told, late = run(notch=50.0)
    assert session.mains is None and session.mains_freq == 50.0 and not told
    assert min(hum_amplitude(ch, SFREQ, 60) for ch in late) > 0.5 * 400e-6


def test_mains_filter_keeps_watching_and_moves_the_notch():
    sfreq = 500.0
    n_times = int(40 * sfreq)
    rng = np.random.default_rng(9)
    t = np.arange(n_times) / sfreq
    x = 10e-6 * rng.standard_normal((4, n_times))
    switch = int(15 * sfreq)
    x[:, :switch] += 100e-6 * np.sin(2 * np.pi * 50 * t[:switch])
    x[:, switch:] += 100e-6 * np.sin(2 * np.pi * 60 * t[switch:])
    filt = MainsFilter(design_filter(sfreq, 1.0, 100.0), 4, sfreq)
    assert "measuring (50+60 Hz)" in repr(filt)
    out = np.concatenate([filt(x[:, a:a + 50]) for a in range(0, n_times, 50)], axis=1)
    changes = filt.pop_changes()
    assert [(c.freq, c.sample_index) for c in changes] == [
        (50.0, int(2 * sfreq)), (60.0, int(32 * sfreq))]  # measured at 22 s and 32 s
    assert filt.freq == 60.0 and not filt.pop_changes()
    tail = out[:, -int(4 * sfreq):]
    assert max(hum_amplitude(ch, sfreq, 60) for ch in tail) < 2e-6
    # the new notch starts warm: the hum is gone from the first sample it filters
    edge = int(32 * sfreq)
    assert np.abs(out[:, edge - 50:edge]).max() > 80e-6  # the 50 Hz notch let 60 Hz through
    assert np.abs(out[:, edge:edge + 50]).max() < 30e-6  # noise only (10 µV sd), no ringing


def test_no_hum_no_notch_and_nan_does_not_break_the_measure():
    rng = np.random.default_rng(10)
    x = 10e-6 * rng.standard_normal((3, int(3 * SFREQ)))
    x[0, 100] = np.nan
    filt = MainsFilter(design_filter(SFREQ, 5.0, 95.0), 3, SFREQ, rows=[1, 2])
    out = filt(x)
    assert filt.decided and filt.freq is None
    assert "no mains hum found" in filt.pop_changes()[0].message
    assert np.isnan(out[0, 100]) and np.isfinite(np.delete(out, [100], axis=1)).all()


def test_harmonics_are_notched_when_asked():
    sfreq = 500.0
    n_times = int(6 * sfreq)
    t = np.arange(n_times) / sfreq
    rng = np.random.default_rng(12)
    x = 5e-6 * rng.standard_normal((3, n_times)) + 100e-6 * (
        np.sin(2 * np.pi * 60 * t) + np.sin(2 * np.pi * 120 * t + 1.0))
    late = slice(int(4 * sfreq), n_times)
    for harmonics, expected in ((False, 50e-6), (True, 2e-6)):
        filt = MainsFilter(design_filter(sfreq, 1.0, 200.0), 3, sfreq, harmonics=harmonics)
        out = np.concatenate([filt(x[:, a:a + 20]) for a in range(0, n_times, 20)], axis=1)
        assert filt.freq == 60.0
        assert max(hum_amplitude(ch, sfreq, 60) for ch in out[:, late]) < 2e-6
        worst = max(hum_amplitude(ch, sfreq, 120) for ch in out[:, late])
        assert (worst < expected) if harmonics else (worst > expected)
    # an explicit frequency with harmonics: one notch per multiple below Nyquist, no measuring
    from dd_live.session import make_filter

    explicit = make_filter(FilterConfig(notch=60, notch_harmonics=True), sfreq, 3)
    assert isinstance(explicit, StreamingFilter) and explicit.sos.shape[0] == 4 + 4  # band + 4
    assert isinstance(make_filter(FilterConfig(), sfreq, 3), MainsFilter)
    assert make_filter(FilterConfig(notch="off", l_freq=None, h_freq=None), sfreq, 3) is None


def test_command_line_notch_and_exclude_win_over_the_config_file(tmp_path):
    from dd_live import cli

    path = tmp_path / "c.toml"
    path.write_text('[filter]\nnotch = 50\n[channels]\nexclude = ["Fz"]\n')
    parse = cli.build_parser().parse_args
    config = cli._config_from_args(parse(["run", "--model", "tiny", "--config", str(path)]))
    assert config.filter.notch == 50.0 and config.channels.exclude == ("Fz",)
    config = cli._config_from_args(parse(["run", "--model", "tiny", "--config", str(path),
                                          "--notch", "auto", "--exclude", "M1,M2"]))
    assert config.filter.notch == "auto" and config.channels.exclude == ("M1", "M2")
    with pytest.raises(SystemExit):
        parse(["run", "--notch", "mains"])


def test_a_model_folder_that_names_its_channels_is_fed_by_name(tmp_path):
    """The shipped demo model, copied, with ``"channels"`` in its dd_live.json: the input is
    mapped by name (a Cyton-like order with old 10-20 names), not by position."""
    import json
    import shutil

    from dd_live.assets import demo_model_dir

    folder = tmp_path / "named"
    shutil.copytree(demo_model_dir(), folder)
    settings = json.loads((folder / "dd_live.json").read_text())
    model_names = list(reversed(NAMES))  # the demo's 16 channels, in another order
    settings["channels"] = model_names
    (folder / "dd_live.json").write_text(json.dumps(settings))
    decoder = EEGDecoder.from_config(GeneratorConfig(model=str(folder), steps=1))
    assert decoder.ch_names == tuple(model_names) and decoder.n_channels == 16
    old = {"T7": "T3", "T8": "T4", "P7": "T5", "P8": "T6"}  # an older cap's names
    names = [old.get(n, n) for n in NAMES] + ["M1", "M2"]
    data = synthetic_eeg(None, len(names), SFREQ, int(2 * SFREQ), seed=13)
    path = write_fif(tmp_path / "cap_raw.fif", data, names=names)
    session, images, _, _ = run_file(path, session_config(), decoder)
    assert session.channel_map == [(m, old.get(m, m), "alias" if m in old else "name")
                                   for m in model_names]
    assert "M1" not in session.judged_channels and images
