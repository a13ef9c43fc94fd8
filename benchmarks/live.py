"""End-to-end benchmark of a live session: images per second, drops, latency, threads, start-up.

The synthetic headset (16 channels at 250 Hz by default, plus a channel "COUNTER" that counts
samples) runs through the whole app: acquisition thread, online filter, the trigger, the EEG
model and the sampler on the generation thread. Every figure is printed beside a baseline
measured in the same run, so a busy machine shows up in both:

- torch threads: the decoder alone with torch's own default (every core) against dd-live's
  default (cores - 1, one inter-op thread) and against one thread;
- the ``latest`` trigger (the default): images per second against 1 / generation time (the
  images' own encode + sample + decode time in the same run, so the machine's load is the
  same); it should reach 0.8 or more, with no window dropped; also against the decoder alone;
- the old default, ``interval`` windows every 0.5 s, on the same session set-up;
- latency from a window's last sample to its image (p50/p95) against the decoder alone;
- samples lost (counter holes; must be 0);
- ``--gui``: frames per second of the real trace view while generating, against paused;
- ``--runtimes`` (``--runtimes-only``): torch against ONNX Runtime on the same model (the
  decoder alone on the same windows, rounds interleaved; a headless live session each);
  ``--runtime`` picks the runtime of every other figure;
- ``--window``: the demo with the real window open (a laptop's 1366x768 screen) against
  headless, in one fresh process per display, alternating headless / window runs so a shared
  machine's load reaches both: images/s, latency p50/p95, the CPU time of the GUI thread
  (``time.thread_time`` on the Qt thread: drawing, spectrum, history, verdict) and the window's
  redraw rates; then the window alone (no generator: the full redraw rate) at 16 ch x 250 Hz and
  at 128 ch x 1 kHz. Offscreen (Qt's ``offscreen`` platform) always, and under Xvfb (a real X
  server: the frames travel to it) when ``xvfb-run`` is installed; for the ``--runtime`` (or
  each of ``--window-runtimes``);
- ``--all``: ``--runtimes --window --startup`` with the window rows for torch and ONNX: every
  figure of the CPU path in one run;
- ``--startup``: ``dd-live demo``'s window in a fresh process: time to the window on screen,
  to the first sample in it, to the first image (from the interpreter's start).

    .venv/bin/python benchmarks/live.py                   # the demo model, 20 s per mode
    .venv/bin/python benchmarks/live.py --model tiny --channels 128 --sfreq 1000
    .venv/bin/python benchmarks/live.py --startup --gui
    .venv/bin/python benchmarks/live.py --all            # the whole table in one run
    .venv/bin/python benchmarks/live.py --window-only --duration 10
    .venv/bin/python benchmarks/live.py --startup-only --repeats 3 --runtime torch
    .venv/bin/python benchmarks/live.py --runtimes-only --duration 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GUI_FPS = 30.0  # the window redraws its traces on a timer at about this rate
ACCEPT_RATIO = 0.8  # latest mode: images/s at least this share of 1 / generation time
WINDOW_RATIO = 0.9  # the demo with the window open: at least this share of headless images/s
GUI_CPU_GOAL = 0.15  # the window's drawing: at most this share of one core
SCREEN = (1366, 768)  # px, the laptop screen the window is measured on
WINDOW_ROUNDS = 2  # headless / window pairs per display (alternated)
SIGNAL_ONLY = ((16, 250.0), (128, 1000.0))  # channels, Hz of the window-alone runs
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

STARTUP_SCRIPT = r"""
import time
T0 = time.monotonic()
import json, sys
from PySide6 import QtCore, QtWidgets
from dd_live.cli import _config_from_args, build_parser
from dd_live.gui.main_window import MainWindow

app = QtWidgets.QApplication(sys.argv[:1])
window = MainWindow(_config_from_args(build_parser().parse_args(sys.argv[1:])), dialogs=False)
marks = {}
window.show()
app.processEvents()
marks["window"] = time.monotonic() - T0
window.start_session()

def poll():
    session = window.session
    now = time.monotonic() - T0
    if session is not None and session.raw is not None and session.raw.n_written:
        marks.setdefault("first_sample", now)
    if session is not None and getattr(session, "n_images", 0):
        marks.setdefault("first_image", now)
    if len(marks) == 3 or now > 120:
        timer.stop()
        window.closed.connect(app.quit)
        window.close()

