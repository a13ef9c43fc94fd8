"""Per-image generation latency, split into UNet steps and decode, against the reference setup.

CPU: the tiny random pipeline at 64x64. CUDA (when available): the full SD 1.5 architecture
from dd_live/assets/sd15 with random weights in fp16 at 512x512. Each row: scheduler, steps, decoder,
milliseconds for the UNet loop / decode / total (median of repeats), and the speed-up over the
reference setup (PLMS, full VAE, 250 steps; on CPU a scaled-down step count, printed) measured
in the same run on the same pipeline.

    python benchmarks/generator.py [--repeats 3] [--cpu-reference-steps 50]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, UNet2DConditionModel

from dd_live.assets import sd15_config_dir
from dd_live.generate import ImageGenerator
from dd_live.model import CLIP_DIM, CLIP_TOKENS

STEP_COUNTS = (1, 4, 20, 50)
REFERENCE_STEPS = 250
SEED = 2022


def sd15_random(device: str) -> ImageGenerator:
    """SD 1.5's architecture (configs from dd_live/assets/sd15), random weights, TAESD-shaped tiny VAE."""
    sd15 = sd15_config_dir()
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(sd15, subfolder="unet"))
    vae = AutoencoderKL.from_config(AutoencoderKL.load_config(sd15, subfolder="vae"))
    scheduler_config = PNDMScheduler.load_config(sd15, subfolder="scheduler")
    return ImageGenerator(unet, vae, scheduler_config, tiny_vae=AutoencoderTiny(), device=device,
                          dtype="float16", source="SD 1.5 architecture, random weights")


def measure(gen: ImageGenerator, context: torch.Tensor, repeats: int, **settings) -> dict[str, float]:
    """Median timings (seconds) of ``repeats`` generations after one warm-up."""
    gen.configure(**settings)
    gen(context, seed=SEED)
    runs = [gen(context, seed=SEED).timings for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in ("unet", "decode", "total")}


def run(gen: ImageGenerator, label: str, reference_steps: int, repeats: int) -> None:
    gen.prepare()
    context = torch.randn(1, CLIP_TOKENS, CLIP_DIM)
    print(f"\n== {label}: {gen!r}")
    reference = measure(gen, context, max(1, repeats // 2), scheduler="plms",
                        num_inference_steps=reference_steps, tiny_decoder=False)
    print(f"reference setup: PLMS, full VAE, {reference_steps} steps"
          f"{'' if reference_steps == REFERENCE_STEPS else f' (scaled down from {REFERENCE_STEPS})'}: "
          f"unet {reference['unet'] * 1e3:.1f} ms, decode {reference['decode'] * 1e3:.1f} ms, "
          f"total {reference['total'] * 1e3:.1f} ms")
    print(f"{'scheduler':<10}{'steps':>6}  {'decoder':<9}{'unet ms':>10}{'ms/step':>9}{'decode ms':>11}"
          f"{'total ms':>10}{'speed-up':>10}")
    for steps in STEP_COUNTS:
        for tiny in (False, True):
            t = measure(gen, context, repeats, scheduler="dpm++", num_inference_steps=steps, tiny_decoder=tiny)
            print(f"{'dpm++':<10}{steps:>6}  {'tiny' if tiny else 'full VAE':<9}{t['unet'] * 1e3:>10.1f}"
                  f"{t['unet'] / steps * 1e3:>9.2f}{t['decode'] * 1e3:>11.1f}{t['total'] * 1e3:>10.1f}"
                  f"{reference['total'] / t['total']:>9.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpu-reference-steps", type=int, default=50)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    run(ImageGenerator.tiny(seed=0, image_size=64, device="cpu"), "CPU, tiny pipeline, 64x64",
        args.cpu_reference_steps, args.repeats)
    if torch.cuda.is_available():
        run(sd15_random("cuda"), "CUDA, SD 1.5 architecture fp16, 512x512", REFERENCE_STEPS, args.repeats)
    else:
        print("\nCUDA not available: the 512x512 SD 1.5 part was skipped")


if __name__ == "__main__":
    main()
