"""Loading generators offline: saved folders, single-file LDM checkpoints, reference checkpoints."""

import re

import numpy as np
import pytest
import torch
from diffusers import PNDMScheduler

from dd_live.errors import CheckpointError, GenerationError
from dd_live.generate import ImageGenerator
from dd_live.model import CLIP_DIM, CLIP_TOKENS

IMAGE_SIZE = 32
STEPS = 2
RESNET_TO_LDM = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
                 "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
VAE_ATTENTION_TO_LDM = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def unet_to_ldm(state: dict, layers_per_block: int) -> dict:
    """diffusers UNet keys -> original CompVis keys (``model.diffusion_model.*``), the inverse
    of diffusers' convert_ldm_unet_checkpoint, for the SD 1.x block layout."""
    per_level = layers_per_block + 1
    out = {}
    for key, value in state.items():
        new = key
        new = re.sub(r"^time_embedding\.linear_1", "time_embed.0", new)
        new = re.sub(r"^time_embedding\.linear_2", "time_embed.2", new)
        new = re.sub(r"^conv_in", "input_blocks.0.0", new)
        new = re.sub(r"^conv_norm_out", "out.0", new)
        new = re.sub(r"^conv_out", "out.2", new)
        if m := re.match(r"^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", new):
            level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            new = f"input_blocks.{1 + level * per_level + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", new):
            new = f"input_blocks.{(int(m[1]) + 1) * per_level}.0.op.{m[2]}"
        elif m := re.match(r"^mid_block\.(resnets|attentions)\.(\d+)\.(.*)", new):
            new = f"middle_block.{1 if m[1] == 'attentions' else 2 * int(m[2])}.{m[3]}"
        elif m := re.match(r"^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", new):
            level, kind, j, rest = int(m[1]), m[2], int(m[3]), m[4]
            new = f"output_blocks.{level * per_level + j}.{0 if kind == 'resnets' else 1}.{rest}"
        elif m := re.match(r"^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", new):
            level = int(m[1])
            has_attention = any(k.startswith(f"up_blocks.{level}.attentions") for k in state)
            new = f"output_blocks.{level * per_level + layers_per_block}.{2 if has_attention else 1}.conv.{m[2]}"
        if re.match(r"^(input_blocks\.\d+\.0|middle_block\.[02]|output_blocks\.\d+\.0)\.", new):
            head, name, tail = new.split(".", 2)[0:2], new.split(".")[2], ".".join(new.split(".")[3:])
            if name in RESNET_TO_LDM:
                new = ".".join([*head, RESNET_TO_LDM[name], tail])
        out["model.diffusion_model." + new] = value
    return out


