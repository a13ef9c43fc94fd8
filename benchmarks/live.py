"""End-to-end benchmark of a live session: latency, images per second, GUI frame rate, loss.

A synthetic headset (128 channels at 1 kHz by default, channel "COUNTER" counts samples) runs
through the whole app: acquisition thread, online filter, windows, the EEG model and the sampler
on the generation thread, and the real trace view redrawn as fast as it can on this (main) thread.

Printed, each beside a baseline measured in the same run:

- latency from the last sample of a window to its image (p50/p95), against the decoder alone on
  the same windows (ratio = what the live pipeline adds);
- images per second, against the decoder's own rate;
- GUI frames per second of the traces (the app's 30 fps timer) while generating, against the
  same view with generation paused;
- samples lost (counter holes; must be 0).

    .venv/bin/python benchmarks/live.py                 # tiny random models, 20 s
    .venv/bin/python benchmarks/live.py --model demo --channels 16 --sfreq 250  # the demo
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

GUI_FPS = 30.0  # the window redraws its traces on a timer at about this rate
ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("LSLAPICFG", str(ROOT / "tests" / "lsl_api.cfg"))
if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def measure_gui_fps(session, seconds: float, target_fps: float = GUI_FPS) -> float:
    """Redraw the real trace view from the session's filtered buffer at the window's frame rate
    (the app's timer), for ``seconds``; returns the frame rate achieved."""
    from PySide6 import QtWidgets

    from dd_live.gui.traces import TracesView

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
    view = TracesView()
    view.resize(1280, 800)
    view.show()
    view.set_channels(session.info.ch_names, session.info.sfreq)
    view.set_span(10.0)
    frames = 0
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    next_frame = t0
    while time.monotonic() < deadline:
        if view.refresh(session.filtered):
            frames += 1
        app.processEvents()
        next_frame += 1.0 / target_fps
        time.sleep(max(0.0, next_frame - time.monotonic()))
    elapsed = time.monotonic() - t0
    view.close()
    return frames / elapsed


def decoder_alone(decoder, windows: list[np.ndarray], seed: int) -> list[float]:
    times = []
    for eeg in windows:
        t0 = time.perf_counter()
        decoder(eeg, seed)
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'demo' or a model folder")
    parser.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--sfreq", type=float, default=1000.0)
    parser.add_argument("--hop", type=float, default=0.05,
                        help="s between windows (short: the generator is never idle)")
    parser.add_argument("--duration", type=float, default=20.0, help="s of live generation")
    args = parser.parse_args(argv)

    from dd_live.assets import DEMO_MODEL, demo_model_dir
    from dd_live.config import AppConfig, GeneratorConfig, QualityConfig, WindowConfig
    from dd_live.decoding import EEGDecoder, read_model_settings
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource
    from dd_live.stream import Window

    model = str(demo_model_dir()) if args.model == DEMO_MODEL else args.model
    gen = {"model": model}
    if model != "tiny":
        gen.update(read_model_settings(model).get("generator", {}))  # as `dd-live run` does
    if args.steps:
        gen["steps"] = args.steps
    elif model == "tiny":
        gen["steps"] = 4
    config = AppConfig(window=WindowConfig(hop=args.hop), quality=QualityConfig(mode="off"),
                       generator=GeneratorConfig(**gen))
    decoder = EEGDecoder.from_config(config.generator)
    source = SyntheticSource(args.channels, args.sfreq, counter=True, realtime=True, seed=0)
    session = LiveSession(config, source=source, decoder=decoder)
    latencies: list[float] = []
    windows: list[np.ndarray] = []
    session.callbacks.image.append(lambda r: latencies.append(r.timings["latency"]))
    print(f"dd-live live benchmark: {args.channels} ch @ {args.sfreq:g} Hz, hop {args.hop} s, "
          f"model {decoder.description or model}, {os.cpu_count()} cores")
    session.start()
    try:
        time.sleep(2.0)  # the buffer fills, the first windows go through
        n_images0, t0 = session.n_images, time.monotonic()
        time.sleep(args.duration)  # headless: generation alone
        images_per_s = (session.n_images - n_images0) / (time.monotonic() - t0)
        n_images0, t0 = session.n_images, time.monotonic()
        fps_generating = measure_gui_fps(session, min(10.0, args.duration))
        images_per_s_gui = (session.n_images - n_images0) / (time.monotonic() - t0)
        session.pause_generation()
        fps_paused = measure_gui_fps(session, min(5.0, args.duration))
        session.resume_generation()
        # windows like the ones the session fed, for the decoder-alone baseline
        data, timestamps = session.filtered.latest(int(args.sfreq * 5))
        n_win = int(round(config.window.length * args.sfreq))
        for k in range(8):
            seg = slice(k * n_win // 2, k * n_win // 2 + n_win)
            windows.append(session.preprocessor(Window(
                0, n_win, data[:, seg], timestamps[seg], args.sfreq, "periodic")))
    finally:
        session.stop()
    alone = decoder_alone(decoder, windows, config.generator.seed)
    counter, _ = session.raw.latest(session.raw.n_held)
    holes = int(np.sum(np.diff(counter[-1]) != 1))
    lost = int(counter[-1][-1] + 1 - session.raw.n_written) + holes

    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    a50, a95 = percentile(alone, 50), percentile(alone, 95)
    print(f"{'measure':<34} {'live':>10} {'baseline':>10} {'ratio':>7}")
    print(f"{'latency p50 (ms)':<34} {1000 * p50:>10.0f} {1000 * a50:>10.0f} {p50 / a50:>7.2f}")
    print(f"{'latency p95 (ms)':<34} {1000 * p95:>10.0f} {1000 * a95:>10.0f} {p95 / a95:>7.2f}")
    print(f"{'images per second':<34} {images_per_s:>10.2f} {1 / a50:>10.2f} "
          f"{images_per_s * a50:>7.2f}")
    print(f"{'images per second, window open':<34} {images_per_s_gui:>10.2f} {1 / a50:>10.2f} "
          f"{images_per_s_gui * a50:>7.2f}")
    print(f"{f'GUI fps ({args.channels} ch, {GUI_FPS:g} target)':<34} {fps_generating:>10.1f} "
          f"{fps_paused:>10.1f} "
          f"{fps_generating / fps_paused:>7.2f}")
    print(f"{'samples lost':<34} {lost:>10d}")
    print(f"windows {session.n_windows}, images {session.n_images}, dropped "
          f"{session.worker.n_dropped} (latest-wins: a slow sampler drops windows, never samples)")
    print("baselines: latency = the decoder alone on the same windows; images/s = 1 / decoder "
          "p50; GUI fps = the same view with generation paused")
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
