"""The demo model's sizes (configs are data) and its three training stages.

Each stage runs through the project's own training loop (:func:`training.engine.train_one_epoch`
with :func:`training.common.make_accelerator` / :func:`training.common.make_loader`):

1. :func:`pretrain_encoder`: masked-signal modelling of a small EEG encoder
   (:class:`dd_live.model.MaskedSignalModel`, loss :func:`training.pretrain.masked_loss`);
2. :func:`train_vae`: a small KL autoencoder from scratch (64 px -> 8 x 8 x 4 latents;
   :class:`training.models.VAEReconstruction`, :func:`training.models.set_latent_scale`);
3. :func:`train_generator`: EEG conditioner + SD-architecture UNet from scratch on the frozen
   VAE's latents (:class:`training.models.EEGDiffusion`); no CLIP alignment (see the model card).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution
from diffusers.models.modeling_outputs import AutoencoderKLOutput
from torch import nn

from dd_live.errors import ConfigError
from dd_live.model import (
    CLIP_DIM,
    ConditionerConfig,
    ConditioningConfig,
    DecoderConfig,
    EEGConditioner,
    EncoderConfig,
    MaskedSignalConfig,
    MaskedSignalModel,
    save,
)
from training.common import make_accelerator, make_loader, param_groups
from training.engine import train_one_epoch
from training.models import (
    SD_NOISE_SCHEDULE,
    ClipAlignLoss,
    EEGDiffusion,
    VAEReconstruction,
    pretrained_encoder,
    set_latent_scale,
)
from training.pretrain import masked_loss

logger = logging.getLogger(__name__)

LATENT_CHANNELS = 4


@dataclass(frozen=True)
class StageConfig:
    """Hyper-parameters of one stage (the fields :func:`training.engine.train_one_epoch` reads)."""

    epochs: int
    lr: float
    batch_size: int
    warmup_epochs: float = 0.0
    schedule: str = "cosine"
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    grad_accum: int = 1
    seed: int = 2022

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError(f"StageConfig needs epochs >= 1, batch_size >= 1, lr > 0, warmup in 0..epochs: {self}")


def encoder_config(n_channels: int, n_times: int) -> EncoderConfig:
    """A small, fast EEG encoder: 4-sample tokens, 128 wide, 4 blocks."""
    return EncoderConfig(n_channels=n_channels, n_times=n_times, patch_size=4, embed_dim=128, depth=4,
                         num_heads=4, mlp_ratio=2.0)


def masked_signal_config(encoder: EncoderConfig) -> MaskedSignalConfig:
    return MaskedSignalConfig(encoder, DecoderConfig(embed_dim=64, depth=2, num_heads=4, mlp_ratio=2.0), mask_ratio=0.75)


def unet_config(latent_size: int) -> dict:
    """UNet2DConditionModel (64, 128) with cross-attention over [B, 77, 768] at every level."""
    return {
        "sample_size": latent_size, "in_channels": LATENT_CHANNELS, "out_channels": LATENT_CHANNELS,
        "block_out_channels": (64, 128), "layers_per_block": 1,
        "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        "cross_attention_dim": CLIP_DIM, "attention_head_dim": 8, "norm_num_groups": 32,
    }


def vae_config(image_size: int) -> dict:
    """AutoencoderKL with four levels (8x down, as SD's): images [B, 3, S, S] <-> latents [B, 4, S/8, S/8]."""
    return {
        "sample_size": image_size, "in_channels": 3, "out_channels": 3, "block_out_channels": (16, 32, 64, 64),
        "layers_per_block": 1, "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4, "latent_channels": LATENT_CHANNELS, "norm_num_groups": 16,
    }


class EEGWindows(torch.utils.data.Dataset):
    """``eeg [N, C, T]`` as pretraining items ``{"eeg": [C, T]}``."""

    def __init__(self, eeg: torch.Tensor) -> None:
        self.eeg = eeg

    def __len__(self) -> int:
        return len(self.eeg)

    def __getitem__(self, index: int) -> dict:
        return {"eeg": self.eeg[index]}


class Images(torch.utils.data.Dataset):
    """``images [N, 3, S, S]`` as items ``{"image": [3, S, S]}``."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        return {"image": self.images[index]}


class CachedLatents(nn.Module):
    """Stands in for a frozen VAE whose posteriors were computed once (:func:`encode_posteriors`).

    ``encode(parameters [B, 2 * latent_channels, h, w])`` returns what ``AutoencoderKL.encode``
    returned for those images, so :class:`EEGDiffusion` samples latents exactly as with the VAE
    while each training step skips the VAE's encoder.
    """

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.config = vae.config

    def encode(self, parameters: torch.Tensor) -> AutoencoderKLOutput:
        return AutoencoderKLOutput(latent_dist=DiagonalGaussianDistribution(parameters))


@torch.no_grad()
def encode_posteriors(vae: AutoencoderKL, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``[N, 2 * latent_channels, h, w]``: mean and log-variance of each image's latent."""
    return torch.cat([
        vae.encode(images[i : i + batch_size]).latent_dist.parameters for i in range(0, len(images), batch_size)
    ])


def _run(model: nn.Module, compute, dataset, stage: StageConfig, name: str) -> list[dict]:
    """Train ``model`` for ``stage.epochs`` with the project's loop; return the per-epoch stats."""
    accelerator = make_accelerator("no", stage.grad_accum)
    loader = make_loader(dataset, stage.batch_size, stage.seed, num_workers=0)
    sampler = loader.sampler
    optimizer = torch.optim.AdamW(param_groups(model, stage.weight_decay), lr=stage.lr, betas=stage.betas)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    history = []
    for epoch in range(stage.epochs):
        sampler.set_epoch(epoch)
        stats = train_one_epoch(model, compute, loader, optimizer, accelerator, epoch, stage)
        logger.info("%s epoch %d/%d: %s", name, epoch + 1, stage.epochs,
                    ", ".join(f"{k} {v:.4g}" for k, v in stats.items()))
        history.append({"epoch": epoch, **stats})
    return history


def pretrain_encoder(eeg: torch.Tensor, encoder: EncoderConfig, stage: StageConfig, folder: Path) -> list[dict]:
    """Stage 1 on ``eeg [N, C, T]``; the encoder is saved to ``folder`` (our checkpoint format)."""
    torch.manual_seed(stage.seed)
    config = masked_signal_config(encoder)
    model = MaskedSignalModel(config)
    history = _run(model, lambda m, b: masked_loss(m, b, config.mask_ratio), EEGWindows(eeg), stage, "pretrain")
    save(model.encoder, folder)
    return history


def train_vae(images: torch.Tensor, stage: StageConfig) -> tuple[AutoencoderKL, list[dict]]:
    """A VAE from scratch on ``images [N, 3, S, S]``; its ``scaling_factor`` makes latents unit-variance."""
    torch.manual_seed(stage.seed)
    vae = AutoencoderKL(**vae_config(images.shape[-1]))
    history = _run(VAEReconstruction(vae), lambda m, b: m(b["image"]), Images(images), stage, "vae")
    set_latent_scale(vae, images)
    return vae.eval().requires_grad_(False), history


def train_generator(pairs, encoder_folder: Path, encoder: EncoderConfig, vae: AutoencoderKL,
                    stage: StageConfig) -> tuple[EEGConditioner, UNet2DConditionModel, list[dict]]:
    """Stages 2: the conditioner (from the pretrained encoder) and a UNet from scratch, VAE frozen.

    ``pairs`` yields ``{"eeg", "image", ...}`` items whose "image" is the VAE posterior of the
    image (:func:`encode_posteriors`), read through :class:`CachedLatents`. The CLIP term of :class:`EEGDiffusion`
    is switched off (weight 0, zero targets): the demo ships no CLIP model.
    """
    torch.manual_seed(stage.seed)
    conditioner = EEGConditioner(ConditionerConfig(encoder, ConditioningConfig()))
    conditioner.encoder.load_state_dict(pretrained_encoder(encoder_folder).state_dict())
    latent_size = vae.config.sample_size // 2 ** (len(vae.config.block_out_channels) - 1)
    unet = UNet2DConditionModel(**unet_config(latent_size))
    model = EEGDiffusion(conditioner, unet, CachedLatents(vae), DDPMScheduler.from_config(SD_NOISE_SCHEDULE), ClipAlignLoss(),
                         clip_weight=0.0)

    def compute(module, batch):
        no_clip = torch.zeros(len(batch["eeg"]), conditioner.config.conditioning.clip_dim)
        return module(batch["eeg"], batch["image"], no_clip)

    history = _run(model, compute, pairs, stage, "generator")
    return conditioner.eval(), unet.eval(), history
