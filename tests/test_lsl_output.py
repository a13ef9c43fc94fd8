"""Decoded output as LSL streams, received by real pylsl inlets as another program would.

- A real LiveSession (default settings, ``[output] lsl = true``, recording on) reads a real LSL
  outlet process (tests/lsl_outlet.py, channel 0 a sample counter); an inlet in the test gets
  every decoded window's vector on ``<name>-decoded`` and every image's JSON on
  ``<name>-images``, in order, nothing missing over 50+ windows, each stamped within one chunk
  of the LSL time stamp the EEG outlet gave the window's last sample (read by a third inlet,
  as LabRecorder reads the EEG beside them).
- ``dd-live demo --lsl-out`` and ``dd-live run --lsl-out`` started as a user starts them.

The tiny random models stand in for a trained one (no weights can be downloaded here).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mne
import numpy as np
import pylsl
import pytest
from test_fault_lsl import Outlet, phase

from dd_live.config import AppConfig, GeneratorConfig, OutputConfig, RecordConfig, SourceConfig
from dd_live.decoding import EEGDecoder
from dd_live.outlets import DECODED_SUFFIX, IMAGES_SUFFIX
from dd_live.recording import read_events
from dd_live.session import LiveSession

REPO = Path(__file__).resolve().parents[1]
SFREQ = 500.0
CHUNK = 10  # samples per push of the EEG outlet: "within one chunk" is CHUNK / SFREQ
RESOLVE = 2.0  # s; liblsl may take ~0.5 s to answer a query for an irregular stream


class CapturingDecoder:
    """A real tiny EEGDecoder that keeps each vector it returns, to compare with what arrives."""

    def __init__(self, decoder: EEGDecoder) -> None:
        self._decoder = decoder
        self.vectors: list[np.ndarray] = []

    def __getattr__(self, name):
        return getattr(self._decoder, name)

    def __call__(self, eeg, seed):
        decoded = self._decoder(eeg, seed)
        if not decoded.interrupted:
            self.vectors.append(np.array(decoded.clip, dtype=np.float32))
        return decoded


def open_inlet(name: str, timeout: float = 60.0) -> pylsl.StreamInlet:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = pylsl.resolve_byprop("name", name, timeout=RESOLVE)
        if found:
            inlet = pylsl.StreamInlet(found[0], max_buflen=360, recover=False)
            inlet.open_stream(timeout=10)
            return inlet
    raise AssertionError(f"no LSL stream {name!r} within {timeout:g} s")


def pull_all(inlet: pylsl.StreamInlet, timeout: float = 0.5) -> tuple[list, list]:
    samples, stamps = [], []
    while True:
        chunk, times = inlet.pull_chunk(timeout=timeout)
        if not times:
            return samples, stamps
        samples += chunk
        stamps += times


def eeg_stamps(inlet: pylsl.StreamInlet, until: int) -> dict[int, float]:
    """Counter value -> the time stamp the EEG outlet gave that sample (on this clock), for the
    samples up to counter value ``until`` (the outlet goes on pushing meanwhile)."""
    samples, stamps = [], []
    deadline = time.monotonic() + 60
    while (not samples or samples[-1][0] < until) and time.monotonic() < deadline:
        chunk, times = inlet.pull_chunk(timeout=0.5)
        samples += chunk
        stamps += times
    offset = inlet.time_correction(timeout=5)
    return {int(round(s[0])): t + offset for s, t in zip(samples, stamps)}


def _stop(outlet: Outlet) -> None:
    """End the EEG outlet process early: its remaining samples are not needed."""
    outlet.proc.kill()
    outlet.proc.wait(timeout=30)
    outlet.proc.stdin.close()
    outlet.proc.stdout.close()


def test_live_session_publishes_every_window_and_image_in_order(stream_name, tmp_path):
    decoder = CapturingDecoder(EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=1)))
    # up to 2 min of EEG pushed at 4x: more than 50 images need (the outlet is stopped then)
    outlet = Outlet([phase(stream_name, n_samples=240000, sfreq=SFREQ, chunk=CHUNK,
                           speed=4.0, hold=10.0)])
    eeg = open_inlet(stream_name)  # the EEG as a recorder beside dd-live gets it
    config = AppConfig(source=SourceConfig(spec=f"lsl:{stream_name}"),
                       generator=GeneratorConfig(model="tiny", steps=1),
                       record=RecordConfig(enabled=True, root=str(tmp_path), name="s"),
                       output=OutputConfig(lsl=True))
    session = LiveSession(config, decoder=decoder, threaded=False)
    results, counters = [], {}

    def on_image(result):  # the counter value of the window's last sample, while it is there
        results.append(result)
        counters[result.index] = int(
            session.raw.get(result.window_stop - 1, result.window_stop)[0][0, 0])

    session.callbacks.image.append(on_image)
    try:
        session.start()
        decoded = open_inlet(stream_name + DECODED_SUFFIX)
        images = open_inlet(stream_name + IMAGES_SUFFIX)
        deadline = time.monotonic() + 110
        while len(results) < 50 and time.monotonic() < deadline:
            session.step()
        vectors, decoded_stamps = pull_all(decoded)
        markers, marker_stamps = pull_all(images)
        decoded_info = decoded.info(timeout=5)  # (kept: its desc() lives inside it)
        sent = eeg_stamps(eeg, max(counters.values(), default=0))
    finally:
        session.stop()
        _stop(outlet)
    assert len(results) >= 50
    # every decoded window, in order, nothing missing, exactly the vector the decoder gave
    assert len(vectors) == len(decoder.vectors) == len(results)
    np.testing.assert_array_equal(np.array(vectors, dtype=np.float32), np.array(decoder.vectors))
    dim = decoder.vectors[0].size
    # stamped with the LSL time of the window's last sample: within one chunk of the stamp the
    # EEG outlet gave that very sample (found through its counter)
    np.testing.assert_allclose(decoded_stamps, [r.t_last for r in results], rtol=0, atol=1e-9)
    for result, stamp in zip(results, decoded_stamps):
        assert abs(stamp - sent[counters[result.index]]) <= CHUNK / SFREQ
    # one JSON marker per image, in order, with the window, seed, renderer and file
    assert len(markers) == len(results)
    np.testing.assert_array_equal(marker_stamps, decoded_stamps)
    folder = session.closed_segments[0][0] if session.closed_segments else None
    folder = folder or next(tmp_path.iterdir())
    recorded = {e["index"]: e for e in read_events(folder) if e["type"] == "image"}
    for result, (text,) in zip(results, markers):
        marker = json.loads(text)
        assert marker["index"] == result.index
        assert (marker["start"], marker["stop"]) == (result.window_start, result.window_stop)
        assert marker["t_first"] == pytest.approx(result.t_first, abs=1e-9)
        assert marker["t_last"] == pytest.approx(result.t_last, abs=1e-9)
        assert marker["seed"] == result.seed and marker["renderer"] == "tiny"
        assert Path(marker["file"]).is_file()
        assert Path(marker["file"]).relative_to(folder).as_posix() == \
            recorded[result.index]["images"][0]
    assert [json.loads(m[0])["index"] for m in markers] == list(range(len(results)))
    # desc: one channel per dimension (label, unit, type) and what decoded them
    desc = decoded_info.desc()
    channel, labels = desc.child("channels").child("channel"), []
    while not channel.empty():
        labels.append(channel.child_value("label"))
        assert channel.child_value("type") == "Embedding"
        channel = channel.next_sibling("channel")
    assert len(labels) == dim == decoded_info.channel_count()
    own = desc.child("dd-live")
    assert own.child_value("model") == "tiny"
    assert own.child("eeg_stream").child_value("name") == stream_name
    entry, n_mapped = own.child("channel_map").child("channel"), 0
    while not entry.empty():
        n_mapped += 1
        entry = entry.next_sibling("channel")
    assert n_mapped == decoder.n_channels


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _received(name: str, proc: subprocess.Popen) -> tuple[list, list, list, list]:
    """Both output streams of a dd-live process, read until it closes them (and ends)."""
    decoded = open_inlet(name + DECODED_SUFFIX, timeout=90)
    images = open_inlet(name + IMAGES_SUFFIX, timeout=10)
    vectors, decoded_stamps, markers, marker_stamps = [], [], [], []
    reading = [(decoded, vectors, decoded_stamps), (images, markers, marker_stamps)]
    while reading:
        for entry in list(reading):
            inlet, samples, stamps = entry
            try:
                chunk, times = inlet.pull_chunk(timeout=0.05)
            except pylsl.util.LostError:  # the session closed its outlets
                reading.remove(entry)
                continue
            samples += chunk
            stamps += times
            if not times and proc.poll() is not None:
                reading.remove(entry)
    return vectors, decoded_stamps, [json.loads(m[0]) for m in markers], marker_stamps


def _check_streams(vectors, decoded_stamps, markers, marker_stamps, stdout, sfreq, spacing):
    """Every image from the first one received to the last one made, each with its vector;
    ``spacing``: how far a window's stamps may stray from the nominal sample period (relative:
    0 for a clock at the nominal rate, a little for a dejittered LSL clock)."""
    assert len(markers) >= 3, stdout
    indices = [m["index"] for m in markers]
    n_images = int(stdout.rsplit(" windows, ", 1)[1].split(" images")[0])
    assert indices == list(range(indices[0], n_images))  # in order, none missing to the end
    by_stamp = dict(zip(decoded_stamps, vectors))
    missing = [m["index"] for m, t in zip(markers, marker_stamps)
               if t >= decoded_stamps[0] and t not in by_stamp]
    assert not missing, (missing, indices[-1], len(decoded_stamps), len(markers))
    for marker, stamp in zip(markers, marker_stamps):
        assert stamp == marker["t_last"]
        if stamp >= decoded_stamps[0]:  # (the -decoded inlet may have connected a bit later)
            assert len(by_stamp[stamp]) == len(vectors[0])
        # the source clock maps onto the LSL clock with one offset: the window's spacing kept
        assert marker["t_last"] - marker["t_first"] == pytest.approx(
            (marker["stop"] - marker["start"] - 1) / sfreq, rel=spacing, abs=1e-6)
        assert 0 < marker["t_image"] - marker["t_last"] < 30
    assert np.all(np.diff(decoded_stamps) > 0)


def test_dd_live_demo_lsl_out(stream_name, tmp_path):
    config = tmp_path / "out.toml"
    config.write_text(f'[output]\nlsl_name = "{stream_name}"\n')
    proc = subprocess.Popen(
        [sys.executable, "-m", "dd_live", "demo", "--headless", "--lsl-out", "--duration", "6",
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        received = _received(stream_name, proc)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    _check_streams(*received, stdout, sfreq=250.0, spacing=0)


def test_dd_live_run_lsl_out_is_named_after_the_eeg_stream(stream_name, tmp_path):
    # up to 2 min of EEG in real time (the outlet is stopped once dd-live is done)
    outlet = Outlet([phase(stream_name, n_samples=60000, sfreq=SFREQ, chunk=CHUNK, speed=1.0)])
    eeg = open_inlet(stream_name)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dd_live", "run", "--headless", "--lsl-out", "--source",
         f"lsl:{stream_name}", "--model", "demo", "--duration", "6", "--record", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        received = _received(stream_name, proc)
        stdout, stderr = proc.communicate(timeout=60)
        (folder,) = tmp_path.iterdir()
        raw = mne.io.read_raw_brainvision(folder / "eeg.vhdr", preload=True, verbose="error")
        counter = np.rint(raw.get_data(picks="COUNTER")[0]).astype(int)
        sent = eeg_stamps(eeg, int(counter.max(initial=0)))
    finally:
        proc.kill()
        _stop(outlet)
    assert proc.returncode == 0, stderr
    _check_streams(*received, stdout, sfreq=SFREQ, spacing=0.01)
    vectors, decoded_stamps, markers, _ = received
    for marker in markers:  # within one chunk of the EEG outlet's stamp of the window's end
        assert abs(marker["t_last"] - sent[counter[marker["stop"] - 1]]) <= CHUNK / SFREQ
        assert Path(marker["file"]).is_file() and Path(marker["file"]).parent.parent == folder


def test_the_published_vector_is_the_embedding_then_clip_then_the_pooled_context():
    """What ``-decoded`` carries for each kind of decoder result (the embedding route's
    ``embedding``, a DreamDiffusion model's ``clip``, else the context pooled over tokens)."""
    from dd_live.decoding import DecodedImages
    from dd_live.outlets import decoded_vector

    clip = np.arange(768, dtype=np.float32)
    decoded = DecodedImages([], [], {}, clip=clip)
    vector, kind = decoded_vector(decoded)
    assert kind == "clip" and vector.dtype == np.float32
    np.testing.assert_array_equal(vector, clip)
    decoded.embedding = np.ones(1024)  # the embedding route's field wins over clip
    vector, kind = decoded_vector(decoded)
    assert kind == "embedding" and vector.shape == (1024,) and vector.dtype == np.float32
    context = np.stack([np.zeros(768), 2 * np.ones(768)])[None]  # [1, tokens, 768]
    decoded = DecodedImages([], [], {})
    decoded.context = context
    vector, kind = decoded_vector(decoded)
    assert kind == "pooled-context"
    np.testing.assert_array_equal(vector, np.ones(768, dtype=np.float32))
    assert decoded_vector(DecodedImages([], [], {})) == (None, "")
