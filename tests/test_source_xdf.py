"""XDF replay: a file written here in the XDF layout (an EEG stream in µV with a sample counter,
plus a string marker stream) comes out sample-identical, with its markers as events.

No XDF writer is packaged for Python, so ``write_xdf`` below writes the format's chunks
directly, as the XDF specification lays them out: file header, stream headers, one samples
chunk per stream, clock offsets, stream footers.
"""

import logging
import re
import struct

import numpy as np
import pytest

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources import open_source
from dd_live.sources.replay import ReplaySource, read_recording

SFREQ = 250.0
N_TIMES = 500
CH_NAMES = ("Fz", "Cz", "COUNTER")


def _chunk(tag: int, content: bytes) -> bytes:
    return struct.pack("<BQH", 8, len(content) + 2, tag) + content


def _varlen(n: int) -> bytes:
    return struct.pack("<BI", 4, n)


def _stream_header(name, stype, n_channels, srate, fmt, labels=(), unit="microvolts",
                   types=None):
    """``unit``: one for all channels, a sequence (one each) or None (no unit tag)."""
    units = [unit] * len(labels) if unit is None or isinstance(unit, str) else list(unit)
    types = types or [None] * len(labels)
    channels = "".join(
        f"<channel><label>{label}</label>"
        + (f"<unit>{u}</unit>" if u is not None else "")
        + (f"<type>{t}</type>" if t is not None else "") + "</channel>"
        for label, u, t in zip(labels, units, types))
    return (f'<?xml version="1.0"?><info><name>{name}</name><type>{stype}</type>'
            f"<channel_count>{n_channels}</channel_count><nominal_srate>{srate}</nominal_srate>"
            f"<channel_format>{fmt}</channel_format><source_id>{name}-id</source_id>"
            f"<desc><channels>{channels}</channels></desc></info>").encode()


def _footer(first, last, count):
    return (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
            f"<last_timestamp>{last}</last_timestamp><sample_count>{count}</sample_count>"
            "</info>").encode()


def xdf_stream(name, stype, timestamps, values, srate=SFREQ, labels=(), unit="microvolts",
               offsets=None, chunk=None, types=None, first_stamp_only=False):
    """One stream for :func:`write_xdf_streams`. ``values``: ``(n_channels, n_times)`` numbers
    (float32 on disk) or a list of strings (a marker stream); ``offsets``: ``[(time, offset)]``
    clock offsets on the stream's clock (default: zero at both ends); ``chunk``: samples per
    samples chunk (default: all in one); ``first_stamp_only``: only the first sample of each
    chunk carries its time stamp, the others are deduced from the rate (as LabRecorder
    writes a regular stream)."""
    is_string = isinstance(values, list)
    n_channels = 1 if is_string else values.shape[0]
    if offsets is None:
        ends = (timestamps[0], timestamps[-1]) if len(timestamps) else (0.0, 1.0)
        offsets = [(t, 0.0) for t in ends]
    return dict(name=name, type=stype, timestamps=np.asarray(timestamps, dtype=float),
                values=values, srate=srate, labels=labels, unit=unit, offsets=offsets,
                chunk=chunk or max(len(timestamps), 1), types=types,
                fmt="string" if is_string else "float32", n_channels=n_channels,
                first_stamp_only=first_stamp_only)


