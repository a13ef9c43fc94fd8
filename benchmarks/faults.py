"""What each real-signal fault costs, in one table: fault -> samples lost, time until the next
image, images lost, what the user was told.

Every row runs the app's own path: a non-threaded :class:`LiveSession` (interval windows of
0.44 s every 0.5 s, so the number of windows is fixed; the tiny random model, 2 steps) stepped
through the signal, against a baseline measured in the same run on the same signal without the
fault. Times are signal seconds (the session is stepped, not timed), so the table is the same
on any machine:

- samples lost: samples sent (or in the file) that never reached the ring buffer/recording;
- time until the next image: from the end of the fault to the last sample of the first window
  after it that became an image (the best possible is one window length, 0.44 s);
- images lost: images of the baseline run minus images of the faulty run;
- told: the first warnings and events the user saw (log lines, stream events).

LSL rows use real pylsl outlets in a subprocess (this script with ``--outlet``); the write
failure runs in a subprocess under ``RLIMIT_FSIZE``; the file rows write their files with the
test suite's writers (``tests/test_readers.py``, ``tests/test_source_xdf.py``).

Run: ``python benchmarks/faults.py`` (about a minute on a 2-core machine).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))  # loopback only
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SFREQ = 250.0
LENGTH, HOP = 0.44, 0.5
SECONDS = 12.0
FAULT_AT = 5.0  # s into the signal
LSL_SFREQ = 500.0


# -- helpers ---------------------------------------------------------------------------------
class Told(logging.Handler):
    """Collects the warnings and errors dd-live logs."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _config(tmp: Path | None = None, spec: str = "synthetic"):
    from dd_live.config import AppConfig, GeneratorConfig, SourceConfig, WindowConfig

    config = AppConfig(source=SourceConfig(spec=spec),
                       window=WindowConfig(mode="interval", length=LENGTH, hop=HOP),
                       generator=GeneratorConfig(model="tiny", steps=2))
    if tmp is not None:
        config = config.replace(record={"enabled": True, "root": str(tmp), "name": "bench"})
    return config


class Run:
    """One stepped session: its images, events and what was logged."""

    def __init__(self, session, images, events, told) -> None:
        self.session, self.images, self.events, self.told = session, images, events, told

    def next_image_after(self, sample: int) -> float | None:
        """Signal seconds from ``sample`` to the end of the first image window starting at or
        after it."""
        stops = [im.window_stop for im in self.images if im.window_start >= sample]
        return (min(stops) - sample) / self.session.info.sfreq if stops else None

    def said(self, kinds=("gap", "discontinuity", "nonfinite", "bad_channel", "layout",
                          "disconnect", "notice")) -> str:
        seen = []
        lines = [line for line in self.told.lines if "mains" not in line]
        for text in [f"{e.kind}: {e.description}" for e in self.events if e.kind in kinds] + \
                lines:
            text = text.split(";")[0]
            if text not in seen:
                seen.append(text)
        return " | ".join(seen[:2]) or "(nothing)"


def run_session(config, decoder, make_source=None, until=None, timeout=60.0) -> Run:
    from dd_live.session import LiveSession

    told = Told()
    logging.getLogger("dd_live").addHandler(told)
    source = make_source() if make_source is not None else None  # what opening it says counts
    session = LiveSession(config, source=source, decoder=decoder, threaded=False)
    images, events = [], []
    session.callbacks.image.append(images.append)
    session.callbacks.event.append(events.append)
    try:
        session.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            session.step()
            if until is not None and until(session):
                break
            if until is None and session.source.finished:
                for _ in range(3):
                    session.step()
                break
    finally:
        session.stop()
        logging.getLogger("dd_live").removeHandler(told)
    return Run(session, images, events, told)


def replay(path: Path, decoder, tmp: Path | None = None, **sections) -> Run:
    from dd_live.sources.replay import ReplaySource

    return run_session(_config(tmp).replace(**sections), decoder,
                       make_source=lambda: ReplaySource(path, speed=0))


def write_fif(path: Path, data: np.ndarray, names) -> Path:
    import mne

    info = mne.create_info(list(names), SFREQ, "eeg")
    mne.io.RawArray(data, info, verbose="error").save(path, fmt="single", overwrite=True,
                                                      verbose="error")
    return path


def row(fault, lost, next_image, images_lost, told) -> dict:
    return {"fault": fault, "lost": lost,
            "next": "-" if next_image is None else f"{next_image:.2f} s",
            "images": images_lost, "told": told}


