"""Stages 2+3: Stable Diffusion conditioned on EEG, with CLIP alignment. ``python -m training.finetune --help``.

Trainable: the whole conditioner (encoder, context head, CLIP projection) and the UNet's
cross-attention (``attn2``) and ``norm2`` parameters (or the whole UNet when training from
scratch); VAE and CLIP frozen. Loss: noise-prediction MSE + ``clip_weight`` x CLIP alignment
against cached CLIP image embeddings of the real paired images.

Output folder: ``train_config.json``, ``log.jsonl``, ``clip_embeddings.pt`` and ``model/``, a
dd-live model folder (``unet/ vae/ scheduler/ conditioner/``) that
``ImageGenerator.from_pretrained`` and ``dd_live.model.load(model/"conditioner")`` open, with
the optimizer state beside it for ``--resume``.
"""

import dataclasses
import logging
import shutil
from pathlib import Path

import torch
from accelerate.utils import set_seed
from diffusers import DDPMScheduler

from dd_live.calibration import CalibrationSession
from dd_live.decoding import write_model_settings
from dd_live.errors import CheckpointError, ConfigError
from dd_live.generate.loading import load_components
from dd_live.generate.timecond import TimeConditioner
from dd_live.model import ConditionerConfig, EEGConditioner, get_preset, load, save
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
    FINETUNE_PRESETS,
    SYNTHETIC,
    FinetuneConfig,
    parse_run_args,
    save_config,
)
from training.data import ImageNetEEG, SyntheticPairs
from training.data.calibration import CalibrationPairs, find_sessions
from training.data.things_eeg2 import PREFIX as THINGS_PREFIX
from training.data.things_eeg2 import ThingsEEG2, parse_things_spec
from training.engine import train_one_epoch
from training.models import (
    IMAGE_EMBEDDER_FILE,
    IMAGE_EMBEDDER_WEIGHTS,
    SD_NOISE_SCHEDULE,
    AdaptedConditioner,
    ChannelAdapter,
    ClipAlignLoss,
    EEGDiffusion,
    EmbeddingAlignment,
    VAEReconstruction,
    build_clip,
    clip_image_table,
    image_embedding_mean,
    pretrained_encoder,
    save_image_embedder,
    scratch_unet_vae,
    set_latent_scale,
    set_trainable_unet,
)

logger = logging.getLogger(__name__)

MODEL = "model"
CONDITIONER = "conditioner"
TIME_COND = "time_cond"
GALLERY = "gallery"
IMAGENET_EEG = "imagenet-eeg"
#: Personal models (calibration data): epochs of the EEG side alone first, and training EEG noise.
PERSONAL_ALIGN_EPOCHS = 20
PERSONAL_EEG_NOISE = 0.5
CLIP_CACHE = "clip_embeddings.pt"
#: Seed offset of the synthetic held-out split (different EEG and images than training).
SYNTHETIC_TEST_SEED_OFFSET = 7919
#: Images whose latents set a from-scratch VAE's latent scale.
LATENT_SCALE_IMAGES = 64


def is_calibration(config) -> bool:
    """``config.data`` is one person's data (calibration session(s), or a THINGS-EEG2 subject):
    a personal model with a channel adapter, not a built-in data set."""
    return config.data not in (SYNTHETIC, IMAGENET_EEG)


def build_paired(config, split: str, n_channels: int | None, n_times: int, augment: bool = False,
                 average_repeats: bool = False):
    """The paired data set of ``config`` (synthetic, ImageNet-EEG or calibration sessions) for
    ``split``. Calibration epochs are ``n_channels`` = the sessions' EEG channels when None."""
    if config.data.startswith(THINGS_PREFIX):
        if config.subject is None:
            raise ConfigError("THINGS-EEG2 data needs a subject: --subject N (1-10)")
        return ThingsEEG2(parse_things_spec(config.data), config.subject, "train" if split == "train" else "test",
                          n_times, config.image_size, average_repeats=average_repeats if split != "train" else False,
                          augment=augment, seed=config.seed)
    if is_calibration(config):
        return CalibrationPairs(config.data, split, n_channels, n_times, config.image_size,
                                augment=augment, average_repeats=average_repeats, seed=config.seed)
    if config.data == SYNTHETIC:
        seed = config.seed + (SYNTHETIC_TEST_SEED_OFFSET if split != "train" else 0)
        return SyntheticPairs(
            config.synthetic_classes, config.synthetic_per_class, n_channels=n_channels, n_times=n_times,
            image_size=config.image_size, background_gain=config.synthetic_background, augment=augment, seed=seed,
        )
    if not (config.eeg_file and config.splits_file and config.image_root):
        raise ConfigError("data 'imagenet-eeg' needs --eeg-file, --splits-file and --image-root")
    dataset = ImageNetEEG(
        config.eeg_file, config.splits_file, split, split_index=config.split_index, subject=config.subject,
        image_root=config.image_root, image_size=config.image_size, augment=augment, seed=config.seed,
    )
    if dataset[0]["eeg"].shape[0] != n_channels:
        raise ConfigError(f"{config.eeg_file} has {dataset[0]['eeg'].shape[0]} channels, the model {n_channels}")
    return dataset