timer = QtCore.QTimer()
timer.timeout.connect(poll)
timer.start(5)
app.exec()
print("STARTUP " + json.dumps(marks))
"""


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def decoder_alone(decoder, windows: list[np.ndarray], threads: int, repeats: int = 2) -> list[float]:
    """Seconds per window, the decoder alone on ``threads`` torch threads (one warm-up call;
    an ONNX decoder keeps the threads its sessions were made with)."""
    if getattr(decoder, "runtime", "torch") == "torch":
        import torch

        torch.set_num_threads(threads)
    if hasattr(decoder, "clear_interrupt"):
        decoder.clear_interrupt()  # the sessions' stop() interrupted it
    decoder(windows[0], 0)
    times = []
    for _ in range(repeats):
        for k, eeg in enumerate(windows):
            t0 = time.perf_counter()
            decoder(eeg, k)
            times.append(time.perf_counter() - t0)
    return times


def live_run(config, decoder, args, seconds: float) -> dict:
    """A threaded LiveSession on a wall-clock-paced synthetic headset, for ``seconds`` after
    a 2 s warm-up; images/s, drops, latencies, lost samples."""
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    source = SyntheticSource(args.channels, args.sfreq, counter=True, realtime=True, seed=0,
                             state="visual")
    session = LiveSession(config, source=source, decoder=decoder)
    latencies: list[float] = []
    generation: list[float] = []  # s per image inside the session (encode + sample + decode)
    session.callbacks.image.append(lambda r: latencies.append(r.timings["latency"]))
    session.callbacks.image.append(lambda r: generation.append(r.timings["total"]))
    session.start()
    try:
        time.sleep(2.0)  # the buffer fills, the first windows go through
        n0, t0, n_lat, n_gen = session.n_images, time.monotonic(), len(latencies), len(generation)
        time.sleep(seconds)
        rate = (session.n_images - n0) / (time.monotonic() - t0)
        data, _ = session.raw.latest(session.raw.n_held)
        windows = [session.preprocessor(w) for w in _windows_like(session, config)]
    finally:
        session.stop()
    counter = data[-1]
    lost = int(np.sum(np.diff(counter) != 1))
    return {"images_per_s": rate, "dropped": session.stats().n_dropped,
            "n_windows": session.n_windows, "n_images": session.n_images,
            "latencies": latencies[n_lat:], "generation": generation[n_gen:], "lost": lost,
            "windows": windows}


def _windows_like(session, config, n: int = 6):
    """Windows of the session's own filtered signal, for the decoder-alone baseline."""
    from dd_live.stream import Window

    sfreq = session.info.sfreq
    n_win = int(round(config.window.length * sfreq))
    data, timestamps = session.filtered.latest(n_win * (n + 1))
    for k in range(n):
        seg = slice(k * n_win // 2, k * n_win // 2 + n_win)
        yield Window(0, n_win, data[:, seg], timestamps[seg], sfreq, "latest")


def measure_gui_fps(session_config, decoder, args, seconds: float) -> tuple[float, float]:
    """The real trace view redrawn at the window's 30 fps timer from a generating session,
    then from the same session with generation paused."""
    from PySide6 import QtWidgets

    from dd_live.gui.traces import TracesView
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    source = SyntheticSource(args.channels, args.sfreq, counter=True, realtime=True, seed=0)
    session = LiveSession(session_config, source=source, decoder=decoder).start()
    view = TracesView()
    view.resize(1280, 800)
    view.show()
    view.set_channels(session.info.ch_names, session.info.sfreq)
    view.set_span(10.0)
    rates = []
    try:
        time.sleep(1.0)
        for paused in (False, True):
            if paused:
                session.pause_generation()
            frames, t0 = 0, time.monotonic()
            next_frame = t0
            while time.monotonic() - t0 < seconds:
                frames += bool(view.refresh(session.filtered))
                app.processEvents()
                next_frame += 1.0 / GUI_FPS
                time.sleep(max(0.0, next_frame - time.monotonic()))
            rates.append(frames / (time.monotonic() - t0))
    finally:
        view.close()
        session.stop()
    return rates[0], rates[1]


def _wait_for(app, condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.005)
    return True


def _run_loop(app, seconds: float) -> None:
    """The Qt event loop for ``seconds`` (timers, queued images, painting: as in the app)."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def x_server_seconds() -> float | None:
    """CPU seconds used so far by the X server of ``$DISPLAY`` when it is an Xvfb on this
    machine (the frames the window sends cost it too), else None."""
    display = os.environ.get("DISPLAY", "")
    if not display or not Path("/proc").is_dir():
        return None
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"Xvfb") or display.encode() not in argv:
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return None


def window_run(config, decoder, channels: int, sfreq: float, seconds: float,
               settings_path: str) -> dict:
    """The real MainWindow around a session like :func:`live_run`'s (wall-clock synthetic
    headset, the same decoder), for ``seconds`` after a 2 s warm-up: images/s, latencies,
    the GUI thread's CPU share, trace redraws and spectrum estimates per second, the share of
    the time the window saw the generator behind."""
    from PySide6 import QtCore, QtWidgets

    from dd_live.gui.main_window import MainWindow
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    latencies: list[float] = []

    def factory(cfg):
        source = SyntheticSource(channels, sfreq, counter=True, realtime=True, seed=0,
                                 state="visual")
        session = LiveSession(cfg, source=source, decoder=decoder,
                              generate=decoder is not None)
        session.callbacks.image.append(lambda r: latencies.append(r.timings["latency"]))
        return session

    settings = QtCore.QSettings(settings_path, QtCore.QSettings.Format.IniFormat)
    window = MainWindow(config, session_factory=factory, settings=settings, dialogs=False)
    window.show()
    window.start_session()
    if not _wait_for(app, lambda: window.phase == "running", 120):
        raise RuntimeError(f"the window did not start: {window.banner.text()}")
    _run_loop(app, 2.0)
    session = window.session
    n0, n_lat, t0, cpu0 = session.n_images, len(latencies), time.monotonic(), time.thread_time()
    x0 = x_server_seconds()
    redraws0, spectra0 = window.traces.n_redraws, window.spectrum.n_updates
    behind = []
    probe = QtCore.QTimer()
    probe.timeout.connect(lambda: behind.append(window.generator_load.behind))
    probe.start(100)
    _run_loop(app, seconds)
    probe.stop()
    elapsed = time.monotonic() - t0
    x1 = x_server_seconds()
    out = {"images_per_s": (session.n_images - n0) / elapsed,
           "gui_cpu": (time.thread_time() - cpu0) / elapsed,
           "x_cpu": (x1 - x0) / elapsed if x0 is not None and x1 is not None else None,
           "redraws_per_s": (window.traces.n_redraws - redraws0) / elapsed,
           "spectra_per_s": (window.spectrum.n_updates - spectra0) / elapsed,
           "behind": float(np.mean(behind)) if behind else 0.0,
           "latencies": latencies[n_lat:], "size": [window.width(), window.height()],
           "platform": app.platformName()}
    closed = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    if not _wait_for(app, lambda: bool(closed), 60):
        raise RuntimeError("the window did not close")
    return out


def window_probe(args) -> dict:
    """In this (fresh) process: headless and window runs alternated, then the window alone."""
    from PySide6 import QtWidgets

    from dd_live.cli import _config_from_args, build_parser
    from dd_live.decoding import EEGDecoder, set_torch_threads

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    config = _config_from_args(build_parser().parse_args(
        ["demo", "--model", args.model, "--runtime", args.runtime, "--source",
         f"synthetic?n_channels={args.channels}&sfreq={args.sfreq:g}"]))
    if args.model == "tiny":
        config = config.replace(generator={"steps": 4})
    config = config.replace(quality={"mode": "off"})
    decoder = EEGDecoder.from_config(config.generator)
    set_torch_threads(config.generator.threads)
    settings = str(Path(tempfile.mkdtemp(prefix="dd-live-bench-")) / "window.ini")
    headless, windowed = [], []
    live_run(config, decoder, args, 1.0)  # warm-up
    for _ in range(WINDOW_ROUNDS):
        headless.append(live_run(config, decoder, args, args.duration))
        windowed.append(window_run(config, decoder, args.channels, args.sfreq, args.duration,
                                   settings))
    signal_only = []
    for channels, sfreq in SIGNAL_ONLY:
        alone = config.replace(source={"spec": f"synthetic?n_channels={channels}"
                                                f"&sfreq={sfreq:g}"}, generator={"model": "none"})
        run = window_run(alone, None, channels, sfreq, args.duration / 2, settings)
        signal_only.append({"channels": channels, "sfreq": sfreq,
                            **{k: run[k] for k in ("gui_cpu", "redraws_per_s", "x_cpu")}})
    return {"platform": app.platformName(), "size": windowed[0]["size"],
            "runtime": getattr(decoder, "runtime", "torch"),
            "headless": [{"images_per_s": r["images_per_s"], "latencies": r["latencies"]}
                         for r in headless],
            "window": windowed, "signal_only": signal_only}


def _probe_env(display: str) -> tuple[list[str], dict[str, str]]:
    """Command prefix and environment of a window probe on ``display``: offscreen (a 1366x768
    screen through the offscreen platform's config file) or xvfb (a 1366x768 X server)."""
    env = {**os.environ, "LSLAPICFG": os.environ["LSLAPICFG"]}
    if display == "offscreen":
        screen = Path(tempfile.mkdtemp(prefix="dd-live-screen-")) / "screen.json"
        screen.write_text(json.dumps({"screens": [{"name": "laptop", "x": 0, "y": 0,
                                                   "width": SCREEN[0], "height": SCREEN[1],
                                                   "logicalDpi": 96, "dpr": 1}]}))
        env["QT_QPA_PLATFORM"] = f"offscreen:configfile={screen}"
        return [], env
    env["QT_QPA_PLATFORM"] = "xcb"
    return ["xvfb-run", "-a", "-s", f"-screen 0 {SCREEN[0]}x{SCREEN[1]}x24"], env


def measure_window(args, display: str, runtime: str) -> dict:
    prefix, env = _probe_env(display)
    command = [*prefix, sys.executable, str(Path(__file__).resolve()), "--window-probe",
               "--model", args.model, "--runtime", runtime, "--channels", str(args.channels),
               "--sfreq", str(args.sfreq), "--duration", str(args.duration)]
    timeout = 120 + 2 * WINDOW_ROUNDS * (args.duration + 4) + 2 * (args.duration / 2 + 4) * 2
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("WINDOW "):
            return json.loads(line[len("WINDOW "):])
    raise RuntimeError(f"the {display} window probe failed: {proc.stderr.strip()[-800:]}")


def report_window(args) -> None:
    """Rows: images/s and latency headless vs with the window, the GUI thread's CPU, the
    window's redraw rates, per display (offscreen; Xvfb when installed)."""
    displays = ["offscreen"] + (["xvfb"] if shutil.which("xvfb-run") else [])
    print(f"\n{'window (' + str(WINDOW_ROUNDS) + ' runs each, alternated)':<44} {'window':>9} "
          f"{'headless':>9} {'ratio':>7}")
    runs = [(display, runtime) for runtime in args.window_runtimes or [args.runtime]
            for display in displays]
    for display, runtime in runs:
        try:
            probe = measure_window(args, display, runtime)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"{display} ({runtime}): no result ({exc})")
            continue
        w, h = probe["size"]
        label = f"{display} {w}x{h}, {probe['runtime']}"
        display = f"{display}, {probe['runtime']}"
        headless = float(np.mean([r["images_per_s"] for r in probe["headless"]]))
        window = float(np.mean([r["images_per_s"] for r in probe["window"]]))
        ratio = window / headless if headless else float("nan")
        print(f"{label + ': images/s':<44} {window:>9.2f} {headless:>9.2f} {ratio:>7.2f}   "
              f"(>= {WINDOW_RATIO} {'met' if ratio >= WINDOW_RATIO else 'NOT met'}; runs: "
              + ", ".join(f"{r['images_per_s']:.1f}" for r in probe["window"]) + " vs "
              + ", ".join(f"{r['images_per_s']:.1f}" for r in probe["headless"]) + ")")
        lat_w = [x for r in probe["window"] for x in r["latencies"]]
        lat_h = [x for r in probe["headless"] for x in r["latencies"]]
        for q in (50, 95):
            pw, ph = percentile(lat_w, q), percentile(lat_h, q)
            print(f"{f'{display}: latency p{q} (ms)':<44} {1000 * pw:>9.0f} {1000 * ph:>9.0f} "
                  f"{pw / ph:>7.2f}")
        cpu = float(np.mean([r["gui_cpu"] for r in probe["window"]]))
        behind = float(np.mean([r["behind"] for r in probe["window"]]))
        redraws = float(np.mean([r["redraws_per_s"] for r in probe["window"]]))
        spectra = float(np.mean([r["spectra_per_s"] for r in probe["window"]]))
        x_cpu = [r["x_cpu"] for r in probe["window"] if r.get("x_cpu") is not None]
        x_note = f"; the X server {100 * np.mean(x_cpu):.1f} % more" if x_cpu else ""
        print(f"{f'{display}: GUI thread, generating (% core)':<44} {100 * cpu:>9.1f} "
              f"{100 * GUI_CPU_GOAL:>9.0f} {cpu / GUI_CPU_GOAL:>7.2f}   (baseline: the goal; "
              f"{redraws:.1f} trace redraws/s, {spectra:.2f} spectra/s, generator behind "
              f"{behind:.0%} of the time{x_note})")
        for run in probe["signal_only"]:
            what = f"{run['channels']} ch {run['sfreq']:g} Hz"
            print(f"{f'{display}: GUI, no images, {what} (% core)':<44} "
                  f"{100 * run['gui_cpu']:>9.1f} {100 * GUI_CPU_GOAL:>9.0f} "
                  f"{run['gui_cpu'] / GUI_CPU_GOAL:>7.2f}   ({run['redraws_per_s']:.1f} trace "
                  "redraws/s" + (f"; the X server {100 * run['x_cpu']:.1f} % more"
                                 if run.get("x_cpu") is not None else "") + ")")
    if not shutil.which("xvfb-run"):
        print("  (no xvfb-run here: offscreen only)")