# -- stream-stage faults on a replayed file ---------------------------------------------------
def signal_rows(decoder, tmp: Path) -> list[dict]:
    from dd_live.sources.synthetic import STANDARD_NAMES, synthetic_eeg

    names = STANDARD_NAMES[:16]
    n_times = int(SECONDS * SFREQ)
    clean = synthetic_eeg(None, len(names), SFREQ, n_times, seed=2)
    base = replay(write_fif(tmp / "clean_raw.fif", clean, names), decoder)
    at = int(FAULT_AT * SFREQ)
    cases = []
    nan = clean.copy()
    nan[[3, 7], at] = np.nan  # one 4 ms sample on two channels
    cases.append(("NaN sample (2 ch, 4 ms)", nan, at + 1))
    inf = clean.copy()
    inf[:, at:at + int(0.2 * SFREQ)] = np.inf  # a 200 ms burst on every channel
    cases.append(("Inf burst (all ch, 200 ms)", inf, at + int(0.2 * SFREQ)))
    flat = clean.copy()
    flat[5, at:] = flat[5, at]  # an electrode unplugged for good
    cases.append(("flat channel (1 of 16)", flat, at))
    rows = []
    for label, data, end in cases:
        run = replay(write_fif(tmp / "fault_raw.fif", data, names), decoder)
        lost = n_times - run.session.raw.n_written
        rows.append(row(label, lost, run.next_image_after(end),
                        len(base.images) - len(run.images), run.said()))
    return rows


# -- LSL faults: real outlets in a subprocess -------------------------------------------------
def lsl_run(phases, decoder, until, tmp=None) -> Run:
    """The phases pushed by an outlet process; each outlet goes (a lost stream) once the
    session holds all its samples."""
    # the test suite's outlet process (tests/lsl_outlet.py), 4x real time; each outlet stays
    # open until this side says it holds all of its samples
    phases = [{"sfreq": LSL_SFREQ, "hold": 600.0, **p} for p in phases]
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "lsl_outlet.py"),
                             json.dumps(phases)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    released = []

    def until_and_release(session):
        if (session.raw is not None and len(released) < len(phases) - 1
                and session.raw.n_written >= phases[len(released)]["n_samples"]):
                proc.stdin.write("next\n")
                proc.stdin.flush()
                released.append(True)
        return until(session)

    try:
        # at most half a hop per read: every window is cut while the generator is free
        config = _config(tmp, spec=f"lsl:{phases[0]['name']}?max_chunk=125")
        return run_session(config, decoder, until=until_and_release)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def lsl_rows(decoder, tmp: Path) -> list[dict]:
    import mne

    n = 3000

    def name():
        return f"ddlive-bench-{uuid.uuid4().hex[:8]}"

    def phase(**kw):
        stream = kw.pop("name")
        return {"name": stream, "source_id": stream, "n_channels": 16, "first": 0,
                "n_samples": n, **kw}

    def done(count):
        return lambda s: s.raw is not None and s.raw.n_written >= count

    stream = name()
    base = lsl_run([phase(name=stream)], decoder, done(n))
    stream = name()
    jitter = lsl_run([phase(name=stream, jitter=0.02)], decoder, done(n))
    resets = jitter.session.acquisition.n_filter_resets
    rows = [row("±20 ms chunk-stamp jitter (LSL)", n - jitter.session.raw.n_written,
                None if resets else jitter.next_image_after(0),
                len(base.images) - len(jitter.images),
                f"{resets} filter restarts; " + jitter.said())]
    # 128 channels, lost, back with 64: a new recording segment
    stream = name()
    first = phase(name=stream, n_channels=128, n_samples=1500)
    second = phase(name=stream, n_channels=64, first=2000, n_samples=1500)
    folder = tmp / "reconnect"
    folder.mkdir()
    run = lsl_run([first, second], decoder,
                  lambda s: s.raw is not None and s.raw.n_channels == 64 and
                  s.raw.n_written >= 1500, tmp=folder)
    counters = []
    for segment in sorted(folder.iterdir()):
        raw = mne.io.read_raw_brainvision(segment / "eeg.vhdr", preload=True, verbose="error")
        counters.append(raw.get_data()[0])
    sent = set(range(1500)) | set(range(2000, 3500))
    got = set(np.concatenate(counters).astype(int).tolist())
    new_layout = [im for im in run.images if im.window_stop <= run.session.raw.n_written]
    next_image = (min(im.window_stop for im in new_layout) / LSL_SFREQ if new_layout else None)
    images_lost = 2 * len([k for k in range(100) if LENGTH + k * HOP <= 1500 / LSL_SFREQ]) \
        - len(run.images)
    rows.append(row(f"reconnect 128 -> 64 ch (LSL), {len(counters)} segments",
                    len(sent - got), next_image, images_lost, run.said(("layout",))))
    return rows