def cached_clip_table(config: FinetuneConfig, dataset, output_dir: Path, accelerator) -> torch.Tensor:
    """CLIP image embeddings ``[n_images, D]``, computed once and kept in ``output_dir``.

    For calibration data they are centred on the training images' mean embedding and normalised
    again (image embeddings share a large common part; its removal leaves what tells images
    apart); the mean is kept in ``image_embedder.json`` for evaluation and live retrieval."""
    cache = output_dir / CLIP_CACHE
    with accelerator.main_process_first():
        if cache.is_file():
            table = torch.load(cache, map_location="cpu", weights_only=True)
        else:
            clip_model, preprocess = build_clip(config.clip_model, config.clip_pretrained, config.clip_config)
            table = clip_image_table(clip_model, preprocess, dataset, "cpu").cpu()
            mean = table[list(dataset.image_ids)].mean(0) if is_calibration(config) else None
            if accelerator.is_main_process:
                torch.save(table, cache)
                # the targets' embedder, so evaluation and live retrieval embed images alike
                save_image_embedder(output_dir, clip_model, config.clip_model, config.clip_pretrained,
                                    config.clip_config, mean)
    mean = image_embedding_mean(output_dir)
    if mean is not None:
        table = torch.nn.functional.normalize(table - mean, dim=-1)
    return table.to(accelerator.device)


