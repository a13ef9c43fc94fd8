"""Training-side models: CLIP alignment losses, the EEG-conditioned diffusion wrapper, builders.

``EEGDiffusion.forward`` returns a dict like every model here: ``loss`` = noise-prediction MSE
+ ``clip_weight`` x CLIP alignment, plus its parts for the log.
"""

import json
import logging
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import nn

from dd_live.errors import CheckpointError, ConfigError
from dd_live.generate.tiny import tiny_unet_config, tiny_vae_config
from dd_live.model import EEGConditioner, EEGEncoder, MaskedSignalModel, load

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("assets")
#: Names in a UNet parameter that the reference trains when fine-tuning SD (cross-attention).
CROSS_ATTENTION_KEYS = ("attn2", "norm2")
#: SD 1.x training noise schedule.
SD_NOISE_SCHEDULE = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                     "beta_schedule": "scaled_linear", "prediction_type": "epsilon", "clip_sample": False,
                     "set_alpha_to_one": False, "steps_offset": 1}
#: KL weight of the VAE loss when the VAE is trained from scratch (as SD's autoencoder).
VAE_KL_WEIGHT = 1e-6


class ClipAlignLoss(nn.Module):
    """EEG vector vs the paired image's CLIP embedding (open_clip ``ClipLoss``-style module).

    ``kind="cosine"``: ``1 - cos`` averaged over the batch (the reference). ``"infonce"``:
    symmetric contrastive loss over the batch at ``temperature`` (as MindEye). Both return
    ``{"loss_clip": [], "cosine": []}`` (the mean cosine of the true pairs, for the log).
    """

    def __init__(self, kind: str = "cosine", temperature: float = 0.07) -> None:
        super().__init__()
        self.kind, self.temperature = kind, temperature

    def forward(self, eeg_embed: torch.Tensor, image_embed: torch.Tensor) -> dict[str, torch.Tensor]:
        eeg_embed = F.normalize(eeg_embed.float(), dim=-1)  # [B, D]
        image_embed = F.normalize(image_embed.float(), dim=-1)  # [B, D]
        cosine = (eeg_embed * image_embed).sum(-1)  # [B]
        if self.kind == "cosine":
            loss = (1 - cosine).mean()
        else:
            logits = eeg_embed @ image_embed.T / self.temperature  # [B, B]
            target = torch.arange(len(logits), device=logits.device)
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return {"loss_clip": loss, "cosine": cosine.mean().detach()}