# -- write failure: RLIMIT_FSIZE in a subprocess ----------------------------------------------
WRITE_SCRIPT = textwrap.dedent("""
    import json, logging, resource, sys
    logging.basicConfig(level=logging.WARNING)  # as the command line does
    from dd_live.config import AppConfig, GeneratorConfig, RecordConfig, WindowConfig
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    config = AppConfig(window=WindowConfig(mode="interval", length=0.44, hop=0.5),
                       generator=GeneratorConfig(model="tiny", steps=2),
                       record=RecordConfig(enabled=True, root=sys.argv[1], name="full"))
    session = LiveSession(config, source=SyntheticSource(16, 250.0, counter=True,
                          realtime=False), threaded=False)
    session.start()
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
    failed_at = None
    while session.raw.n_written < 6000:
        session.step()
        if session.recording_error and failed_at is None:
            failed_at = (session.raw.n_written, session.n_images)
    session.stop()
    print(json.dumps({"failed_at": failed_at, "n_images": session.n_images,
                      "n_samples": session.raw.n_written, "error": session.recording_error}))
""")


def write_row(tmp: Path) -> dict:
    from dd_live.recording import read_timestamps

    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    proc = subprocess.run([sys.executable, "-c", WRITE_SCRIPT, str(tmp)], capture_output=True,
                          text=True, timeout=300, preexec_fn=preexec)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    (folder,) = [p for p in tmp.iterdir() if p.name.endswith("_full")]
    n_frames = (folder / "eeg.eeg").stat().st_size // (17 * 4)
    consistent = n_frames == read_timestamps(folder).size
    n_messages = proc.stderr.count("recording stopped")
    images_after = out["n_images"] - out["failed_at"][1]
    told = (f"{n_messages} message; files consistent: {consistent}; {images_after} images "
            f"after it; {out['error'].split(';')[0]}")
    return row("write failure (file size limit)", 0, None, 0, told)


# -- file faults (readers) --------------------------------------------------------------------
def file_rows(decoder, tmp: Path) -> list[dict]:
    rows = []
    for make in (openbci_row, bdf_row, unitless_row, xdf_row):
        try:
            rows.append(make(decoder, tmp))
        except Exception as exc:  # a row that cannot run says so in the table
            rows.append(row(f"({make.__name__}: could not run)", "-", None, "-",
                            f"{type(exc).__name__}: {exc}"))
    return rows


def openbci_row(decoder, tmp: Path) -> dict:
    readers = _load("test_readers")
    rng = np.random.default_rng(0)
    n = int(8 * SFREQ)
    exg = rng.normal(0, 15, (8, n))
    # OpenBCI GUI v6, Cyton, with dropped packets (3 + 300)
    index = np.arange(n) % 256
    unix = 1.7e9 + np.arange(n) / SFREQ + rng.uniform(0, 0.012, n)
    kept = np.setdiff1d(np.arange(n), [*range(500, 503), *range(1000, 1300)])
    path = tmp / "OpenBCI-RAW-2026-12-01_10-00-00.txt"
    written = readers.write_openbci(path, "cyton", exg[:, kept], index[kept], unix[kept])
    try:
        run = replay(path, decoder)
        label = "OpenBCI GUI v6 file, 303 dropped"
    except Exception:  # its EXG1.. names are taken for non-EEG by the channel stage
        run = replay(path, decoder, channels={"include": [f"EXG{k}" for k in range(1, 9)]})
        label = "OpenBCI v6, 303 dropped (needs include=EXG1..8)"
    delivered = run.session.raw.n_written
    return row(label, written.shape[1] - delivered,
               run.next_image_after(int(np.searchsorted(kept, 1300))), "-", run.said())


def bdf_row(decoder, tmp: Path) -> dict:
    readers = _load("test_readers")
    rng = np.random.default_rng(0)
    path = readers.write_edf(tmp / "open.bdf", rng.normal(0, 20, (4, 256 * 8)), 256.0)
    readers.set_record_count(path, "-1")
    run = replay(path, decoder)
    return row("BDF, n_records = -1", 256 * 8 - run.session.raw.n_written,
               run.next_image_after(0), "-", run.said())


def unitless_row(decoder, tmp: Path) -> dict:
    readers = _load("test_readers")
    rng = np.random.default_rng(0)
    n = int(8 * SFREQ)
    path = readers.write_edf(tmp / "nounit.edf", rng.normal(0, 25, (4, n)), SFREQ, unit="")
    run = replay(path, decoder)
    return row("EDF without units (µV numbers)", n - run.session.raw.n_written,
               run.next_image_after(0), "-", run.said())


