"""The demo model on torch vs ONNX Runtime (CPU), stage by stage, and overlapping windows.

Every row is measured in the same run on the same windows (demo windows of every thought),
rounds interleaved, so a shared machine's load falls on all of them alike:

- per stage (encode, the UNet steps, the decoder) and per image, torch (eager, as ``runtime =
  "torch"`` runs it) against ONNX Runtime's CPU provider, at ``[generator] threads`` threads;
- images/s of the ONNX decoder one window after the other (1 and 2 intra-op threads) against two
  ways of overlapping consecutive windows: a two-stage pipeline (while image k decodes, window
  k+1 encodes and denoises, one thread each) and two windows in flight (two whole decoders side
  by side, one thread each).

    .venv/bin/python benchmarks/runtime.py              # 3 rounds of 16 windows
    .venv/bin/python benchmarks/runtime.py --rounds 5 --windows 24
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def sequential(decoder, windows, seed0: int = 0) -> tuple[float, dict[str, list[float]]]:
    """(images/s, per-stage seconds) of ``decoder`` on ``windows`` one after the other."""
    stages: dict[str, list[float]] = {"encode": [], "sample": [], "decode": [], "total": []}
    t0 = time.perf_counter()
    for k, window in enumerate(windows):
        result = decoder(window, seed0 + k)
        for key in stages:
            stages[key].append(result.timings.get(key, float("nan")))
    return len(windows) / (time.perf_counter() - t0), stages


def pipelined(decoder, windows, seed0: int = 0) -> float:
    """Images/s with two stages on two threads: encode + UNet steps of window k+1 while the
    decoder makes image k (a queue of one between them)."""
    generator = decoder.generator
    handoff: list = []
    ready, free = threading.Semaphore(0), threading.Semaphore(1)
    done: list = []

    def decode_stage():
        for _ in windows:
            ready.acquire()
            latents = handoff.pop()
            free.release()
            done.append(generator.decode(latents))

    worker = threading.Thread(target=decode_stage)
    t0 = time.perf_counter()
    worker.start()
    for k, window in enumerate(windows):
        context, _ = decoder.conditioner(window)
        latents, _ = generator.denoise(context, generator.initial_latents(seed0 + k))
        free.acquire()
        handoff.append(latents)
        ready.release()
    worker.join()
    return len(windows) / (time.perf_counter() - t0)


def in_flight(decoders, windows, seed0: int = 0) -> float:
    """Images/s with two whole decoders side by side, each on every other window."""
    def run(decoder, part, offset):
        for k, window in enumerate(part):
            decoder(window, seed0 + offset + 2 * k)

    threads = [threading.Thread(target=run, args=(d, windows[i::2], i))
               for i, d in enumerate(decoders)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(windows) / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--windows", type=int, default=16, help="windows per round")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads of the torch and the sequential ONNX rows "
                        "(the demo model's own setting is 1)")
    args = parser.parse_args(argv)


    from dd_live.assets import demo_model_dir
    from dd_live.config import GeneratorConfig
    from dd_live.decoding import EEGDecoder, set_torch_threads
    from training.demo.build import DEMO_SCHEDULER, DEMO_STEPS
    from training.demo.world import DemoWorld

    def config(runtime: str, threads: int) -> GeneratorConfig:
        return GeneratorConfig(model=str(demo_model_dir()), scheduler=DEMO_SCHEDULER,
                               steps=DEMO_STEPS, threads=threads, runtime=runtime)

    set_torch_threads(args.threads)
    torch_decoder = EEGDecoder.from_config(config("torch", args.threads))
    onnx1 = EEGDecoder.from_config(config("onnx", args.threads))
    onnx2 = EEGDecoder.from_config(config("onnx", 2))
    side = [EEGDecoder.from_config(config("onnx", 1)) for _ in range(2)]
    per_state = max(1, args.windows // 8)
    eeg, _ = DemoWorld().state_windows(range(50_000, 50_001), per_state)
    windows = [w.astype(np.float32) for w in eeg]
    for decoder in (torch_decoder, onnx1, onnx2, *side):
        decoder.warmup()
    rows: dict[str, list[float]] = {}
    stages: dict[str, dict[str, list[float]]] = {"torch": {}, "onnx": {}}
    for r in range(args.rounds):
        seed = 1000 * r
        for name, decoder in (("torch", torch_decoder), ("onnx", onnx1)):
            rate, st = sequential(decoder, windows, seed)
            rows.setdefault(f"{name} sequential", []).append(rate)
            for key, values in st.items():
                stages[name].setdefault(key, []).extend(values)
        rows.setdefault("onnx sequential, 2 threads", []).append(sequential(onnx2, windows, seed)[0])
        rows.setdefault("onnx pipeline: decode k || encode+denoise k+1", []).append(
            pipelined(onnx1, windows, seed))
        rows.setdefault("onnx two windows in flight (1 thread each)", []).append(
            in_flight(side, windows, seed))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"demo model, {len(windows)} windows x {args.rounds} rounds, {cores} cores, "
          f"{args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    print(f"\n{'stage (ms, median)':<48} {'onnx':>8} {'torch':>8} {'ratio':>7}")
    for key in ("encode", "sample", "decode", "total"):
        o, t = _median(stages["onnx"][key]), _median(stages["torch"][key])
        print(f"{key:<48} {1000 * o:>8.1f} {1000 * t:>8.1f} {t / o:>7.2f}   (torch / onnx)")
    base = _median(rows["onnx sequential"])
    print(f"\n{'images per second (median of rounds)':<48} {'value':>8} {'baseline':>8} {'ratio':>7}")
    print(f"{'torch sequential':<48} {_median(rows['torch sequential']):>8.2f} {base:>8.2f} "
          f"{_median(rows['torch sequential']) / base:>7.2f}   (baseline: onnx sequential)")
    for name, values in rows.items():
        if name.startswith("onnx") and name != "onnx sequential":
            print(f"{name:<48} {_median(values):>8.2f} {base:>8.2f} {_median(values) / base:>7.2f}"
                  "   (baseline: onnx sequential, 1 thread)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