def main(argv: list[str] | None = None) -> Path:
    """Run stages 2+3; return the output folder (the model is ``<output>/model``)."""
    args, config = parse_run_args(
        argv, "python -m training.finetune", __doc__, FinetuneConfig, FINETUNE_PRESETS,
        output_help="where the model folder and logs go",
        resume_help="continue from <output-dir>/model")
    output_dir: Path = args.output_dir
    model_dir = output_dir / MODEL

    accelerator = make_accelerator(config.mixed_precision, config.grad_accum)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, output_dir / CONFIG_FILE)
    set_seed(config.seed)
    conditioner_config = get_preset(config.model, "conditioner")
    if config.encoder is not None:  # the pretrained encoder's own config (channels, length, pooling)
        encoder = pretrained_encoder(config.encoder)
        conditioner = EEGConditioner(ConditionerConfig(encoder.config, conditioner_config.conditioning))
        conditioner.encoder.load_state_dict(encoder.state_dict())
    else:
        conditioner = EEGConditioner(conditioner_config)
    enc = conditioner.config.encoder
    # a person's data keeps its own channels: a learned adapter maps them to the encoder's
    # (folded into the encoder on save, so a resumed model reads them directly)
    dataset = build_paired(config, "train", None if is_calibration(config) else enc.n_channels, enc.n_times,
                           augment=config.augment)
    if is_calibration(config) and not args.resume:
        conditioner = AdaptedConditioner(ChannelAdapter(dataset.n_channels, enc.n_channels), conditioner)
    clip_table = cached_clip_table(config, dataset, output_dir, accelerator)  # [n_images, D]

    if args.resume:
        if not model_dir.is_dir():
            raise CheckpointError(f"--resume: {model_dir} does not exist; run without --resume first")
        parts = load_components(model_dir, torch_dtype=torch.float32)
        unet, vae, scheduler_config = parts.unet, parts.vae, parts.scheduler_config
        time_cond = parts.time_cond
        saved = load(model_dir / CONDITIONER)
        if is_calibration(config):
            conditioner = saved.train()  # the adapter is already folded into its encoder
        else:
            conditioner.load_state_dict(saved.state_dict())
    elif config.base is not None:
        parts = load_components(config.base, torch_dtype=torch.float32)
        unet, vae, scheduler_config = parts.unet, parts.vae, parts.scheduler_config
        time_cond = parts.time_cond
    else:
        unet, vae = scratch_unet_vae(config.unet_config, config.image_size, config.time_conditioning)
        time_cond = None
        scheduler_config = SD_NOISE_SCHEDULE
        if config.vae_epochs:
            train_vae(vae, dataset, config, accelerator, RunLog(output_dir, accelerator.is_main_process))
    if config.time_conditioning and time_cond is None:
        time_cond = build_time_conditioner(unet, conditioner)
    noise_scheduler = DDPMScheduler.from_config(scheduler_config)
    mode = config.train_unet if config.train_unet != "auto" else ("all" if config.base is None else "cross_attention")
    n_unet = set_trainable_unet(unet, mode)
    clip_loss = config.clip_loss
    if clip_loss == "auto":
        clip_loss = "infonce+cosine" if is_calibration(config) else "cosine"
    personal = is_calibration(config)
    eeg_noise = config.eeg_noise if config.eeg_noise is not None else (PERSONAL_EEG_NOISE if personal else 0.0)
    align_epochs = config.align_epochs if config.align_epochs is not None else (PERSONAL_ALIGN_EPOCHS if personal else 0)
    if align_epochs and not args.resume:
        align_embedding_head(conditioner, ClipAlignLoss(clip_loss, config.clip_temperature), eeg_noise,
                             dataset, clip_table, config, align_epochs, accelerator,
                             RunLog(output_dir, accelerator.is_main_process))
    model = EEGDiffusion(conditioner, unet, vae, noise_scheduler,
                         ClipAlignLoss(clip_loss, config.clip_temperature), config.clip_weight,
                         config.uncond_prob, time_cond=time_cond, eeg_noise=eeg_noise)
    logger.info("trainable: %d UNet (%s) + %d conditioner parameters", n_unet, mode,
                sum(p.numel() for p in conditioner.parameters() if p.requires_grad))
    loader = make_loader(dataset, config.batch_size, config.seed, config.num_workers)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    start_epoch, step = 0, 0
    if args.resume:
        state = load_train_state(model_dir, optimizer)
        start_epoch, step = state["epoch"] + 1, state["step"]

    def compute(module, batch):
        return module(batch["eeg"], batch["image"], clip_table[batch["image_id"]])

    log = RunLog(output_dir, accelerator.is_main_process)
    for epoch in range(start_epoch, config.epochs):
        loader.set_epoch(epoch)  # accelerate's loader passes it to the EpochSampler
        stats = train_one_epoch(model, compute, loader, optimizer, accelerator, epoch, config)
        step += len(loader) // config.grad_accum
        log.write({"epoch": epoch, "step": step, **{f"train_{k}": v for k, v in stats.items()}})
        if (epoch + 1) % config.save_every == 0 or epoch + 1 == config.epochs:
            save_model_folder(accelerator, model, optimizer, scheduler_config, model_dir, epoch, step,
                              gallery=calibration_gallery(config))
    log.close()
    accelerator.end_training()
    return output_dir