def xdf_row(decoder, tmp: Path) -> dict:
    """XDF: a clock reset with a 1.5 s pause, markers on their own clock."""
    xdf = _load("test_source_xdf")
    rng = np.random.default_rng(0)
    half = 1000
    l_first = 2000.0 + np.arange(half) / SFREQ
    l_second = l_first[-1] + 1.5 + np.arange(half) / SFREQ
    stamps = np.r_[l_first - 1000.0, l_second - 2001.0]
    offsets = [(t, 1000.0) for t in np.arange(1000.0, 1005.0)] + \
              [(t, 2001.0) for t in np.arange(3.0, 9.0)]
    values = np.vstack([rng.normal(0, 20, (2, 2 * half)), np.arange(2 * half)[None]])
    marker_l = np.sort(np.r_[rng.uniform(l_first[0], l_first[-1], 10),
                             rng.uniform(l_second[0], l_second[-1], 10)])
    path = tmp / "reset.xdf"
    xdf.write_xdf_streams(path, [
        xdf.xdf_stream("amp", "EEG", stamps, values, labels=xdf.CH_NAMES, offsets=offsets),
        xdf.xdf_stream("stim", "Markers", marker_l - 500.0,
                       [f"m{k}" for k in range(20)], srate=0,
                       offsets=[(t, 500.0) for t in np.arange(1490.0, 1520.0)]),
    ])
    run = replay(path, decoder)
    placed = [e for e in run.events if e.kind == "marker"]
    return row(f"XDF clock reset, {len(placed)}/20 markers placed",
               2 * half - run.session.raw.n_written, run.next_image_after(half), "-",
               run.said())


def mne_lsl_row(decoder, tmp: Path) -> dict:
    import mne

    stream = f"ddlive-bench-{uuid.uuid4().hex[:8]}"
    n_times = 2500
    data = np.vstack([np.random.default_rng(1).normal(0, 20e-6, (4, n_times)),
                      np.arange(n_times)[None]])
    info = mne.create_info(["Fz", "Cz", "Pz", "Oz", "COUNTER"], SFREQ, ["eeg"] * 4 + ["misc"])
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_annotations(mne.Annotations(np.arange(1.0, 10.0), [0.0] * 9,
                                        ["cue"] * 9))
    path = tmp / "player_raw.fif"
    raw.save(path, verbose="error")
    script = ("import sys\nfrom mne_lsl.player import PlayerLSL\n"
              "p = PlayerLSL(sys.argv[1], chunk_size=25, name=sys.argv[2], source_id=sys.argv[2],"
              " annotations=True)\np.start()\nprint('ready', flush=True)\nsys.stdin.read()\n"
              "p.stop()\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(path), stream],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.strip() == "ready":
                break
        spec = f"lsl:{stream}?markers={stream}-annotations"
        run = run_session(_config(spec=spec), decoder,
                          until=lambda s: s.raw is not None and s.raw.n_written >= 1500)
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
        proc.stdout.close()
    info = run.session.info
    markers = [e.description for e in run.events if e.kind == "marker"]
    told = (f"types {sorted(set(info.ch_types))}, units {sorted(set(info.units))}; "
            f"markers {sorted(set(markers))}")
    data, _ = run.session.raw.get(0, run.session.raw.n_written)
    counter = np.diff(data[-1])
    lost = int(np.sum(counter[counter > 0] - 1))  # the player loops: the counter restarts
    return row("mne-lsl player (units '0', one-hot annotations)", lost,
               run.next_image_after(0), "-", told)


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("dd_live").setLevel(logging.WARNING)  # collected for the table, not shown
    logging.getLogger("dd_live").propagate = False
    from dd_live.config import GeneratorConfig
    from dd_live.decoding import EEGDecoder

    decoder = EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=2))
    decoder.warmup()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        only = sys.argv[1:]  # e.g. "lsl files": just those parts
        for part, make in (("signal", lambda: signal_rows(decoder, tmp)),
                           ("lsl", lambda: lsl_rows(decoder, tmp)),
                           ("write", lambda: [write_row(tmp)]),
                           ("files", lambda: file_rows(decoder, tmp)),
                           ("mne-lsl", lambda: [mne_lsl_row(decoder, tmp)])):
            if only and part not in only:
                continue
            try:
                rows += make()
            except Exception as exc:  # a row that cannot run says so in the table
                rows.append(row(f"({part}: could not run)", "-", None, "-",
                                f"{type(exc).__name__}: {exc}"))
    print(f"faults: {SECONDS:g} s of signal per file row at {SFREQ:g} Hz, interval windows "
          f"{LENGTH} s every {HOP} s; images lost = baseline images (same signal, no fault, "
          "same run) minus images with the fault; '-' where there is no baseline")
    widths = (46, 8, 10, 8)
    header = ("fault", "lost", "next img", "img lost", "what the user was told")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  " + header[-1])
    for r in rows:
        cells = (r["fault"], str(r["lost"]), r["next"], str(r["images"]))
        print("  ".join(c.ljust(w)[:w] for c, w in zip(cells, widths)) + "  " + r["told"][:150])


if __name__ == "__main__":
    main()
