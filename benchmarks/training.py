"""Pretraining throughput (samples/s) of the masked-signal model: eager fp32 vs faster settings.

All settings run in the same process on the same model size, so the ratios are comparable
(absolute numbers depend on the machine and its load). Settings:

- ``eager fp32 (math attention)``: the baseline, attention through the plain math kernel;
- ``fp32 + SDPA``: PyTorch's fused scaled-dot-product attention kernels;
- ``bf16 autocast + SDPA``;
- ``bf16 autocast + SDPA + torch.compile`` (compile time reported apart, excluded from the rate).

Usage: ``python benchmarks/training.py [--model reference] [--batch-size 2] [--steps 3]``
(GPU when available; ``--device cpu`` to force CPU).
"""

import argparse
import contextlib
import time

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from dd_live.model import MaskedSignalModel, get_preset

SETTINGS = (
    ("eager fp32 (math attention)", {"dtype": None, "math": True, "compile": False}),
    ("fp32 + SDPA", {"dtype": None, "math": False, "compile": False}),
    ("bf16 autocast + SDPA", {"dtype": torch.bfloat16, "math": False, "compile": False}),
    ("bf16 autocast + SDPA + torch.compile", {"dtype": torch.bfloat16, "math": False, "compile": True}),
)


def measure(preset: str, device: torch.device, batch_size: int, steps: int, dtype, math: bool, compile: bool):
    """Return (samples per second, seconds of the first step, which includes compilation)."""
    torch.manual_seed(0)
    config = get_preset(preset, "masked_signal")
    model = MaskedSignalModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95))
    step_model = torch.compile(model) if compile else model
    eeg = torch.randn(batch_size, config.encoder.n_channels, config.encoder.n_times, device=device)

    def step():
        autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        kernel = sdpa_kernel(SDPBackend.MATH) if math else contextlib.nullcontext()
        with autocast, kernel:
            loss = step_model(eeg, mask_ratio=0.75)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.8)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def synchronize():
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step()  # warm-up (and compilation)
    synchronize()
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize()
    return batch_size * steps / (time.perf_counter() - start), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="reference", help="dd_live.model preset")
    parser.add_argument("--batch-size", type=int, default=None, help="default 2 on CPU, 64 on GPU")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    device = torch.device(args.device)
    batch_size = args.batch_size or (64 if device.type == "cuda" else 2)
    n_params = sum(p.numel() for p in MaskedSignalModel(get_preset(args.model, "masked_signal")).parameters())
    print(f"pretraining step, model {args.model!r} ({n_params / 1e6:.1f} M parameters), batch {batch_size}, "
          f"{args.steps} timed steps, {device} ({torch.get_num_threads()} threads)")
    baseline = None
    for name, setting in SETTINGS:
        if setting["compile"] and not args.compile:
            continue
        rate, first = measure(args.model, device, batch_size, args.steps, **setting)
        baseline = baseline or rate
        print(f"  {name:40s} {rate:9.2f} samples/s   x{rate / baseline:5.2f}   (first step {first:6.1f} s)")


if __name__ == "__main__":
    main()