def align_embedding_head(conditioner, loss: ClipAlignLoss, eeg_noise: float, dataset, clip_table: torch.Tensor,
                         config: FinetuneConfig, epochs: int, accelerator, log: RunLog) -> None:
    """Train the EEG side alone (adapter, encoder, image-embedding head) on the image-embedding
    loss for ``epochs`` before the diffusion stage: cheap, and most of what retrieval needs."""
    align_config = dataclasses.replace(config, epochs=epochs, warmup_epochs=0, schedule="constant")
    model = EmbeddingAlignment(conditioner, loss, eeg_noise)
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=config.betas)
    loader = make_loader(_EEGView(dataset) if hasattr(dataset, "eeg_item") else dataset, config.batch_size,
                         config.seed, config.num_workers)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        stats = train_one_epoch(model, lambda m, b: m(b["eeg"], clip_table[b["image_id"]]), loader,
                                optimizer, accelerator, epoch, align_config)
        log.write({"align_epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}})
    logger.info("image-embedding head aligned for %d epochs (cosine %.3f)", epochs, stats["cosine"])


def calibration_gallery(config) -> dict[str, Path] | None:
    """``{file name: image}`` of every image the calibration sessions showed (None otherwise)."""
    if not is_calibration(config) or config.data.startswith(THINGS_PREFIX):
        return None
    gallery = {}
    for folder in find_sessions(config.data):
        session = CalibrationSession.open(folder)
        hashes = {row["image_id"]: row["sha256"] for row in session.rows}
        for image_id, path in session.images.items():
            gallery[f"{hashes[image_id][:16]}{path.suffix.lower()}"] = path
    return gallery


class _EEGView(torch.utils.data.Dataset):
    """A paired data set's EEG and image ids only (no image decoding)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        return self.dataset.eeg_item(index)


def build_time_conditioner(unet, conditioner) -> TimeConditioner:
    """The reference's ``time_embed_condtion`` for ``unet`` (its class embedding becomes the
    identity, so the vector is added to the time embedding as-is)."""
    if unet.config.class_embed_type is None:
        unet.register_to_config(class_embed_type="identity")
        unet.class_embedding = torch.nn.Identity()
    elif unet.config.class_embed_type != "identity":
        raise ConfigError(f"time conditioning needs a UNet with class_embed_type 'identity' (or none), "
                          f"this one has {unet.config.class_embed_type!r}: use --no-time-conditioning")
    cond = conditioner.inner.config if isinstance(conditioner, AdaptedConditioner) else conditioner.config
    return TimeConditioner(n_tokens=cond.conditioning.context_tokens, context_dim=cond.conditioning.context_dim,
                           time_embed_dim=unet.time_embedding.linear_2.out_features)


def train_vae(vae, dataset, config: FinetuneConfig, accelerator, log: RunLog) -> None:
    """From scratch: train the VAE alone for ``vae_epochs``, then fix its latent scale."""
    vae_config = dataclasses.replace(config, epochs=config.vae_epochs, warmup_epochs=0, schedule="constant")
    model = VAEReconstruction(vae)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=config.betas)
    loader = make_loader(dataset, config.batch_size, config.seed, config.num_workers)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    for epoch in range(config.vae_epochs):
        loader.set_epoch(epoch)
        stats = train_one_epoch(model, lambda m, b: m(b["image"]), loader, optimizer, accelerator, epoch, vae_config)
        log.write({"vae_epoch": epoch, **{f"train_{k}": v for k, v in stats.items()}})
    images = torch.stack([dataset[i]["image"] for i in range(min(len(dataset), LATENT_SCALE_IMAGES))])
    scale = set_latent_scale(vae, images.to(accelerator.device))
    vae.requires_grad_(False)
    logger.info("VAE trained for %d epochs; latent scale %.4f", config.vae_epochs, scale)


def save_model_folder(accelerator, model, optimizer, scheduler_config, model_dir: Path, epoch: int, step: int,
                      gallery: dict[str, Path] | None = None):
    """Write ``model/`` (unet, vae, scheduler, conditioner + optimizer state) whole or not at all.

    ``gallery`` (a personal model: ``{name: image file}``, the calibration images) is copied into
    ``model/gallery/`` and named in ``dd_live.json``, so ``dd-live run --model`` shows the
    nearest of them beside each generated image by default."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        tmp = model_dir.with_name(model_dir.name + ".tmp")
        unwrapped.unet.save_pretrained(tmp / "unet")
        unwrapped.vae.save_pretrained(tmp / "vae")
        DDPMScheduler.from_config(scheduler_config).save_pretrained(tmp / "scheduler")
        conditioner = unwrapped.conditioner
        if isinstance(conditioner, AdaptedConditioner):
            conditioner = conditioner.folded()  # a plain EEGConditioner reading the person's channels
        save(conditioner, tmp / CONDITIONER)
        for name in (IMAGE_EMBEDDER_FILE, IMAGE_EMBEDDER_WEIGHTS):
            if (model_dir.parent / name).is_file():
                shutil.copyfile(model_dir.parent / name, tmp / name)
        if unwrapped.time_cond is not None:
            unwrapped.time_cond.save_pretrained(tmp / TIME_COND)
        if gallery:
            (tmp / GALLERY).mkdir()
            for name, path in gallery.items():
                shutil.copyfile(path, tmp / GALLERY / name)
            write_model_settings(tmp, f"personal model: {len(gallery)} calibration images",
                                 {"gallery": str((model_dir / GALLERY).resolve())})
        save_train_state(tmp, optimizer, epoch, step)
        replace_folder(tmp, model_dir)
    accelerator.wait_for_everyone()


if __name__ == "__main__":
    from training.common import run_command

    run_command(main)
