"""Forward latency of the EEG encoder against an eager naive-attention baseline, same run.

Ours: ``EEGEncoder`` (fused ``scaled_dot_product_attention``, inference mode, bf16 autocast on
CUDA). Baseline: the same weights run through an explicit ``softmax(Q K^T / sqrt(d)) V`` in
eager PyTorch. Prints best-of-N latency per batch size, the speed ratio and the largest output
difference. Usage: ``python benchmarks/encoder.py [--preset reference] [--repeats 3]``.

``--cpu-runtimes``: the encoder at batch 1 on CPU in optimised runtimes against eager fp32 in the
same run (interleaved, best of N): bf16 weights, bf16 autocast, int8 dynamic quantisation of the
linear layers, ``torch.compile`` (inductor). Each is judged: kept only when at least
``KEEP_SPEEDUP`` faster than eager with its output within ``KEEP_TOLERANCE`` (relative RMS error
of the output tokens against eager fp32).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import time

import torch
import torch.nn.functional as F

from dd_live.model import EEGEncoder, get_preset


def naive_forward(encoder: EEGEncoder, eeg: torch.Tensor) -> torch.Tensor:
    """The encoder's forward with attention written out: softmax(QK^T / sqrt(d)) V."""
    config = encoder.config
    heads, dim = config.num_heads, config.embed_dim
    head_dim = dim // heads
    x = encoder.patch_embed(eeg) + encoder.pos_embed[:, 1:]  # [B, L, D]
    batch, n_tokens, _ = x.shape
    for block in encoder.blocks:
        h = block.norm1(x)
        qkv = F.linear(h, block.attn.qkv.weight, block.attn.qkv.bias)
        q, k, v = qkv.reshape(batch, n_tokens, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-2, -1) / math.sqrt(head_dim)  # [B, H, L, L]
        attended = torch.softmax(scores, dim=-1) @ v  # [B, H, L, d]
        attended = attended.transpose(1, 2).reshape(batch, n_tokens, dim)
        x = x + F.linear(attended, block.attn.proj.weight, block.attn.proj.bias)
        h = block.norm2(x)
        x = x + block.mlp.fc2(F.gelu(block.mlp.fc1(h)))
    if config.global_pool:
        x = x.mean(dim=1, keepdim=True)
    return encoder.norm(x)


def _best_seconds(fns, repeats: int, device: torch.device) -> list[float]:
    """Best-of-``repeats`` time of each function, run interleaved so load drift hits both alike."""
    best = [math.inf] * len(fns)
    for fn in fns:
        fn()  # warm-up
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def bench(
    encoder: EEGEncoder, batch: int, device: torch.device, dtype: torch.dtype | None, repeats: int
) -> None:
    config = encoder.config
    eeg = torch.randn(batch, config.n_channels, config.n_times, device=device)
    autocast = (
        torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
    )

    def ours() -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return encoder(eeg)

    def naive() -> torch.Tensor:
        with torch.inference_mode(), autocast:
            return naive_forward(encoder, eeg)

    t_ours, t_naive = _best_seconds([ours, naive], repeats, device)
    diff = (ours().float() - naive().float()).abs().max().item()
    label = f"{device.type} {str(dtype).removeprefix('torch.') if dtype else 'fp32'}"
    print(
        f"{label:<12} batch {batch:>2}: ours {t_ours * 1e3:9.1f} ms   naive {t_naive * 1e3:9.1f} ms"
        f"   naive/ours {t_naive / t_ours:5.2f}x   max |diff| {diff:.2e}"
    )


KEEP_SPEEDUP = 1.10  # at least 10 % faster than eager fp32 ...
KEEP_TOLERANCE = 2e-2  # ... with a relative RMS output error of at most 2 %


def cpu_runtimes(encoder: EEGEncoder, repeats: int) -> None:
    """Batch-1 CPU latency of optimised runtimes vs eager fp32, each judged keep / drop."""
    config = encoder.config
    eeg = torch.randn(1, config.n_channels, config.n_times)
    bf16 = copy.deepcopy(encoder).to(torch.bfloat16)
    int8 = torch.ao.quantization.quantize_dynamic(copy.deepcopy(encoder), {torch.nn.Linear}, dtype=torch.qint8)
    compiled = torch.compile(copy.deepcopy(encoder))
    variants = {
        "eager fp32": lambda: encoder(eeg),
        "bf16 weights": lambda: bf16(eeg.to(torch.bfloat16)),
        "bf16 autocast": lambda: _autocast_cpu(encoder, eeg),
        "int8 dynamic (Linear)": lambda: int8(eeg),
        "torch.compile fp32": lambda: compiled(eeg),
    }
    with torch.inference_mode():
        reference = encoder(eeg).float()
        errors, usable = {}, {}
        for name, fn in variants.items():
            try:
                t0 = time.perf_counter()
                out = fn().float()  # first call: compiles where it compiles
                usable[name] = fn
                errors[name] = ((out - reference).pow(2).mean().sqrt() / reference.pow(2).mean().sqrt()).item()
                if name.startswith("torch.compile"):
                    print(f"torch.compile: first call (compilation) {time.perf_counter() - t0:.1f} s")
            except Exception as exc:  # a runtime the computer lacks is reported, not fatal
                print(f"{name}: not available here ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
        names = list(usable)
        times = dict(zip(names, _best_seconds([usable[n] for n in names], repeats, torch.device("cpu")), strict=True))
    base = times["eager fp32"]
    print(f"CPU runtimes, batch 1, {torch.get_num_threads()} threads, best of {repeats} "
          f"(keep: >= {KEEP_SPEEDUP:.2f}x faster and relative RMS error <= {KEEP_TOLERANCE:g}):")
    for name in names:
        speedup = base / times[name]
        verdict = "baseline" if name == "eager fp32" else (
            "KEEP" if speedup >= KEEP_SPEEDUP and errors[name] <= KEEP_TOLERANCE else "drop")
        print(f"  {name:<24}{times[name] * 1e3:9.1f} ms  {speedup:5.2f}x  rel. RMS error {errors[name]:.1e}  {verdict}")


def _autocast_cpu(encoder: EEGEncoder, eeg: torch.Tensor) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return encoder(eeg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cpu-runtimes", action="store_true",
                        help="only: optimised CPU runtimes (bf16, int8, torch.compile) vs eager, batch 1")
    args = parser.parse_args()
    torch.manual_seed(0)
    config = get_preset(args.preset)
    print(
        f"preset {args.preset}: {config.n_channels} ch x {config.n_times} samples, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    encoder = EEGEncoder(config).eval()
    print(repr(encoder))
    if args.cpu_runtimes:
        cpu_runtimes(encoder, args.repeats)
        return
    for batch in args.batches:
        bench(encoder, batch, torch.device("cpu"), None, args.repeats)
    if torch.cuda.is_available():
        device = torch.device("cuda")
        print(f"GPU: {torch.cuda.get_device_name(device)}")
        encoder = encoder.to(device)
        for batch in args.batches:
            bench(encoder, batch, device, torch.bfloat16, max(args.repeats, 10))
            bench(encoder, batch, device, None, max(args.repeats, 10))


if __name__ == "__main__":
    main()
