"""Pieces both training stages share: accelerator, lr schedule, sampler, log, training state."""

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from dd_live.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

TRAIN_STATE = "train_state.pt"
TRAIN_STATE_META = "train_state.json"
LOG_FILE = "log.jsonl"
CONFIG_FILE = "train_config.json"


def run_command(main) -> None:
    """``python -m training.<stage>``: run ``main()``; a bad input or setting (any dd-live error:
    a missing folder, a wrong file, a bad value) ends with its one-line message on stderr and
    status 1, not a traceback."""
    from dd_live.errors import DDLiveError

    # our own progress at INFO; libraries (open_clip's model creation, the ONNX exporter's
    # passes) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("dd_live", "training", "__main__"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        main()
    except DDLiveError as exc:
        raise SystemExit(f"error: {exc}") from None


def make_accelerator(mixed_precision: str, grad_accum: int) -> Accelerator:
    """An Accelerator for CPU, one GPU, or many (accelerate launch / torchrun set the env).

    Accelerate only starts a CPU process group (gloo) when told ``cpu=True``; without a GPU
    and with several processes that is what torchrun / ``accelerate launch`` meant.
    """
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(
        mixed_precision=mixed_precision,
        gradient_accumulation_steps=grad_accum,
        cpu=several and not torch.cuda.is_available(),
    )


def learning_rate(epoch: float, config) -> float:
    """lr at fractional ``epoch``: linear warm-up, then cosine to ``min_lr`` (or constant)."""
    if epoch < config.warmup_epochs:
        return config.lr * epoch / config.warmup_epochs
    if config.schedule == "constant":
        return config.lr
    progress = (epoch - config.warmup_epochs) / max(config.epochs - config.warmup_epochs, 1e-12)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters: decay on matrices, none on biases, norms and 1-d tables (as MAE)."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class EpochSampler(torch.utils.data.Sampler):
    """A permutation that depends only on (seed, epoch): resumable and the same on every process."""

    def __init__(self, n_items: int, seed: int) -> None:
        self.n_items, self.seed, self.epoch = n_items, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.n_items, generator=generator).tolist())

    def __len__(self) -> int:
        return self.n_items


def make_loader(dataset, batch_size: int, seed: int, num_workers: int) -> torch.utils.data.DataLoader:
    """Shuffled (by :class:`EpochSampler`), full batches only."""
    if len(dataset) < batch_size:
        raise ConfigError(
            f"the data set has {len(dataset)} items, fewer than one batch of {batch_size}; "
            "lower --batch-size or add data"
        )
    sampler = EpochSampler(len(dataset), seed)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=num_workers
    )


class RunLog:
    """JSON-lines log (one dict per line) on the main process, plus TensorBoard when installed."""

    def __init__(self, folder: Path, enabled: bool) -> None:
        self.path = Path(folder) / LOG_FILE
        self.enabled = enabled
        self.tensorboard = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter  # optional: needs tensorboard
            except ImportError:
                logger.debug("tensorboard not installed; JSON-lines log only")
            else:
                self.tensorboard = SummaryWriter(str(Path(folder) / "tensorboard"))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        record = {"time": time.time(), **record}
        with self.path.open("a") as file:
            file.write(json.dumps(record) + "\n")
        if self.tensorboard is not None:
            for key, value in record.items():
                if isinstance(value, int | float) and key not in ("time", "epoch", "step"):
                    self.tensorboard.add_scalar(key, value, record.get("step", 0))

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def read_log(folder: Path) -> list[dict]:
    """All records of a run's JSON-lines log."""
    path = Path(folder) / LOG_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def save_train_state(folder: Path, optimizer: torch.optim.Optimizer, epoch: int, step: int) -> None:
    """Optimizer state (tensors, numbers) + ``{"epoch", "step"}`` beside the model."""
    torch.save(optimizer.state_dict(), Path(folder) / TRAIN_STATE)
    (Path(folder) / TRAIN_STATE_META).write_text(json.dumps({"epoch": epoch, "step": step}))


def load_train_state(folder: Path, optimizer: torch.optim.Optimizer) -> dict:
    """Restore the optimizer; return ``{"epoch": last finished epoch, "step": optimizer steps}``."""
    folder = Path(folder)
    state_path, meta_path = folder / TRAIN_STATE, folder / TRAIN_STATE_META
    if not state_path.is_file() or not meta_path.is_file():
        raise CheckpointError(f"{folder} has no {TRAIN_STATE} / {TRAIN_STATE_META}; it is not a training checkpoint")
    optimizer.load_state_dict(torch.load(state_path, map_location="cpu", weights_only=True))
    return json.loads(meta_path.read_text())


def replace_folder(tmp: Path, final: Path) -> None:
    """Move a fully written ``tmp`` folder to ``final`` (a crash never leaves half a checkpoint)."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)