#: Baselines for the start-up, each in a fresh interpreter in the same run: an empty Qt main
#: window shown (the least any window costs), and importing the generator's stack (torch and
#: diffusers' models: the least the first image costs, before any model is read).
BARE_WINDOW_SCRIPT = r"""
import time
T0 = time.monotonic()
import sys
from PySide6 import QtWidgets
app = QtWidgets.QApplication(sys.argv[:1])
window = QtWidgets.QMainWindow()
window.show()
app.processEvents()
print("SECONDS", time.monotonic() - T0)
"""
GENERATOR_IMPORT_SCRIPT = r"""
import time
T0 = time.monotonic()
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
print("SECONDS", time.monotonic() - T0)
"""


def _fresh_seconds(script: str) -> float:
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("SECONDS "):
            return float(line.split()[1])
    raise RuntimeError(f"a start-up baseline failed: {proc.stderr.strip()[-500:]}")


def measure_startup(model_args: list[str]) -> dict:
    proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, "demo", *model_args],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    for line in proc.stdout.splitlines():
        if line.startswith("STARTUP "):
            return json.loads(line[len("STARTUP "):])
    raise RuntimeError(f"the start-up probe failed: {proc.stderr.strip()[-500:]}")


def report_startup(model_args: list[str], repeats: int = 1) -> None:
    """Time to window / first sample / first image (median of ``repeats`` fresh processes),
    beside the bare-window and generator-import baselines measured in between."""
    runs, bare, stack = [], [], []
    for _ in range(repeats):
        runs.append(measure_startup(model_args))
        bare.append(_fresh_seconds(BARE_WINDOW_SCRIPT))
        stack.append(_fresh_seconds(GENERATOR_IMPORT_SCRIPT))
    baselines = {"window": (float(np.median(bare)), "an empty Qt window"),
                 "first_sample": (float(np.median(bare)), "an empty Qt window"),
                 "first_image": (float(np.median(stack)), "importing torch + diffusers' models")}
    print(f"\n{'start-up (s, median of ' + str(repeats) + ')':<44} {'dd-live':>9} "
          f"{'baseline':>9} {'ratio':>7}")
    for key in ("window", "first_sample", "first_image"):
        values = [run[key] for run in runs if key in run]
        label = "start-up: time to " + key.replace("_", " ") + " (s)"
        base, what = baselines[key]
        if len(values) < len(runs):
            print(f"{label:<44} {'never':>9}")
            continue
        value = float(np.median(values))
        print(f"{label:<44} {value:>9.2f} {base:>9.2f} {value / base:>7.2f}   (baseline: {what})")
    print("  (a fresh `dd-live demo` window, from the interpreter's start, imports included)")


