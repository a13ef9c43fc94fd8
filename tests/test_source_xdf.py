"""XDF replay: a file written here in the XDF layout (an EEG stream in µV with a sample counter,
plus a string marker stream) comes out sample-identical, with its markers as events.

No XDF writer is packaged for Python, so ``write_xdf`` below writes the format's chunks
directly, as the XDF specification lays them out: file header, stream headers, one samples
chunk per stream, clock offsets, stream footers.
"""

import struct

import numpy as np

from dd_live.sources.replay import ReplaySource, read_recording

SFREQ = 250.0
N_TIMES = 500
CH_NAMES = ("Fz", "Cz", "COUNTER")


def _chunk(tag: int, content: bytes) -> bytes:
    return struct.pack("<BQH", 8, len(content) + 2, tag) + content


def _varlen(n: int) -> bytes:
    return struct.pack("<BI", 4, n)


def _stream_header(name, stype, n_channels, srate, fmt, labels=()):
    channels = "".join(f"<channel><label>{label}</label><unit>microvolts</unit></channel>"
                       for label in labels)
    return (f'<?xml version="1.0"?><info><name>{name}</name><type>{stype}</type>'
            f"<channel_count>{n_channels}</channel_count><nominal_srate>{srate}</nominal_srate>"
            f"<channel_format>{fmt}</channel_format><source_id>{name}-id</source_id>"
            f"<desc><channels>{channels}</channels></desc></info>").encode()


def _footer(first, last, count):
    return (f'<?xml version="1.0"?><info><first_timestamp>{first}</first_timestamp>'
            f"<last_timestamp>{last}</last_timestamp><sample_count>{count}</sample_count>"
            "</info>").encode()


def write_xdf(path, data_uv, timestamps, markers):
    """``data_uv[n_channels, n_times]`` as float32 stream 1; ``markers`` [(t, text)] stream 2."""
    out = [b"XDF:", _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')]
    out.append(_chunk(2, struct.pack("<I", 1) + _stream_header(
        "eeg", "EEG", data_uv.shape[0], SFREQ, "float32", CH_NAMES)))
    out.append(_chunk(2, struct.pack("<I", 2) + _stream_header(
        "markers", "Markers", 1, 0, "string")))
    samples = b"".join(b"\x08" + struct.pack("<d", t) + column.astype("<f4").tobytes()
                       for t, column in zip(timestamps, data_uv.T))
    out.append(_chunk(3, struct.pack("<I", 1) + _varlen(len(timestamps)) + samples))
    strings = b"".join(b"\x08" + struct.pack("<d", t) + _varlen(len(s)) + s.encode()
                       for t, s in markers)
    out.append(_chunk(3, struct.pack("<I", 2) + _varlen(len(markers)) + strings))
    for stream_id in (1, 2):  # a zero clock offset at each end, as LabRecorder writes them
        for t in (timestamps[0], timestamps[-1]):
            out.append(_chunk(4, struct.pack("<Idd", stream_id, t, 0.0)))
    out.append(_chunk(6, struct.pack("<I", 1) + _footer(timestamps[0], timestamps[-1],
                                                        len(timestamps))))
    out.append(_chunk(6, struct.pack("<I", 2) + _footer(markers[0][0], markers[-1][0],
                                                        len(markers))))
    path.write_bytes(b"".join(out))


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
