"""The reference release's fine-tuned generation checkpoint -> diffusers UNet, VAE, time conditioning.

The file (~5 GB) is a pickled dict whose ``model_state_dict`` holds the whole latent-diffusion
model in the original LDM layout (docs/reference.md). ``dd_live.model`` reads it without
running pickled code (``load_reference_generator_state``); here its non-EEG keys are mapped
strictly: every key is placed in a module or explicitly ignored; anything else is an error
that lists it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    convert_ldm_unet_checkpoint,
    convert_ldm_vae_checkpoint,
)

from dd_live.errors import GenerationError
from dd_live.generate.timecond import TimeConditioner

logger = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
TIME_COND_PREFIX = "model.diffusion_model.time_embed_condtion."  # (sic), the release's spelling
VAE_PREFIX = "first_stage_model."
EEG_PREFIX = "cond_stage_model."  # the EEG side: dd_live.model imports it
IGNORED_PREFIXES = ("image_embedder.",)  # a frozen CLIP vision model, not needed to generate
# noise-schedule buffers of the LDM wrapper; betas/alphas_cumprod are checked against the scheduler
SCHEDULE_BUFFERS = frozenset({
    "betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
    "sqrt_one_minus_alphas_cumprod", "log_one_minus_alphas_cumprod", "sqrt_recip_alphas_cumprod",
    "sqrt_recipm1_alphas_cumprod", "posterior_variance", "posterior_log_variance_clipped",
    "posterior_mean_coef1", "posterior_mean_coef2", "lvlb_weights", "logvar",
})
CHECKED_BUFFERS = ("betas", "alphas_cumprod")
SCHEDULE_TOLERANCE = 1e-5
REFERENCE_STATE_KEY = "model_state_dict"


@dataclass
class ReferenceGenerator:
    """The generation side of a reference checkpoint, as diffusers modules (fp32, CPU)."""

    unet: UNet2DConditionModel
    vae: AutoencoderKL
    time_cond: TimeConditioner | None


def split_reference_state(
    state: dict[str, torch.Tensor], unet_config: dict[str, Any], vae_config: dict[str, Any],
    scheduler: Any,
) -> ReferenceGenerator:
    """Map the LDM-layout ``model_state_dict`` onto diffusers modules, strictly.

    ``unet_config``/``vae_config``: diffusers configs of the architecture (SD 1.5 from
    dd_live/assets/sd15); the UNet gets ``class_embed_type="identity"`` when the state carries the
    time conditioning. ``scheduler``: a diffusers scheduler whose ``betas`` must match the
    checkpoint's noise schedule.
    """
    groups: dict[str, dict[str, torch.Tensor]] = {"time_cond": {}, "unet": {}, "vae": {}, "leftover": {}}
    for key, value in state.items():
        if key.startswith(TIME_COND_PREFIX):
            groups["time_cond"][key.removeprefix(TIME_COND_PREFIX)] = value
        elif key.startswith(UNET_PREFIX):
            groups["unet"][key] = value
        elif key.startswith(VAE_PREFIX):
            groups["vae"][key] = value
        elif key.startswith((EEG_PREFIX, *IGNORED_PREFIXES)):
            continue
        elif key in SCHEDULE_BUFFERS:
            _check_schedule(key, value, scheduler)
        else:
            groups["leftover"][key] = value

    time_cond = None
    unet_config = dict(unet_config)
    if groups["time_cond"]:
        unet_config["class_embed_type"] = "identity"
        time_cond = TimeConditioner(
            n_tokens=groups["time_cond"]["0.weight"].shape[1],
            context_dim=groups["time_cond"]["2.weight"].shape[1],
            time_embed_dim=groups["time_cond"]["2.weight"].shape[0],
        )
        _load_strict(time_cond, {f"layers.{k}": v for k, v in groups["time_cond"].items()}, "time conditioning")

    unet_state = convert_ldm_unet_checkpoint(groups["unet"], unet_config)
    vae_state = convert_ldm_vae_checkpoint(groups["vae"], vae_config)
    # diffusers' converters skip keys they do not know: a source tensor that reached neither
    # converted dict (compared by storage, the converters only rename and reshape) is a leftover
    placed = {v.data_ptr() for v in (*unet_state.values(), *vae_state.values())}
    for key in (*groups["unet"], *groups["vae"]):
        if state[key].data_ptr() not in placed:
            groups["leftover"][key] = state[key]
    if groups["leftover"]:
        raise GenerationError(
            f"the reference checkpoint has {len(groups['leftover'])} keys that fit no module: "
            f"{sorted(groups['leftover'])}; it is not a DreamDiffusion generation checkpoint of the "
            "SD 1.5 architecture (or its config does not match the weights)"
        )
    unet = UNet2DConditionModel.from_config(unet_config)
    vae = AutoencoderKL.from_config(vae_config)
    _load_strict(unet, unet_state, "UNet")
    _load_strict(vae, vae_state, "VAE")
    return ReferenceGenerator(unet=unet, vae=vae, time_cond=time_cond)


def _check_schedule(key: str, value: torch.Tensor, scheduler: Any) -> None:
    if key not in CHECKED_BUFFERS:
        return
    expected = scheduler.betas if key == "betas" else scheduler.alphas_cumprod
    if value.shape != expected.shape or not torch.allclose(value.float(), expected.float(), atol=SCHEDULE_TOLERANCE):
        raise GenerationError(
            f"the checkpoint's noise schedule ({key}) differs from the scheduler config's "
            f"(beta_schedule={scheduler.config.beta_schedule}, {scheduler.config.beta_start}.."
            f"{scheduler.config.beta_end}); pass config= with the model's own scheduler config"
        )


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], name: str) -> None:
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise GenerationError(
            f"the checkpoint's {name} does not fit the configured architecture: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}; check the component configs (config=)"
        )