def report_runtimes(config, args) -> None:
    """torch vs ONNX Runtime on the same model: the decoder alone on the same windows (rounds
    interleaved, so a shared machine's load falls on both) and a headless live session each."""
    from dd_live.decoding import EEGDecoder

    decoders = {name: EEGDecoder.from_config(config.replace(generator={"runtime": name}).generator)
                for name in ("torch", "onnx")}
    threads = config.generator.threads
    windows = live_run(config, decoders["onnx"], args, 1.0)["windows"]
    alone: dict[str, list[float]] = {name: [] for name in decoders}
    for _ in range(3):
        for name, decoder in decoders.items():
            alone[name] += decoder_alone(decoder, windows, threads, repeats=1)
    live = {name: live_run(config, decoder, args, args.duration / 2)
            for name, decoder in decoders.items()}
    print(f"\n{'runtime (same model, same windows)':<44} {'onnx':>9} {'torch':>9} {'ratio':>7}")
    t_onnx, t_torch = percentile(alone["onnx"], 50), percentile(alone["torch"], 50)
    print(f"{'decoder alone: images per second':<44} {1 / t_onnx:>9.2f} {1 / t_torch:>9.2f} "
          f"{t_torch / t_onnx:>7.2f}   (median of {len(alone['onnx'])} windows each)")
    r_onnx, r_torch = live["onnx"]["images_per_s"], live["torch"]["images_per_s"]
    print(f"{'headless live: images per second':<44} {r_onnx:>9.2f} {r_torch:>9.2f} "
          f"{r_onnx / r_torch:>7.2f}   (latest trigger, {args.duration / 2:g} s each)")
    for q in (50, 95):
        lo, lt = percentile(live["onnx"]["latencies"], q), percentile(live["torch"]["latencies"], q)
        print(f"{f'headless live: latency p{q} (ms)':<44} {1000 * lo:>9.0f} {1000 * lt:>9.0f} "
              f"{lo / lt:>7.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo", help="'demo' (default), 'tiny' or a folder")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--sfreq", type=float, default=250.0)
    parser.add_argument("--duration", type=float, default=20.0, help="s of live generation")
    parser.add_argument("--gui", action="store_true", help="also the trace view's frame rate")
    parser.add_argument("--window", action="store_true",
                        help="also the demo with the window open vs headless (offscreen, Xvfb)")
    parser.add_argument("--window-only", action="store_true",
                        help="only the window rows (no other live runs)")
    parser.add_argument("--window-probe", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--startup", action="store_true",
                        help="also time to window / first sample / first image (fresh process)")
    parser.add_argument("--startup-only", action="store_true",
                        help="only the start-up times (no live runs)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="fresh processes per start-up figure (the median is shown)")
    parser.add_argument("--runtime", choices=("auto", "torch", "onnx"), default="auto",
                        help="the model's runtime ([generator] runtime) for every figure")
    parser.add_argument("--runtimes-only", action="store_true",
                        help="only torch vs ONNX Runtime on the model (decoder alone, headless)")
    parser.add_argument("--runtimes", action="store_true",
                        help="also torch vs ONNX Runtime on the model (decoder alone, headless)")
    parser.add_argument("--window-runtimes", nargs="+", choices=("auto", "torch", "onnx"),
                        help="the window rows for each of these runtimes (default: --runtime)")
    parser.add_argument("--all", action="store_true",
                        help="--runtimes --window --startup, window rows for torch and ONNX")
    args = parser.parse_args(argv)
    if args.all:
        args.runtimes = args.window = args.startup = True
        args.window_runtimes = args.window_runtimes or ["torch", "onnx"]
    if args.window_probe:  # one display's measurement, in a fresh process (report_window)
        print("WINDOW " + json.dumps(window_probe(args)))
        return 0
    if args.startup_only:
        report_startup(["--model", args.model, "--runtime", args.runtime], args.repeats)
        return 0
    if args.window_only:
        report_window(args)
        return 0

    from dd_live.cli import _config_from_args, build_parser
    from dd_live.config import resolve_threads
    from dd_live.decoding import EEGDecoder, set_torch_threads

    model_args = ["--model", args.model, "--runtime", args.runtime]
    config = _config_from_args(build_parser().parse_args(["demo", *model_args]))
    if args.model == "tiny":
        config = config.replace(generator={"steps": 4})
    config = config.replace(quality={"mode": "off"})  # every window is generated from
    if args.runtimes_only:
        report_runtimes(config, args)
        return 0
    decoder = EEGDecoder.from_config(config.generator)
    session_threads = set_torch_threads(config.generator.threads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"dd-live live benchmark: {args.channels} ch @ {args.sfreq:g} Hz, model "
          f"{decoder.description or args.model} ({config.generator.steps} steps), {cores} cores, "
          f"torch threads {session_threads} (the model's setting: {config.generator.threads}; "
          f"dd-live's default: {resolve_threads(0)})")

    # 1. the latest trigger (the default) and, on the same set-up, the old interval default;
    #    the decoder alone on the session's windows just before and just after (a shared
    #    machine's load changes: the faster of the two is the baseline, a conservative ratio)
    warm = live_run(config, decoder, args, 1.0)["windows"]
    before = decoder_alone(decoder, warm, session_threads)
    latest = live_run(config, decoder, args, args.duration)
    windows = latest["windows"]
    after = decoder_alone(decoder, windows, session_threads)
    alone = min(before, after, key=lambda times: percentile(times, 50))
    interval = live_run(config.replace(window={"mode": "interval", "hop": 0.5}), decoder, args,
                        args.duration / 2)
    # 2. the generation time per thread count
    thread_rows = []
    for label, n in (("every core (torch)", cores), ("cores - 1 (dd-live)", resolve_threads(0)),
                     ("one", 1)):
        thread_rows.append((label, n, percentile(decoder_alone(decoder, windows, n), 50)))
    set_torch_threads(config.generator.threads)
    gen = percentile(alone, 50)

    print(f"\n{'measure':<44} {'live':>9} {'baseline':>9} {'ratio':>7}")
    busy = float(np.mean(latest["generation"]))  # the same images, the same load
    ratio = latest["images_per_s"] * busy
    print(f"{'latest: images per second':<44} {latest['images_per_s']:>9.2f} {1 / busy:>9.2f} "
          f"{ratio:>7.2f}   (baseline 1 / generation time in the same run; >= {ACCEPT_RATIO} "
          f"{'met' if ratio >= ACCEPT_RATIO else 'NOT met'})")
    print(f"{'latest: images/s vs the decoder alone':<44} {latest['images_per_s']:>9.2f} "
          f"{1 / gen:>9.2f} {latest['images_per_s'] * gen:>7.2f}   (decoder alone, best of "
          f"before/after: a shared machine's load moves it)")
    print(f"{'latest: windows dropped':<44} {latest['dropped']:>9d}")
    print(f"{'interval 0.5 s (old default): images/s':<44} {interval['images_per_s']:>9.2f} "
          f"{1 / gen:>9.2f} {interval['images_per_s'] * gen:>7.2f}")
    print(f"{'interval 0.5 s: windows dropped':<44} {interval['dropped']:>9d}")
    lat = latest["latencies"]
    a50, a95 = percentile(alone, 50), percentile(alone, 95)
    for q, a in ((50, a50), (95, a95)):
        p = percentile(lat, q)
        print(f"{f'latest: latency p{q} (ms)':<44} {1000 * p:>9.0f} {1000 * a:>9.0f} "
              f"{p / a:>7.2f}   (baseline: the decoder alone)")
    print(f"{'samples lost':<44} {latest['lost'] + interval['lost']:>9d}")
    base = thread_rows[0][2]
    for label, n, t in thread_rows:
        print(f"{f'generation (ms), {n} threads = {label}':<44} {1000 * t:>9.0f} {1000 * base:>9.0f} "
              f"{base / t:>7.2f}   (speed-up over every core)")
    if args.gui:
        generating, paused = measure_gui_fps(config, decoder, args, min(10.0, args.duration))
        print(f"{f'GUI fps ({args.channels} ch, {GUI_FPS:g} target)':<44} {generating:>9.1f} "
              f"{paused:>9.1f} {generating / paused:>7.2f}   (baseline: generation paused)")
    if args.runtimes:
        report_runtimes(config, args)
    if args.window:
        report_window(args)
    if args.startup:
        report_startup(model_args, args.repeats)
    print(f"\nlatest: {latest['n_windows']} windows, {latest['n_images']} images; interval: "
          f"{interval['n_windows']} windows, {interval['n_images']} images")
    return 0 if latest["lost"] == 0 and interval["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
