"""One training epoch, shared by both stages (MAE's ``engine_pretrain.py`` shape).

Each micro-batch reseeds torch's RNG from ``(seed, epoch, global micro-batch index)``, so the
random masks / noise / timesteps of a run do not depend on how many processes share it: two
processes with batch ``b`` equal one process with batch ``b`` and ``grad_accum=2``.
"""

import math
from collections.abc import Callable

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from dd_live.errors import DDLiveError
from training.common import learning_rate


class NonFiniteLossError(DDLiveError, FloatingPointError):
    """The loss became NaN or infinite: training stops instead of writing a broken checkpoint."""


def micro_batch_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch) * 1_000_003 + index


def train_one_epoch(
    model: torch.nn.Module,
    compute: Callable[[torch.nn.Module, dict], dict],
    loader: torch.utils.data.DataLoader,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    epoch: int,
    config,
) -> dict[str, float]:
    """Train ``model`` for one pass over ``loader``; return the mean of each logged value.

    ``compute(model, batch)`` returns a dict with ``"loss"`` (scalar) and other scalars to log.
    The lr is set per optimizer step from the fractional epoch (:func:`learning_rate`).
    """
    model.train()
    n_batches = len(loader)
    totals: dict[str, float] = {}
    params = [p for p in model.parameters() if p.requires_grad]
    bar = tqdm(loader, desc=f"epoch {epoch}", disable=not accelerator.is_main_process, leave=False)
    for index, batch in enumerate(bar):
        if index % config.grad_accum == 0:
            lr = learning_rate(epoch + index / n_batches, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
        global_index = index * accelerator.num_processes + accelerator.process_index
        torch.manual_seed(micro_batch_seed(config.seed, epoch, global_index))
        with accelerator.accumulate(model):
            with accelerator.autocast():
                out = compute(model, batch)
            loss = out["loss"]
            finite = accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="sum")
            if finite.item() < accelerator.num_processes:
                raise NonFiniteLossError(
                    f"loss is {loss.item()} at epoch {epoch}, batch {index}; lower --lr, raise "
                    "--grad-clip or use --mixed-precision bf16 instead of fp16"
                )
            accelerator.backward(loss)
            if accelerator.sync_gradients and config.grad_clip > 0:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        for key, value in out.items():
            if value.ndim == 0:
                totals[key] = totals.get(key, 0.0) + value.detach().float().item()
        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}")
    means = {key: value / n_batches for key, value in totals.items()}
    reduced = accelerator.reduce(torch.tensor(list(means.values()), device=accelerator.device), "mean")
    result = dict(zip(means, reduced.tolist()))
    result["lr"] = lr
    if not all(math.isfinite(v) for v in result.values()):
        raise NonFiniteLossError(f"epoch {epoch} ended with non-finite metrics {result}")
    return result
