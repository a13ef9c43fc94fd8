"""Forward latency of the EEG encoder against an eager naive-attention baseline, same run.

Ours: ``EEGEncoder`` (fused ``scaled_dot_product_attention``, inference mode, bf16 autocast on
CUDA). Baseline: the same weights run through an explicit ``softmax(Q K^T / sqrt(d)) V`` in
eager PyTorch. Prints best-of-N latency per batch size, the speed ratio and the largest output
difference. Usage: ``python benchmarks/encoder.py [--preset reference] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="reference")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    torch.manual_seed(0)
    config = get_preset(args.preset)
    print(
        f"preset {args.preset}: {config.n_channels} ch x {config.n_times} samples, "
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
    )
    encoder = EEGEncoder(config).eval()
    print(repr(encoder))
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
