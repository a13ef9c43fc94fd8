"""EEG window -> pixels, end to end, at full size: p50/p95 per window against the reference sampler.

The full-size architecture with random weights (the same compute as real weights): the
reference-size EEG conditioner (128 x 512 window -> 77 x 768 context, 24 blocks of width 1024)
with the reference's time conditioning, SD 1.5's UNet and VAE from the packaged sd15 configs, and
TAESD's architecture. Every window goes through the app's own decoder path
(``EEGDecoder.__call__``: window to the device, conditioner, sampler, decoder, 8-bit image back
on the host). Rows: 1, 2 and 4 steps (LCM sampler, TAESD decoder) with and without CUDA graphs
(CPU: without), then the reference sampler measured in the same run (PLMS 250 steps, full VAE,
no guidance); each row prints p50/p95 ms per window, images/s, the speed-up of p50 over the
reference and the memory peak, and one JSON line.

    python benchmarks/pipeline.py            # GPU: 512 px, 200 windows per row (make bench-gpu)
    python benchmarks/pipeline.py --quick    # CPU-sized: reduced resolution, windows and steps (printed)
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
import warnings

import numpy as np
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, UNet2DConditionModel

from dd_live.assets import sd15_config_dir
from dd_live.decoding import EEGDecoder
from dd_live.generate import GeneratorSettings, ImageGenerator, TimeConditioner
from dd_live.model import EEGConditioner, get_preset

FEW_STEPS = (1, 2, 4)
REFERENCE_STEPS = 250
SEED = 2022
FULL = {"size": 512, "windows": 200, "reference_windows": 3, "reference_steps": REFERENCE_STEPS, "warmup": 3}
QUICK = {"size": 64, "windows": 3, "reference_windows": 1, "reference_steps": 10, "warmup": 1}


def build(device: str, dtype: str, size: int) -> tuple[EEGConditioner, ImageGenerator]:
    """Reference-size conditioner and SD 1.5 generator (UNet with time conditioning, VAE,
    TAESD), random weights; settings are chosen per row."""
    torch.manual_seed(SEED)
    sd15 = sd15_config_dir()
    conditioner = EEGConditioner(get_preset("reference", kind="conditioner"))
    unet_config = dict(UNet2DConditionModel.load_config(sd15, subfolder="unet"), class_embed_type="identity")
    unet = UNet2DConditionModel.from_config(unet_config)
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(sd15, subfolder="vae"))
    scheduler_config = PNDMScheduler.load_config(sd15, subfolder="scheduler")
    generator = ImageGenerator(
        unet, vae, scheduler_config, tiny_vae=AutoencoderTiny(), time_cond=TimeConditioner(),
        settings=GeneratorSettings(scheduler="lcm", num_inference_steps=1, image_size=size, tiny_decoder=True),
        one_step_unet=True,  # random weights stand in for a distilled UNet: the few-step samplers may run
        device=device, dtype=dtype, source="full-size architecture, random weights",
    )
    return conditioner, generator


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10  # KiB on Linux: process peak RSS


def run_row(decoder: EEGDecoder, windows: list[np.ndarray], warmup: int) -> dict[str, float]:
    """Warm up (captures graphs), then time each window through ``EEGDecoder.__call__``."""
    device = decoder.device
    t0 = time.perf_counter()
    if device.type == "cuda":
        decoder.generator.warmup()  # captures the CUDA graphs of both guidance variants
    for window in windows[:warmup]:
        decoder(window, seed=SEED)
    t_warm = time.perf_counter() - t0
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for k, window in enumerate(windows):
        t = time.perf_counter()
        out = decoder(window, seed=SEED + k)
        times.append(time.perf_counter() - t)
        assert len(out.images) == 1
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "images_per_s": float(1e3 / ms.mean()), "warmup_s": t_warm,
            "peak_mem_mb": peak_memory_mb(device), "windows": len(windows)}


def count_host_syncs(decoder: EEGDecoder, window: np.ndarray) -> int:
    """Host synchronisations in one window on CUDA (torch's sync debug mode): 1 is the image
    readback itself; anything more is a stall the hot path should not have."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            decoder(window, seed=SEED)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        logging.getLogger(__name__).debug("host sync: %s", w.message)
    return sum("synchroniz" in str(w.message) for w in caught)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CPU-sized run (reduced resolution, windows, steps)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda[:N]")
    parser.add_argument("--windows", type=int, help="windows per few-step row (default 200; quick 5)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_grad_enabled(False)
    plan = dict(QUICK if args.quick else FULL)
    if args.windows:
        plan["windows"] = args.windows
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    cuda = device.type == "cuda"
    dtype = "float16" if cuda else "float32"
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} torch threads"
    print(f"device: {name} | {dtype} | torch {torch.__version__}")
    if not cuda and not args.quick:
        print("no CUDA device: use --quick on CPU (the full run is sized for a GPU)", file=sys.stderr)
        return 2
    if args.quick:
        print(f"--quick: {plan['size']} px (512 in full runs), {plan['windows']} windows per row (200), "
              f"reference sampler at {plan['reference_steps']} PLMS steps ({REFERENCE_STEPS}), "
              f"{plan['reference_windows']} windows")
    t_build = time.perf_counter()
    conditioner, generator = build(str(device), dtype, plan["size"])
    print(f"built in {time.perf_counter() - t_build:.1f} s: EEG conditioner "
          f"{sum(p.numel() for p in conditioner.parameters()) / 1e6:.1f} M, UNet "
          f"{sum(p.numel() for p in generator.unet.parameters()) / 1e6:.0f} M, VAE "
          f"{sum(p.numel() for p in generator.vae.parameters()) / 1e6:.0f} M parameters")
    rng = np.random.default_rng(SEED)
    enc = conditioner.config.encoder
    windows = [rng.standard_normal((enc.n_channels, enc.n_times)).astype(np.float32) for _ in range(plan["windows"])]

    rows = []
    graph_modes = (True, False) if cuda else (False,)
    for graphs in graph_modes:
        generator.set_cuda_graphs(graphs)
        decoder = EEGDecoder(conditioner, generator)  # its encoder call is captured (or not) likewise
        for steps in FEW_STEPS:
            generator.configure(scheduler="lcm", num_inference_steps=steps, tiny_decoder=True,
                                image_size=plan["size"])
            result = run_row(decoder, windows, plan["warmup"])
            if cuda:
                result["host_syncs_per_window"] = count_host_syncs(decoder, windows[0])
            rows.append({"row": f"lcm {steps} step{'s' * (steps > 1)}, TAESD", "steps": steps,
                         "cuda_graphs": graphs, "size": plan["size"], **result})
            syncs = f", host syncs per window {result['host_syncs_per_window']}" if cuda else ""
            print(f"  {rows[-1]['row']}, graphs {'on' if graphs else 'off'}: p50 {result['p50_ms']:.1f} ms "
                  f"(warm-up {result['warmup_s']:.1f} s{syncs})", flush=True)
    # the reference sampler, same models, same run
    generator.configure(scheduler="plms", num_inference_steps=plan["reference_steps"], tiny_decoder=False,
                        guidance_scale=1.0, image_size=plan["size"])
    reference = run_row(decoder, windows[: plan["reference_windows"]], warmup=1 if cuda else 0)
    print(f"  reference: p50 {reference['p50_ms']:.1f} ms", flush=True)
    reference_row = {"row": f"reference: PLMS {plan['reference_steps']} steps, full VAE",
                     "steps": plan["reference_steps"], "cuda_graphs": decoder.generator.use_graphs,
                     "size": plan["size"], **reference}
    for row in rows:
        row["speedup_vs_reference"] = reference["p50_ms"] / row["p50_ms"]
    reference_row["speedup_vs_reference"] = 1.0

    print(f"\n{'row':<34}{'graphs':>7}{'p50 ms':>10}{'p95 ms':>10}{'img/s':>8}{'speed-up':>10}{'peak MB':>10}")
    for row in [*rows, reference_row]:
        print(f"{row['row']:<34}{'on' if row['cuda_graphs'] else 'off':>7}{row['p50_ms']:>10.1f}"
              f"{row['p95_ms']:>10.1f}{row['images_per_s']:>8.2f}{row['speedup_vs_reference']:>9.1f}x"
              f"{row['peak_mem_mb']:>10.0f}")
    if plan["reference_steps"] != REFERENCE_STEPS:
        # one UNet step's cost from the few-step rows (same path, 1 vs 4 steps), added for the
        # steps the reference was not run with: a projection, printed as one
        per_step = (rows[len(FEW_STEPS) - 1]["p50_ms"] - rows[0]["p50_ms"]) / (FEW_STEPS[-1] - FEW_STEPS[0])
        projected = reference["p50_ms"] + (REFERENCE_STEPS - plan["reference_steps"]) * per_step
        print(f"(reference measured at {plan['reference_steps']} steps; projected to {REFERENCE_STEPS} steps with "
              f"the measured {per_step:.0f} ms per UNet step: {projected / 1e3:.1f} s per window, "
              f"speed-up of the 1-step row over it {projected / rows[0]['p50_ms']:.0f}x)")
    print(f"peak memory: {'CUDA max allocated per row' if cuda else 'process peak RSS'}")
    for row in [*rows, reference_row]:
        print(json.dumps({"benchmark": "pipeline", "device": name, "dtype": dtype, **row}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