def write_xdf_streams(path, streams):
    """The XDF chunks, as the specification lays them out: file header, stream headers, one
    samples chunk per stream, clock offsets, stream footers."""
    out = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    for sid, s in enumerate(streams, start=1):
        out.append(_chunk(2, struct.pack("<I", sid) + _stream_header(
            s["name"], s["type"], s["n_channels"], s["srate"], s["fmt"], s["labels"], s["unit"],
            s["types"])))
    for sid, s in enumerate(streams, start=1):
        stamps = s["timestamps"]
        for first in range(0, len(stamps), s["chunk"]):
            part = slice(first, first + s["chunk"])
            if s["fmt"] == "string":
                samples = b"".join(b"\x08" + struct.pack("<d", t) + _varlen(len(v)) + v.encode()
                                   for t, v in zip(stamps[part], s["values"][part]))
            else:
                samples = b"".join(
                    (b"\x00" if s["first_stamp_only"] and k else b"\x08" + struct.pack("<d", t))
                    + column.astype("<f4").tobytes()
                    for k, (t, column) in enumerate(zip(stamps[part], s["values"][:, part].T)))
            out.append(_chunk(3, struct.pack("<I", sid) + _varlen(len(stamps[part])) + samples))
    for sid, s in enumerate(streams, start=1):
        for t, offset in s["offsets"]:
            out.append(_chunk(4, struct.pack("<Idd", sid, t, offset)))
    for sid, s in enumerate(streams, start=1):
        stamps = s["timestamps"]
        if len(stamps):
            out.append(_chunk(6, struct.pack("<I", sid) + _footer(stamps[0], stamps[-1],
                                                                    len(stamps))))
    path.write_bytes(b"".join(out))


def write_xdf(path, data_uv, timestamps, markers):
    """``data_uv[n_channels, n_times]`` as float32 stream 1; ``markers`` [(t, text)] stream 2."""
    write_xdf_streams(path, [
        xdf_stream("eeg", "EEG", timestamps, data_uv, labels=CH_NAMES),
        xdf_stream("markers", "Markers", [t for t, _ in markers], [m for _, m in markers],
                   srate=0),
    ])