class EEGDiffusion(nn.Module):
    """Conditioner + UNet trained together; VAE frozen; DDPM forward process for the noise target.

    forward(eeg [B, C, T], image [B, 3, S, S] in [-1, 1], clip_target [B, D]) -> dict of scalars.
    """

    def __init__(self, conditioner: EEGConditioner, unet: UNet2DConditionModel, vae: AutoencoderKL,
                 noise_scheduler: DDPMScheduler, clip_loss: ClipAlignLoss, clip_weight: float,
                 uncond_prob: float = 0.0) -> None:
        super().__init__()
        self.conditioner, self.unet, self.vae = conditioner, unet, vae
        self.noise_scheduler, self.clip_loss = noise_scheduler, clip_loss
        self.clip_weight, self.uncond_prob = clip_weight, uncond_prob
        self.vae.requires_grad_(False)
        self.conditioner.null_context.requires_grad_(uncond_prob > 0)

    def forward(self, eeg: torch.Tensor, image: torch.Tensor, clip_target: torch.Tensor) -> dict:
        cond = self.conditioner(eeg)
        context = cond["context"]  # [B, 77, 768]
        if self.uncond_prob > 0:
            drop = torch.rand(len(context), 1, 1, device=context.device) < self.uncond_prob
            context = torch.where(drop, self.conditioner.null_context.to(context.dtype), context)
        with torch.no_grad():
            self.vae.eval()
            latents = self.vae.encode(image).latent_dist.sample() * self.vae.config.scaling_factor
        noise = torch.randn_like(latents)
        steps = self.noise_scheduler.config.num_train_timesteps
        timesteps = torch.randint(0, steps, (len(latents),), device=latents.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        pred = self.unet(noisy, timesteps, encoder_hidden_states=context).sample  # [B, 4, h, w]
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss_noise = F.mse_loss(pred.float(), target.float())
        clip = self.clip_loss(cond["clip"], clip_target)
        return {"loss": loss_noise + self.clip_weight * clip["loss_clip"], "loss_noise": loss_noise, **clip}


class VAEReconstruction(nn.Module):
    """A VAE trained alone (from-scratch runs, before the UNet): forward(image) -> dict.

    ``loss`` = pixel MSE of the reconstruction + a small KL term (as SD's autoencoder).
    """

    def __init__(self, vae: AutoencoderKL) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        posterior = self.vae.encode(image).latent_dist
        recon = self.vae.decode(posterior.sample()).sample  # [B, 3, S, S]
        loss_vae = F.mse_loss(recon.float(), image.float())
        return {"loss": loss_vae + VAE_KL_WEIGHT * posterior.kl().mean(), "loss_vae": loss_vae}


@torch.no_grad()
def set_latent_scale(vae: AutoencoderKL, images: torch.Tensor) -> float:
    """Set ``vae.config.scaling_factor`` to 1 / std of the latents of ``images`` (as SD chose 0.18215)."""
    vae.eval()
    scale = 1.0 / vae.encode(images).latent_dist.mode().float().std().item()
    vae.register_to_config(scaling_factor=scale)
    return scale


def set_trainable_unet(unet: UNet2DConditionModel, mode: str) -> int:
    """Freeze the UNet except ``attn2``/``norm2`` ("cross_attention") or nothing ("all"); return count."""
    for name, param in unet.named_parameters():
        param.requires_grad_(mode == "all" or any(key in name for key in CROSS_ATTENTION_KEYS))
    return sum(p.numel() for p in unet.parameters() if p.requires_grad)


def scratch_unet_vae(unet_config: str, image_size: int) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """A random UNet ("tiny" or a JSON file of UNet2DConditionModel arguments) + tiny random VAE."""
    if unet_config == "tiny":
        arguments = tiny_unet_config(image_size)
    else:
        path = Path(unet_config)
        if not path.is_file():
            raise ConfigError(f"--unet-config {unet_config!r} is neither 'tiny' nor a JSON file")
        arguments = json.loads(path.read_text())
    return UNet2DConditionModel(**arguments), AutoencoderKL(**tiny_vae_config(image_size))


def pretrained_encoder(path: str | Path) -> EEGEncoder:
    """The EEG encoder stored at ``path``: a stage-1 output (encoder or whole masked model), a
    conditioner, or a reference ``.pth`` (anything ``dd_live.model.load`` opens)."""
    module = load(path)
    encoder = module.encoder if isinstance(module, MaskedSignalModel | EEGConditioner) else module
    if not isinstance(encoder, EEGEncoder):
        raise CheckpointError(f"{path} holds a {type(module).__name__}, not an EEG encoder")
    return encoder


def build_clip(name: str, pretrained: str | None, config_file: str | None = None):
    """open_clip model (eval, frozen) and its eval transform. ``config_file`` registers ``name``.

    The tiny test model ``dd-live-tiny-clip`` ships in ``training/assets``.
    """
    if config_file is not None:
        path = Path(config_file)
        if path.stem != name:
            raise ConfigError(f"--clip-config file {path} must be named {name}.json to define --clip-model {name}")
        open_clip.add_model_config(path)
    elif name not in open_clip.list_models() and (ASSETS / f"{name}.json").is_file():
        open_clip.add_model_config(ASSETS / f"{name}.json")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    except RuntimeError as error:
        raise ConfigError(f"open_clip could not build {name!r} with pretrained={pretrained!r}: {error}") from error
    return model.eval().requires_grad_(False), preprocess


@torch.no_grad()
def clip_image_table(clip_model, preprocess, dataset, device, batch_size: int = 32) -> torch.Tensor:
    """``[max image_id + 1, D]`` normalised CLIP image embeddings of every image of ``dataset``."""
    ids = list(dataset.image_ids)
    table = None
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        pixels = torch.stack([preprocess(dataset.load_image(i)) for i in chunk]).to(device)  # [b, 3, H, W]
        embeds = F.normalize(clip_model.to(device).encode_image(pixels).float(), dim=-1)  # [b, D]
        if table is None:
            table = torch.zeros(max(ids) + 1, embeds.shape[1], device=device)
        table[chunk] = embeds
    return table