def vae_to_ldm(state: dict, n_levels: int) -> dict:
    """diffusers AutoencoderKL keys -> ``first_stage_model.*`` keys of the original layout."""
    out = {}
    for key, value in state.items():
        new = key.replace("conv_norm_out", "norm_out").replace("conv_shortcut", "nin_shortcut")
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.resnets\.", r"encoder.down.\1.block.", new)
        new = re.sub(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.", r"encoder.down.\1.downsample.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.resnets\.",
                     lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.block.", new)
        new = re.sub(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
                     lambda m: f"decoder.up.{n_levels - 1 - int(m[1])}.upsample.", new)
        new = re.sub(r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}", new)
        if m := re.match(r"^(encoder|decoder)\.mid_block\.attentions\.0\.(.*)\.(weight|bias)$", new):
            new = f"{m[1]}.mid.attn_1.{VAE_ATTENTION_TO_LDM[m[2]]}.{m[3]}"
            if m[3] == "weight" and value.ndim == 2:
                value = value[:, :, None, None]  # 1x1 convolutions in the original
        out["first_stage_model." + new] = value.clone()
    return out


def generation_state(gen: ImageGenerator) -> dict:
    """The tiny generator's UNet and VAE as one LDM-layout state dict."""
    unet = {k: v.clone() for k, v in gen.unet.state_dict().items()}
    return {**unet_to_ldm(unet, gen.unet.config.layers_per_block),
            **vae_to_ldm(gen.vae.state_dict(), len(gen.vae.config.block_out_channels))}


def write_configs(gen: ImageGenerator, folder, *, drop_class_embed: bool = False):
    unet_config = dict(gen.unet.config)
    if drop_class_embed:
        unet_config["class_embed_type"] = None  # the reference importer sets it from the weights
    type(gen.unet).from_config(unet_config).save_config(folder / "unet")
    gen.vae.save_config(folder / "vae")
    PNDMScheduler.from_config(gen.scheduler_config).save_config(folder / "scheduler")
    return folder


def images(gen: ImageGenerator, seed: int = 5) -> np.ndarray:
    context = torch.randn(2, CLIP_TOKENS, CLIP_DIM, generator=torch.Generator().manual_seed(0))
    gen.configure(num_inference_steps=STEPS, scheduler="ddim")
    return np.stack([np.asarray(image) for image in gen(context, seed=seed).images])


@pytest.fixture
def tiny() -> ImageGenerator:
    return ImageGenerator.tiny(seed=3, image_size=IMAGE_SIZE, time_conditioning=True).prepare()


def test_save_and_load_folder_offline_reproduces_images(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    tiny.save_pretrained(tmp_path / "model")
    loaded = ImageGenerator.from_pretrained(tmp_path / "model", device="cpu")
    assert loaded.time_cond is not None and loaded.tiny_vae is not None
    np.testing.assert_array_equal(images(tiny), images(loaded))
    assert "folder" in loaded.description


def test_missing_model_names_the_path_and_the_download_command(tmp_path):
    with pytest.raises(GenerationError, match=r"no model at .*nowhere.*huggingface-cli download "
                       r"stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir models/sd15"):
        ImageGenerator.from_pretrained(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(GenerationError, match=r"half lacks unet/, vae/, scheduler/"):
        ImageGenerator.from_pretrained(tmp_path / "half")


def test_uncached_hub_id_offline_is_a_clear_error():
    # HF_HUB_OFFLINE=1 (tests/conftest.py): this asks the empty cache, never the network
    with pytest.raises(GenerationError, match=r"could not load the hub model 'nobody/no-such-model'.*huggingface-cli"):
        ImageGenerator.from_pretrained("nobody/no-such-model", device="cpu")


def test_single_file_ldm_checkpoint_loads_through_configs_offline(tmp_path):
    gen = ImageGenerator.tiny(seed=4, image_size=IMAGE_SIZE).prepare()
    torch.save({"state_dict": generation_state(gen)}, tmp_path / "model.ckpt")
    configs = write_configs(gen, tmp_path / "configs")
    loaded = ImageGenerator.from_pretrained(tmp_path / "model.ckpt", config=configs, device="cpu")
    np.testing.assert_array_equal(images(gen), images(loaded))
    assert loaded.description.startswith("single file model.ckpt")


def reference_checkpoint(gen: ImageGenerator, tmp_path, extra: dict | None = None):
    """A reference-layout generation checkpoint with tiny shapes, as the release saves it."""
    state = generation_state(gen)
    state.update({f"model.diffusion_model.time_embed_condtion.{k.removeprefix('layers.')}": v.clone()
                  for k, v in gen.time_cond.state_dict().items()})
    state.update({
        "cond_stage_model.mae.pos_embed": torch.zeros(1, 3, 8),  # EEG side: dd_live.model's
        "image_embedder.transformer.post_layernorm.weight": torch.ones(4),  # ignored
        "betas": gen.scheduler.betas.clone(),
        "alphas_cumprod": gen.scheduler.alphas_cumprod.clone(),
        **(extra or {}),
    })
    path = tmp_path / "reference.pth"
    torch.save({"model_state_dict": state, "config": {"lr": 5.3e-5}, "state": torch.get_rng_state()}, path)
    return path


def test_reference_checkpoint_loads_strictly_with_time_conditioning(tiny, tmp_path):
    path = reference_checkpoint(tiny, tmp_path)
    configs = write_configs(tiny, tmp_path / "configs", drop_class_embed=True)
    loaded = ImageGenerator.from_pretrained(
        path, config=configs, device="cpu", scheduler="plms", num_inference_steps=250
    )
    assert loaded.unet.config.class_embed_type == "identity" and loaded.time_cond is not None
    assert loaded.settings.scheduler == "plms" and loaded.settings.guidance_scale == 1.0
    np.testing.assert_array_equal(images(tiny), images(loaded))


def test_reference_checkpoint_leftover_key_is_an_error_listing_it(tiny, tmp_path):
    extra = {"model.diffusion_model.extra_block.weight": torch.zeros(2), "ema_decay": torch.zeros(1)}
    path = reference_checkpoint(tiny, tmp_path, extra)
    configs = write_configs(tiny, tmp_path / "configs", drop_class_embed=True)
    with pytest.raises(GenerationError, match=r"2 keys that fit no module: \['ema_decay', "
                       r"'model.diffusion_model.extra_block.weight'\]"):
        ImageGenerator.from_pretrained(path, config=configs, device="cpu")


def test_reference_checkpoint_with_another_noise_schedule_is_refused(tiny, tmp_path):
    path = reference_checkpoint(tiny, tmp_path, {"betas": torch.linspace(1e-4, 0.02, 1000)})
    configs = write_configs(tiny, tmp_path / "configs", drop_class_embed=True)
    with pytest.raises(GenerationError, match=r"noise schedule \(betas\) differs"):
        ImageGenerator.from_pretrained(path, config=configs, device="cpu")


def test_legacy_format_checkpoint_loads(tmp_path):
    """A .ckpt in torch's pre-1.6 (non-zip) format cannot be memory-mapped; it still loads."""
    gen = ImageGenerator.tiny(seed=4, image_size=IMAGE_SIZE).prepare()
    path = tmp_path / "legacy.ckpt"
    torch.save({"state_dict": generation_state(gen)}, path, _use_new_zipfile_serialization=False)
    configs = write_configs(gen, tmp_path / "configs")
    loaded = ImageGenerator.from_pretrained(path, config=configs, device="cpu")
    np.testing.assert_array_equal(images(gen), images(loaded))


@pytest.mark.parametrize("name", ["truncated.safetensors", "garbage.safetensors", "garbage.ckpt",
                                  "truncated.ckpt"])
def test_unreadable_checkpoint_is_a_generation_error_naming_the_file(tmp_path, name):
    import safetensors.torch

    state = {"conv_in.weight": torch.ones(4, 4)}
    path = tmp_path / name
    if name == "truncated.safetensors":
        safetensors.torch.save_file(state, path)
        path.write_bytes(path.read_bytes()[:-8])
    elif name == "truncated.ckpt":
        torch.save(state, path)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        path.write_bytes(b"\x00\x01 not a checkpoint at all " * 8)
    with pytest.raises((GenerationError, CheckpointError), match=re.escape(str(path)) + " is not a readable"):
        ImageGenerator.from_pretrained(path, device="cpu")


def test_model_folder_with_truncated_weights_names_the_part(tiny, tmp_path):
    folder = tiny.save_pretrained(tmp_path / "model")
    (weights,) = (folder / "vae").glob("*.safetensors")
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=re.escape(str(weights)) + " .*truncated"):
        ImageGenerator.from_pretrained(folder, device="cpu")


def test_reference_time_conditioning_as_class_labels_matches_the_former_hook(tiny, tmp_path):
    """The release checkpoint, imported strictly: its time conditioning given to the UNet as
    ``class_labels`` (computed once per image, null rows included) makes the same images as the
    former forward pre-hook that computed it inside every UNet call, with and without guidance.
    Tolerance: <= 1 level of 255 (the 8-bit conversion is torch's here, numpy's in diffusers)."""
    from tests.test_generate_static import hooked_pipeline_images

    with torch.no_grad():
        tiny.time_cond.layers[2].bias.fill_(3.0)  # a time-embedding offset that shows in the image
    path = reference_checkpoint(tiny, tmp_path)
    configs = write_configs(tiny, tmp_path / "configs", drop_class_embed=True)
    loaded = ImageGenerator.from_pretrained(path, config=configs, device="cpu", scheduler="plms",
                                            num_inference_steps=STEPS)
    context = torch.randn(2, CLIP_TOKENS, CLIP_DIM, generator=torch.Generator().manual_seed(0))
    for guidance in (1.0, 3.0):
        ours = np.stack([np.asarray(im) for im in loaded.configure(guidance_scale=guidance)(context, seed=5).images])
        hooked = hooked_pipeline_images(loaded, context, (5, 6), steps=STEPS, guidance=guidance)
        assert np.abs(ours.astype(int) - hooked.astype(int)).max() <= 1
        assert ours.std() > 0