def test_xdf_replays_sample_identical_with_markers(tmp_path):
    rng = np.random.default_rng(0)
    eeg_uv = rng.normal(0, 20, (2, N_TIMES))
    counter = np.arange(N_TIMES, dtype=float)[None]
    data_uv = np.vstack([eeg_uv, counter])
    timestamps = 100.0 + np.arange(N_TIMES) / SFREQ
    path = tmp_path / "session.xdf"
    write_xdf(path, data_uv, timestamps, [(100.4, "stim/face"), (101.0, "stim/house")])

    recording = read_recording(path)
    assert recording.ch_names == CH_NAMES
    assert recording.sfreq == SFREQ
    assert [(round(onset, 3), text) for onset, _, text in recording.annotations] == \
        [(0.4, "stim/face"), (1.0, "stim/house")]

    source = ReplaySource(path, speed=0).start()
    chunks, events = [], []
    while not source.finished:
        data, _ = source.read()
        chunks.append(data)
        events += source.pop_events()
    source.stop()
    replayed = np.concatenate(chunks, axis=1)
    np.testing.assert_allclose(replayed[:2], eeg_uv.astype(np.float32) * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(replayed[2] / 1e-6, np.arange(N_TIMES), rtol=1e-12)  # µV-scaled
    assert [e.description for e in events if e.kind == "marker"] == ["stim/face", "stim/house"]




def test_xdf_markers_placed_by_time_stamps_across_a_clock_reset(tmp_path, caplog):
    """The amplifier's computer resets its clock (and pauses 1.5 s) half-way; its true rate is
    250.5 Hz against a nominal 250; the stimulus program runs on a third clock. Markers must
    land on the sample whose recorder-clock time is nearest to theirs."""
    # imported here: benchmarks/faults.py loads this module's XDF writers from outside pytest
    from tests.test_readers import replay

    rng = np.random.default_rng(3)
    true_rate, n_half = 250.5, 1000
    # recorder clock L of each data sample: 2000 + ..., then a 1.5-s pause
    l_first = 2000.0 + np.arange(n_half) / true_rate
    l_second = l_first[-1] + 1.5 + np.arange(n_half) / true_rate
    data_l = np.r_[l_first, l_second]
    # the amplifier's clock: L - 1000 before the reset, L - 2001 after (offsets every second)
    source_clock = np.r_[l_first - 1000.0, l_second - 2001.0]
    jitter = rng.uniform(-0.001, 0.001, 2 * n_half)
    data_offsets = [(t, 1000.0) for t in np.arange(1000.0, 1004.0)] + \
                   [(t, 2001.0) for t in np.arange(3.0, 8.0)]
    counter = np.arange(2 * n_half, dtype=float)[None]
    eeg_uv = np.vstack([rng.normal(0, 20, (2, 2 * n_half)), counter])
    # markers on the stimulus clock L - 500, inside the data, and three outside it
    inside = np.sort(np.r_[rng.uniform(l_first[0], l_first[-1], 20),
                           rng.uniform(l_second[0], l_second[-1], 20)])
    outside = np.array([l_first[0] - 1.0, l_first[-1] + 0.75, l_second[-1] + 1.5])  # mid: pause
    marker_l = np.r_[inside, outside]
    order = np.argsort(marker_l)
    texts = [f"m{k}" for k in range(len(marker_l))]
    marker_stream = xdf_stream(
        "stim", "Markers", marker_l[order] - 500.0, [texts[k] for k in order], srate=0,
        offsets=[(t, 500.0) for t in np.arange(1490.0, 1515.0)])
    path = tmp_path / "reset.xdf"
    write_xdf_streams(path, [
        xdf_stream("amp", "EEG", source_clock + jitter, eeg_uv, labels=CH_NAMES,
                   offsets=data_offsets),
        marker_stream,
    ])

    with caplog.at_level(logging.WARNING):
        source, data, _, events = replay(f"file:{path}")
    np.testing.assert_array_equal(data[2], counter[0] * 1e-6)  # all 2000 samples, in order
    placed = {e.description: e.sample_index for e in events if e.kind == "marker"}
    expected = {texts[k]: int(np.argmin(np.abs(data_l - marker_l[k]))) for k in range(40)}
    assert set(placed) == set(expected)
    offsets = np.array([placed[t] - expected[t] for t in expected])
    assert np.abs(offsets).max() <= 1, offsets
    # the replayed counter at each marker is the stamp-matched sample
    assert all(abs(data[2, placed[t]] / 1e-6 - expected[t]) <= 1 for t in expected)
    # markers outside the data are reported, not dropped silently
    notices = [e for e in events if e.kind == "notice"]
    assert sorted(e.extra["marker"] for e in notices) == sorted(texts[40:])
    assert caplog.text.count("not placed") == 3
    # the 1.5-s pause is a gap of the right size at the first sample after it
    gaps = [(e.sample_index, e.extra["n_missing"]) for e in events if e.kind == "gap"]
    assert len(gaps) == 1 and gaps[0][0] == n_half
    assert abs(gaps[0][1] - round((l_second[0] - l_first[-1]) * SFREQ - 1)) <= 2


def test_xdf_picks_the_non_empty_eeg_stream_and_stream_option(tmp_path):
    rng = np.random.default_rng(4)
    stamps = 10.0 + np.arange(N_TIMES) / SFREQ
    first = rng.normal(0, 20, (3, N_TIMES))
    second = rng.normal(0, 20, (3, N_TIMES))
    path = tmp_path / "three.xdf"
    write_xdf_streams(path, [
        xdf_stream("gyro", "Motion", stamps, rng.normal(0, 1, (3, N_TIMES)), labels=CH_NAMES),
        xdf_stream("empty", "EEG", [], np.zeros((3, 0)), labels=CH_NAMES),
        xdf_stream("cap", "EEG", stamps, first, labels=CH_NAMES),
        xdf_stream("cap2", "EEG", stamps, second, labels=CH_NAMES),
    ])
    np.testing.assert_allclose(read_recording(path).data, first.astype(np.float32) * 1e-6)
    source = open_source(f"file:{path}?stream=cap2&speed=0")
    np.testing.assert_allclose(source.recording.data, second.astype(np.float32) * 1e-6)
    with pytest.raises(ConfigError, match="no stream named 'nope'.*'cap2'"):
        open_source(f"file:{path}?stream=nope")
    with pytest.raises(FileFormatError, match="'empty'.*not a non-empty stream"):
        read_recording(path, stream="empty")


def test_xdf_without_units_judged_by_amplitude(tmp_path, caplog):
    eeg_uv = np.random.default_rng(5).normal(0, 38.4, (3, N_TIMES))
    path = tmp_path / "nounit.xdf"
    write_xdf_streams(path, [xdf_stream("eeg", "EEG", 1.0 + np.arange(N_TIMES) / SFREQ, eeg_uv,
                                        labels=CH_NAMES, unit=None)])
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    assert "read as microvolts" in caplog.text
    np.testing.assert_allclose(recording.data, eeg_uv.astype(np.float32) * 1e-6, rtol=1e-6)
    rms = np.sqrt(np.mean(recording.data**2))
    assert 1e-5 < rms < 1e-4  # 38 µV, not "38.4 V"


def _xdf_bytes(tmp_path):
    eeg_uv = np.random.default_rng(6).normal(0, 20, (3, N_TIMES))
    path = tmp_path / "ok.xdf"
    write_xdf(path, eeg_uv, 1.0 + np.arange(N_TIMES) / SFREQ, [(1.5, "a"), (2.0, "b")])
    return path.read_bytes()


def _sample_count_offset(content: bytes) -> int:
    """Byte offset of the sample count of the first samples chunk (tag 3)."""
    position = 4
    while True:
        width = content[position]
        length = int.from_bytes(content[position + 1 : position + 1 + width], "little")
        tag_at = position + 1 + width
        if struct.unpack("<H", content[tag_at : tag_at + 2])[0] == 3:
            return tag_at + 2 + 4 + 1  # tag, stream id, count's length byte
        position = tag_at + length


DAMAGES = {
    "sample count": (lambda c: c[: (k := _sample_count_offset(c))] + struct.pack("<I", 10**8)
                     + c[k + 4 :], "says 100000000 samples of 3 channels, which does not fit"),
    "chunk length": (lambda c: c[:4] + b"\x08" + struct.pack("<Q", 2**40) + c[5 + 8 :],
                     "beyond the end of the file"),
    "cut short": (lambda c: c[: len(c) * 2 // 3],
                  "holds no non-empty stream with a sampling rate.*'eeg' .type 'EEG', 0 samples"),
    "garbage": (lambda c: c[:4] + np.random.default_rng(7).bytes(len(c) - 4), "ok.xdf"),
    "values": (lambda c: c.replace(np.float32(1.0).tobytes()[:0] + c[3000:3008],
                                   b"\x7f\x7f\x7f\x7f\x7f\x7f\x7f\x7f", 1),
               "is damaged: .*values up to 3.4e\\+38"),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_damaged_xdf_is_one_clear_line(damage, tmp_path):
    change, message = DAMAGES[damage]
    path = tmp_path / "ok.xdf"
    path.write_bytes(change(_xdf_bytes(tmp_path)))
    with pytest.raises(FileFormatError, match=message) as error:
        read_recording(path)
    assert "\n" not in str(error.value) and "ok.xdf" in str(error.value)


def test_xdf_with_mne_lsl_one_hot_annotations(tmp_path):
    """An XDF recorded from an mne-lsl player: its "<name>-annotations" stream has one channel
    per description, the value the duration (-1 for 0 s)."""
    stamps = 50.0 + np.arange(N_TIMES) / SFREQ
    one_hot = np.array([[-1.0, 0.0], [0.0, 0.5], [-1.0, 0.0]]).T  # (n_channels, n_samples)
    path = tmp_path / "player.xdf"
    write_xdf_streams(path, [
        xdf_stream("player", "eeg", stamps, np.zeros((3, N_TIMES)), labels=CH_NAMES),
        xdf_stream("player-annotations", "annotations", stamps[[100, 250, 400]], one_hot,
                   srate=0, labels=("stim/a", "stim/b"), unit="none"),
    ])
    assert read_recording(path).annotations == (
        (100 / SFREQ, 0.0, "stim/a"), (250 / SFREQ, 0.5, "stim/b"), (400 / SFREQ, 0.0, "stim/a"))


def test_xdf_cut_short_keeps_the_complete_chunks(tmp_path, caplog):
    """A recorder that crashed leaves its last chunk cut: the complete chunks are read."""
    eeg_uv = np.random.default_rng(8).normal(0, 20, (3, N_TIMES))
    path = tmp_path / "crashed.xdf"
    write_xdf_streams(path, [xdf_stream("eeg", "EEG", 1.0 + np.arange(N_TIMES) / SFREQ, eeg_uv,
                                        labels=CH_NAMES, chunk=50)])
    content = path.read_bytes()
    cut = content.index(struct.pack("<d", 1.0 + 420 / SFREQ)) + 5  # inside the 9th chunk
    path.write_bytes(content[:cut])
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    assert "crashed.xdf ends inside a chunk" in caplog.text
    assert recording.n_times == 400  # 8 whole chunks of 50
    np.testing.assert_allclose(recording.data, eeg_uv[:, :400].astype(np.float32) * 1e-6,
                               rtol=1e-6)


def _chunks(content: bytes) -> list[tuple[int, int]]:
    """``(byte offset, tag)`` of every chunk of an XDF file's bytes."""
    chunks, position = [], 4
    while position < len(content):
        width = content[position]
        length = int.from_bytes(content[position + 1 : position + 1 + width], "little")
        chunks.append((position, struct.unpack("<H", content[position + 1 + width :][:2])[0]))
        position += 1 + width + length
    return chunks


def _labrecorder_like(path, eeg_uv):
    """An EEG stream in chunks of 50 samples, each stamped once (as LabRecorder writes)."""
    write_xdf_streams(path, [xdf_stream("eeg", "EEG", 1.0 + np.arange(N_TIMES) / SFREQ, eeg_uv,
                                        labels=CH_NAMES, chunk=50, first_stamp_only=True)])
    content = path.read_bytes()
    samples = [(k + 1, at) for k, (at, tag) in enumerate(_chunks(content)) if tag == 3]
    return content, samples


def _replayed_notices(path) -> list[str]:
    source = ReplaySource(path, speed=0).start()
    notices = []
    while not source.finished:
        source.read()
        notices += [e.description for e in source.pop_events() if e.kind == "notice"]
    source.stop()
    return notices


def test_xdf_with_random_bytes_in_a_chunk_keeps_the_chunks_before(tmp_path, caplog):
    """Random bytes inside the 6th samples chunk: pyxdf reads them as time stamps and loses
    its place in the file, then reads a "chunk length" from sample bytes (an invalid length
    here; in other files one of gigabytes, which it tries to allocate: MemoryError). The chunk
    is named with its offset, the 5 chunks before it are read sample-exact."""
    eeg_uv = np.random.default_rng(11).normal(0, 20, (3, N_TIMES))
    path = tmp_path / "garbled.xdf"
    content, samples = _labrecorder_like(path, eeg_uv)
    number, at = samples[5]
    garbage = at + 200
    path.write_bytes(content[:garbage] + np.random.default_rng(3).bytes(64)
                     + content[garbage + 64 :])
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    expected = f"samples chunk {number} (at byte {at})"
    assert f"garbled.xdf is damaged: {expected}" in caplog.text
    assert re.search(r"sample \d+ \(at byte \d+\) has a time-stamp byte count of \d+", caplog.text)
    assert f"Reading the {number - 1} complete chunks before it ({at} bytes)" in caplog.text
    assert recording.n_times == 250  # the 5 samples chunks before the damaged one
    np.testing.assert_allclose(recording.data, eeg_uv[:, :250].astype(np.float32) * 1e-6,
                               rtol=1e-6)
    assert expected in recording.events[-1].description and recording.events[-1].index == 249
    assert any(expected in text for text in _replayed_notices(path))


def test_xdf_chunk_length_larger_than_the_file_keeps_the_chunks_before(tmp_path, caplog):
    eeg_uv = np.random.default_rng(12).normal(0, 20, (3, N_TIMES))
    path = tmp_path / "long.xdf"
    content, samples = _labrecorder_like(path, eeg_uv)
    number, at = samples[7]
    path.write_bytes(content[: at + 1] + struct.pack("<Q", 2_100_000_000) + content[at + 9 :])
    with caplog.at_level(logging.WARNING):
        recording = read_recording(path)
    size = f"{len(content) / 1e3:.1f} kB"
    assert (f"long.xdf is damaged: chunk {number} (at byte {at}) claims 2.1 GB, beyond the end "
            f"of the file ({size})") in caplog.text
    np.testing.assert_allclose(recording.data, eeg_uv[:, :350].astype(np.float32) * 1e-6,
                               rtol=1e-6)


def test_xdf_damaged_before_any_samples_is_refused_naming_the_chunk(tmp_path):
    path = tmp_path / "header.xdf"
    content, samples = _labrecorder_like(path, np.zeros((3, N_TIMES)))
    header_at = _chunks(content)[1][0]  # the stream header
    path.write_bytes(content[: header_at + 40] + b"\x00<<>>" + content[header_at + 46 :])
    with pytest.raises(FileFormatError, match=rf"header.xdf is damaged: the stream header, "
                       rf"chunk 2 \(at byte {header_at}\), is not valid XML"):
        read_recording(path)


def test_xdf_channel_types_and_mne_lsl_units(tmp_path):
    """mne-lsl writes units as powers of ten ("-6": µV, "0": none) and channel types: EEG in
    microvolts is scaled to volts, a trigger channel keeps its values and type."""
    eeg_uv = np.random.default_rng(9).normal(0, 20, (2, N_TIMES))
    trigger = np.zeros((1, N_TIMES))
    trigger[0, 100] = 5
    path = tmp_path / "mne_lsl.xdf"
    write_xdf_streams(path, [xdf_stream(
        "player", "eeg", 3.0 + np.arange(N_TIMES) / SFREQ, np.vstack([eeg_uv, trigger]),
        labels=("Fz", "Cz", "STI"), unit=("-6", "-6", "0"), types=("eeg", "eeg", "stim"))])
    recording = read_recording(path)
    assert recording.ch_types == ("eeg", "eeg", "stim")
    assert recording.units == ("V", "V", "0")
    np.testing.assert_allclose(recording.data[:2], eeg_uv.astype(np.float32) * 1e-6, rtol=1e-6)
    np.testing.assert_array_equal(recording.data[2], trigger[0])
    assert recording.annotations == ((100 / SFREQ, 0.0, "5"),)  # the trigger, as find_events


def test_xdfz_reads_like_xdf(tmp_path):
    import gzip

    eeg_uv = np.random.default_rng(10).normal(0, 20, (3, N_TIMES))
    plain = tmp_path / "rec.xdf"
    write_xdf(plain, eeg_uv, 1.0 + np.arange(N_TIMES) / SFREQ, [(1.5, "a"), (2.0, "b")])
    packed = tmp_path / "rec.xdfz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = read_recording(plain), read_recording(packed)
    np.testing.assert_array_equal(a.data, b.data)
    assert a.annotations == b.annotations and len(b.annotations) == 2


def test_xdfz_cut_short_keeps_the_complete_chunks(tmp_path, caplog):
    """A compressed recording whose gzip stream stops part way (the recorder crashed): the
    chunks that decompress whole are read, as in a plain XDF cut short."""
    import gzip

    eeg_uv = np.random.default_rng(13).normal(0, 20, (3, N_TIMES))
    plain = tmp_path / "rec.xdf"
    content, samples = _labrecorder_like(plain, eeg_uv)
    packed = tmp_path / "crashed.xdfz"
    packed.write_bytes(gzip.compress(content)[:3000])
    with caplog.at_level(logging.WARNING):
        recording = read_recording(packed)
    assert "crashed.xdfz ends inside a chunk" in caplog.text
    assert "the compressed data end inside it" in caplog.text
    assert 0 < recording.n_times < N_TIMES and recording.n_times % 50 == 0
    np.testing.assert_allclose(recording.data, eeg_uv[:, : recording.n_times].astype(np.float32)
                               * 1e-6, rtol=1e-6)
