"""Stage 1: masked-signal pretraining of the EEG encoder. ``python -m training.pretrain --help``.

Wires config -> data -> model -> :func:`training.engine.train_one_epoch` -> checkpoint + log.
Output folder: ``train_config.json``, ``log.jsonl`` (one line per epoch), ``checkpoint/``
(the MaskedSignalModel in dd-live's format + optimizer state, for ``--resume``) and
``encoder/`` (the encoder alone, the input of ``training.finetune --encoder``).
"""

import logging
from pathlib import Path

import torch
from accelerate.utils import set_seed

from dd_live.config import AppConfig
from dd_live.errors import CheckpointError, ConfigError
from dd_live.model import MaskedSignalModel, get_preset, load, save
from training.common import (
    CONFIG_FILE,
    RunLog,
    load_train_state,
    make_accelerator,
    make_loader,
    param_groups,
    replace_folder,
    save_train_state,
)
from training.config import (
    PRETRAIN_PRESETS,
    SYNTHETIC,
    PretrainConfig,
    parse_run_args,
    save_config,
)
from training.data import SyntheticCorpus, build_corpus
from training.data.corpus import Preprocessing, live_preprocessing
from training.engine import train_one_epoch

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
ENCODER = "encoder"


def build_dataset(config: PretrainConfig, output_dir: Path) -> torch.utils.data.Dataset:
    """The synthetic corpus, or EEG files preprocessed into the on-disk cache."""
    encoder = get_preset(config.model, "encoder")
    if config.data == (SYNTHETIC,):
        return SyntheticCorpus(
            config.synthetic_windows, n_channels=encoder.n_channels, n_times=encoder.n_times,
            background_gain=config.synthetic_background, seed=config.seed,
        )
    cache_dir = Path(config.cache_dir) if config.cache_dir else output_dir / "corpus"
    if config.live_preprocessing:  # the live app's own filter, windows and preprocessor
        app_config = AppConfig.from_toml(config.live_config) if config.live_config else AppConfig()
        prep = live_preprocessing(app_config, encoder.n_channels, encoder.n_times)
        return build_corpus(config.data, cache_dir, prep, app_config)
    prep = Preprocessing(encoder.n_channels, encoder.n_times, config.l_freq, config.h_freq, config.sfreq)
    return build_corpus(config.data, cache_dir, prep)


def masked_loss(model: torch.nn.Module, batch: dict, mask_ratio: float) -> dict:
    out = model(batch["eeg"], mask_ratio=mask_ratio)  # eeg [B, C, T]
    return {"loss": out["loss"]}


def main(argv: list[str] | None = None) -> Path:
    """Run stage 1; return the output folder."""
    args, config = parse_run_args(
        argv, "python -m training.pretrain", __doc__, PretrainConfig, PRETRAIN_PRESETS,
        output_help="where checkpoints and logs go",
        resume_help="continue from <output-dir>/checkpoint")
    output_dir: Path = args.output_dir

    accelerator = make_accelerator(config.mixed_precision, config.grad_accum)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / CONFIG_FILE)
    set_seed(config.seed)
    with accelerator.main_process_first():
        dataset = build_dataset(config, output_dir)
    model_config = get_preset(config.model, "masked_signal")
    model = MaskedSignalModel(model_config)
    if (dataset[0]["eeg"].shape[0], dataset[0]["eeg"].shape[1]) != (
        model_config.encoder.n_channels, model_config.encoder.n_times
    ):
        raise ConfigError(f"data windows are {tuple(dataset[0]['eeg'].shape)}, the model expects "
                          f"({model_config.encoder.n_channels}, {model_config.encoder.n_times})")
    loader = make_loader(dataset, config.batch_size, config.seed, config.num_workers)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)

    start_epoch, step = 0, 0
    checkpoint = output_dir / CHECKPOINT
    if args.resume:
        if not checkpoint.is_dir():
            raise CheckpointError(f"--resume: {checkpoint} does not exist; run without --resume first")
        model.load_state_dict(load(checkpoint).state_dict())
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    if args.resume:
        state = load_train_state(checkpoint, optimizer)
        start_epoch, step = state["epoch"] + 1, state["step"]
        logger.info("resumed from %s at epoch %d", checkpoint, start_epoch)

    log = RunLog(output_dir, accelerator.is_main_process)
    for epoch in range(start_epoch, config.epochs):
        loader.set_epoch(epoch)  # accelerate's loader passes it to the EpochSampler
        stats = train_one_epoch(
            model, lambda m, b: masked_loss(m, b, config.mask_ratio), loader, optimizer, accelerator, epoch, config
        )
        step += len(loader) // config.grad_accum
        log.write({"epoch": epoch, "step": step, **{f"train_{k}": v for k, v in stats.items()}})
        if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs:
            save_checkpoint(accelerator, model, optimizer, output_dir, epoch, step)
    log.close()
    accelerator.end_training()
    return output_dir


def save_checkpoint(accelerator, model, optimizer, output_dir: Path, epoch: int, step: int) -> None:
    """``checkpoint/`` (model + optimizer) and ``encoder/``, written whole or not at all."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        for name, module in ((CHECKPOINT, unwrapped), (ENCODER, unwrapped.encoder)):
            tmp = output_dir / f"{name}.tmp"
            save(module, tmp)
            if name == CHECKPOINT:
                save_train_state(tmp, optimizer, epoch, step)
            replace_folder(tmp, output_dir / name)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    from training.common import run_command

    run_command(main)
