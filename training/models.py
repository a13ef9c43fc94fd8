"""Training-side models: CLIP alignment losses, the EEG-conditioned diffusion wrapper, builders.

``EEGDiffusion.forward`` returns a dict like every model here: ``loss`` = noise-prediction MSE
+ ``clip_weight`` x CLIP alignment, plus its parts for the log.
"""

import dataclasses
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
    symmetric contrastive loss over the batch at ``temperature`` (as MindEye; repeats of one
    image in a batch are not negatives). ``"infonce+cosine"``: both (the personal model's
    image-embedding head: contrastive plus regression to the frozen image embedding). Both return
    ``{"loss_clip": [], "cosine": []}`` (the mean cosine of the true pairs, for the log).
    """

    def __init__(self, kind: str = "cosine", temperature: float = 0.07) -> None:
        super().__init__()
        self.kind, self.temperature = kind, temperature

    def forward(self, eeg_embed: torch.Tensor, image_embed: torch.Tensor) -> dict[str, torch.Tensor]:
        eeg_embed = F.normalize(eeg_embed.float(), dim=-1)  # [B, D]
        image_embed = F.normalize(image_embed.float(), dim=-1)  # [B, D]
        cosine = (eeg_embed * image_embed).sum(-1)  # [B]
        regression = (1 - cosine).mean()
        if self.kind == "cosine":
            return {"loss_clip": regression, "cosine": cosine.mean().detach()}
        logits = eeg_embed @ image_embed.T / self.temperature  # [B, B]
        target = torch.arange(len(logits), device=logits.device)
        # the same image twice in a batch is not a negative of itself
        same = (image_embed @ image_embed.T > 1 - 1e-6) & ~torch.eye(len(logits), dtype=torch.bool,
                                                                     device=logits.device)
        logits = logits.masked_fill(same, float("-inf"))
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        if self.kind == "infonce+cosine":  # contrastive + regression to the frozen embedding
            loss = loss + regression
        return {"loss_clip": loss, "cosine": cosine.mean().detach()}


class EEGDiffusion(nn.Module):
    """Conditioner + UNet (+ time conditioning) trained together; VAE frozen; DDPM forward
    process for the noise target.

    forward(eeg [B, C, T], image [B, 3, S, S] in [-1, 1], clip_target [B, D]) -> dict of scalars.
    """

    def __init__(self, conditioner: EEGConditioner, unet: UNet2DConditionModel, vae: AutoencoderKL,
                 noise_scheduler: DDPMScheduler, clip_loss: ClipAlignLoss, clip_weight: float,
                 uncond_prob: float = 0.0, time_cond: nn.Module | None = None, eeg_noise: float = 0.0) -> None:
        super().__init__()
        self.conditioner, self.unet, self.vae = conditioner, unet, vae
        self.time_cond, self.eeg_noise = time_cond, eeg_noise
        self.noise_scheduler, self.clip_loss = noise_scheduler, clip_loss
        self.clip_weight, self.uncond_prob = clip_weight, uncond_prob
        self.vae.requires_grad_(False)
        self.conditioner.null_context.requires_grad_(uncond_prob > 0)

    def forward(self, eeg: torch.Tensor, image: torch.Tensor, clip_target: torch.Tensor) -> dict:
        if self.training and self.eeg_noise > 0:
            eeg = eeg + self.eeg_noise * torch.randn_like(eeg)
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
        # the reference's time conditioning: the context squeezed to one vector, added to the
        # UNet's time embedding (class_embed_type="identity"), trained with everything else
        class_labels = self.time_cond(context) if self.time_cond is not None else None  # [B, T]
        pred = self.unet(noisy, timesteps, encoder_hidden_states=context,
                         class_labels=class_labels).sample  # [B, 4, h, w]
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        loss_noise = F.mse_loss(pred.float(), target.float())
        clip = self.clip_loss(cond["clip"], clip_target)
        return {"loss": loss_noise + self.clip_weight * clip["loss_clip"], "loss_noise": loss_noise, **clip}


class EmbeddingAlignment(nn.Module):
    """The EEG side alone: ``forward(eeg [B, C, T], target [B, D])`` -> the image-embedding
    loss of the conditioner's CLIP head, with Gaussian noise of sd ``eeg_noise`` added to the
    EEG in training (an augmentation against memorising a short calibration)."""

    def __init__(self, conditioner: nn.Module, loss: ClipAlignLoss, eeg_noise: float = 0.0) -> None:
        super().__init__()
        self.conditioner, self.loss, self.eeg_noise = conditioner, loss, eeg_noise

    def forward(self, eeg: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training and self.eeg_noise > 0:
            eeg = eeg + self.eeg_noise * torch.randn_like(eeg)
        out = self.loss(self.conditioner(eeg)["clip"], target)
        return {"loss": out["loss_clip"], **out}


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


def scratch_unet_vae(unet_config: str, image_size: int,
                     time_conditioning: bool = False) -> tuple[UNet2DConditionModel, AutoencoderKL]:
    """A random UNet ("tiny" or a JSON file of UNet2DConditionModel arguments) + tiny random VAE;
    ``time_conditioning`` gives the UNet an identity class embedding (see ``TimeConditioner``)."""
    if unet_config == "tiny":
        arguments = tiny_unet_config(image_size, time_conditioning=time_conditioning)
    else:
        path = Path(unet_config)
        if not path.is_file():
            raise ConfigError(f"--unet-config {unet_config!r} is neither 'tiny' nor a JSON file")
        arguments = json.loads(path.read_text())
        if time_conditioning:
            arguments["class_embed_type"] = "identity"
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


class ChannelAdapter(nn.Module):
    """A person's montage -> the encoder's input channels: ``[B, n_in, T] -> [B, n_out, T]``.

    One learned linear map over channels (a kernel-1 Conv1d without bias), started as the
    live app's "replicate" mapping (output channel ``c`` copies input ``c % n_in``). After
    training it is folded into the encoder's patch embedding (:func:`fold_channel_adapter`), so
    the saved model is a plain :class:`EEGConditioner` that reads the person's channels.
    """

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.proj = nn.Conv1d(n_in, n_out, kernel_size=1, bias=False)
        with torch.no_grad():
            self.proj.weight.zero_()
            self.proj.weight[torch.arange(n_out), torch.arange(n_out) % n_in, 0] = 1.0

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.proj(eeg)


class AdaptedConditioner(nn.Module):
    """``ChannelAdapter`` then an ``EEGConditioner``; same outputs and ``null_context``."""

    def __init__(self, adapter: ChannelAdapter, conditioner: EEGConditioner) -> None:
        super().__init__()
        self.adapter, self.inner = adapter, conditioner

    @property
    def null_context(self) -> nn.Parameter:
        return self.inner.null_context

    def forward(self, eeg: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.inner(self.adapter(eeg))

    def folded(self) -> EEGConditioner:
        return fold_channel_adapter(self.inner, self.adapter)


@torch.no_grad()
def fold_channel_adapter(conditioner: EEGConditioner, adapter: ChannelAdapter) -> EEGConditioner:
    """One :class:`EEGConditioner` reading ``adapter``'s input channels directly.

    The patch embedding ``W[D, C_enc, k]`` after the adapter ``A[C_enc, C_in]`` is the patch
    embedding ``W'[D, C_in, k] = sum_c W[D, c, k] A[c, C_in]`` (exact: both are linear).
    """
    import copy

    from dd_live.model import ConditionerConfig

    weight = adapter.proj.weight[:, :, 0]  # [C_enc, C_in]
    n_in = weight.shape[1]
    config = conditioner.config
    encoder_config = dataclasses.replace(config.encoder, n_channels=n_in)
    folded = EEGConditioner(ConditionerConfig(encoder_config, config.conditioning))
    state = copy.deepcopy(conditioner.state_dict())
    key = "encoder.patch_embed.proj.weight"
    state[key] = torch.einsum("dck,ci->dik", state[key], weight.to(state[key].dtype))
    folded.load_state_dict(state)  # strict: every key of the same architecture
    return folded.to(weight.device).train(conditioner.training)


#: The image embedder a model was trained against, described in its model folder.
IMAGE_EMBEDDER_FILE = "image_embedder.json"
IMAGE_EMBEDDER_WEIGHTS = "image_embedder.safetensors"


def save_image_embedder(folder: Path, clip_model, name: str, pretrained: str | None,
                        config_file: str | None, mean: torch.Tensor | None = None) -> Path:
    """Describe the frozen image embedder in ``folder/image_embedder.json``: open_clip ``name``
    and its weights (a tag or file; a randomly initialised one is saved beside it, so the
    targets can be rebuilt exactly), and its model config when it is not built into open_clip."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    entry: dict = {"clip_model": name, "clip_pretrained": pretrained}
    if pretrained is None:
        state = {k: v.detach().contiguous().clone() for k, v in clip_model.state_dict().items()}
        save_file(state, str(folder / IMAGE_EMBEDDER_WEIGHTS))
        entry["clip_pretrained"] = IMAGE_EMBEDDER_WEIGHTS
    elif Path(pretrained).is_file():
        entry["clip_pretrained"] = str(Path(pretrained).resolve())
    config_path = Path(config_file) if config_file else ASSETS / f"{name}.json"
    if config_path.is_file():  # not one of open_clip's own models: carry its config along
        entry["clip_config"] = json.loads(config_path.read_text())
    if mean is not None:  # targets were centred on this mean image embedding, then normalised
        entry["embedding_mean"] = [float(v) for v in mean.flatten()]
    path = folder / IMAGE_EMBEDDER_FILE
    path.write_text(json.dumps(entry, indent=1))
    return path


def image_embedding_mean(folder: Path) -> torch.Tensor | None:
    """``[D]`` the mean embedding a model's targets were centred on (None: not centred)."""
    path = Path(folder) / IMAGE_EMBEDDER_FILE
    if not path.is_file():
        return None
    mean = json.loads(path.read_text()).get("embedding_mean")
    return None if mean is None else torch.tensor(mean, dtype=torch.float32)


def load_image_embedder(folder: Path):
    """The image embedder a model folder was trained against (see :func:`save_image_embedder`)."""
    folder = Path(folder)
    path = folder / IMAGE_EMBEDDER_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {IMAGE_EMBEDDER_FILE}: it was not trained by this "
                              "version of training.finetune; pass the image embedder explicitly")
    entry = json.loads(path.read_text())
    name, pretrained = entry["clip_model"], entry["clip_pretrained"]
    if "clip_config" in entry and name not in open_clip.list_models():
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            config_path = Path(tmp) / f"{name}.json"
            config_path.write_text(json.dumps(entry["clip_config"]))
            open_clip.add_model_config(config_path)
    if pretrained and (folder / pretrained).is_file():
        pretrained = str(folder / pretrained)
    return build_clip(name, pretrained)
