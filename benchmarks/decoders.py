"""Embedding-route decoders on the simulated viewer: accuracy, training time, window -> vector time.

One run: draws ``--images`` images, records a calibration session of the simulated viewer with
the documented command (``dd-live calibrate --source "synthetic?viewer=1" --images DIR --trials
N --headless --speed 0``), trains every decoder with ``python -m training.decoder --model all``
(the tiny embedder unless ViT-H/14's weights are on this machine), and prints one table:

- per decoder: parameters, training seconds, test top-1 / top-5 / 2-way (single trial, n-way
  among the session's test images), the low-level head's PixCorr / SSIM, and the window ->
  vector time on CPU (batch 1, best of ``--repeats``, torch on ``--threads`` threads), and for
  the torch decoders the same decoder exported to ONNX on ONNX Runtime's CPU provider (rows
  ``NAME (ONNX)``, the same window and threads) with its speed-up over torch;
- chance (1/n, 0.5) and the low-level head against shuffled pairs;
- the DreamDiffusion encoder at the reference size (128 ch x 512, 24 blocks of 1024, as
  ``benchmarks/encoder.py --preset reference`` builds it) + its CLIP projection, window -> vector
  on CPU in the same run, and each decoder's speed-up over it (goal: >= 50x).

The whole ``training.decoder`` command's wall time is printed too (goal: a 15-minute
calibration, ~4500 trials, in <= 2 min on a 2-core CPU: ``--trials 4500``).

    python benchmarks/decoders.py [--trials 600] [--images 200] [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# run as a script, this folder comes first on the path and its training.py would hide the
# repository's training package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# the test suite's drawn stimuli (a coloured shape on a coloured ground), one copy of the code
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the training package, from the checkout
from test_calibration import draw_images  # noqa: E402


def best_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=600)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--test-images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the window -> vector times")
    parser.add_argument("--keep", type=Path, default=None, help="keep the session and models here")
    args = parser.parse_args()

    import logging

    import torch

    from dd_live import cli
    from dd_live.decoders import load_decoder
    from dd_live.decoders.onnx_decoder import OnnxDecoder
    from dd_live.model import ClipProjection, EEGEncoder, get_preset
    from training import decoder as training_decoder

    logging.basicConfig(level=logging.WARNING)
    root = args.keep or Path(tempfile.mkdtemp(prefix="dd-live-decoders-"))
    images = draw_images(root / "images", args.images, size=64)
    t0 = time.perf_counter()
    code = cli.main(["calibrate", "--source", "synthetic?viewer=1", "--images", str(images), "--trials",
                     str(args.trials), "--test-images", str(args.test_images), "--headless", "--speed", "0",
                     "--out", str(root / "runs")])
    if code != 0:
        raise SystemExit(f"dd-live calibrate failed ({code})")
    (session,) = (root / "runs").iterdir()
    record_s = time.perf_counter() - t0
    out = root / "out"
    t0 = time.perf_counter()
    training_decoder.main(["--data", str(session), "--output-dir", str(out), "--model", "all"])
    train_wall = time.perf_counter() - t0
    results = json.loads((out / training_decoder.RESULTS).read_text())

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows, onnx_ratios = [], {}
    for name, figures in results["decoders"].items():
        decoder = load_decoder(out / training_decoder.TRIED / name)
        window = rng.standard_normal((decoder.n_channels, decoder.n_times)).astype(np.float32)
        rows.append((name, figures, best_ms(lambda d=decoder, w=window: d.encode(w), args.repeats * 10)))
        if isinstance(decoder, torch.nn.Module):  # the same decoder's ONNX export (as a model folder has it)
            folder = out / training_decoder.TRIED / name
            if training_decoder.export_decoder(decoder, folder) is not None:
                graph = OnnxDecoder(folder, args.threads)
                rows.append((f"{name} (ONNX)", figures, best_ms(lambda d=graph, w=window: d.encode(w),
                                                                 args.repeats * 10)))
                onnx_ratios[name] = rows[-2][2] / rows[-1][2]
    # the DreamDiffusion encoder at the release's size: window -> tokens -> CLIP projection
    config = get_preset("reference", "encoder")
    encoder = EEGEncoder(config).eval()
    projection = ClipProjection(config.n_tokens, config.embed_dim, results["embedder"]["dim"]).eval()
    eeg = torch.randn(1, config.n_channels, config.n_times)

    def reference() -> None:
        with torch.inference_mode():
            projection(encoder(eeg))

    reference_ms = best_ms(reference, max(3, args.repeats // 4))
    n_params_reference = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in projection.parameters())

    low = results["lowlevel"]
    n_way = rows[0][1]["test"]["n_way"]
    print(f"\nsimulated viewer: {args.trials} trials, {args.images} images ({n_way} test), recorded in "
          f"{record_s:.1f} s; embedder {results['embedder']['id']}; kept: {results['kept']}")
    print(f"python -m training.decoder --model all: {train_wall:.1f} s wall, {results['cpu_seconds_total']:.1f} s "
          f"CPU (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); torch threads "
          f"{torch.get_num_threads()} for the window times\n")
    header = (f"{'decoder':<22} {'params':>11} {'train s':>8} {'top-1':>6} {'top-5':>6} {'2-way':>6} "
              f"{'PixCorr':>8} {'SSIM':>6} {'ms/window':>10} {'vs DD enc':>9}")
    print(header)
    print("-" * len(header))
    for name, figures, ms in rows:
        test = figures["test"]
        print(f"{name:<22} {figures['parameters']:>11,} {figures['train_seconds']:>8.1f} {test['top1']:>6.3f} "
              f"{test['top5']:>6.3f} {test['two_way']:>6.3f} {low['pixcorr']:>8.3f} {low['ssim']:>6.3f} "
              f"{ms:>10.3f} {reference_ms / ms:>8.0f}x")
    print(f"{'low-level head (ridge)':<22} {low['parameters']:>11,} {low['train_seconds']:>8.1f} {'':>6} {'':>6} "
          f"{'':>6} {low['pixcorr']:>8.3f} {low['ssim']:>6.3f}")
    print(f"{'chance / shuffled':<22} {'':>11} {'':>8} {1 / n_way:>6.3f} {min(5, n_way) / n_way:>6.3f} "
          f"{0.5:>6.3f} {low['shuffled_pixcorr']:>8.3f} {low['shuffled_ssim']:>6.3f}")
    print(f"{'DD encoder (reference)':<22} {n_params_reference:>11,} {'':>8} {'':>6} {'':>6} {'':>6} {'':>8} "
          f"{'':>6} {reference_ms:>10.1f} {1:>8.0f}x")
    for name, ratio in onnx_ratios.items():
        print(f"{name}: window -> vector on ONNX Runtime {ratio:.1f}x faster than torch (same run, "
              f"{args.threads} thread(s))")
    print(f"\n(top-1/5, 2-way: single trials of the test images, {n_way}-way; PixCorr/SSIM: the low-level "
          f"head's pictures of the test trials; files in {root})")


if __name__ == "__main__":
    main()
