"""The embedding route's renderer: a stock SD 1.5 + IP-Adapter, against diffusers' own pipelines.

Tiny stand-ins, saying so: the "stock SD 1.5" is a diffusers folder of the real classes with
small random weights (``save_tiny_sd15``: UNet, VAE, PNDM schedule, a one-layer CLIP text
encoder and a byte-level tokenizer), and the IP-Adapter is a state dict of the
``ip-adapter_sd15`` layout with random weights sized for that UNet, saved as ``.safetensors``
and as a ``.bin`` (``torch.save`` of tensors). The images mean nothing; what is checked is the
path users run: files read and loaded through diffusers' loader, the sampler's static path
(on CPU the captured calls run eagerly on their buffers; CUDA graphs in the GPU test), and
that the result is the image diffusers' ``StableDiffusionPipeline(prompt="",
ip_adapter_image_embeds=[...])`` makes from the same files, embedding, seed and scheduler.
"""

import numpy as np
import pytest
import torch
from diffusers import (
    AutoencoderTiny,
    StableDiffusionImg2ImgPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import convert_state_dict_to_diffusers
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from test_generate_loading import generation_state, write_configs

from dd_live import cli
from dd_live.config import GeneratorConfig
from dd_live.errors import CheckpointError, ConfigError
from dd_live.generate import ImageGenerator
from dd_live.generate.ip_adapter import (
    DEFAULT_EMBEDDER_ID,
    IPAdapterRenderer,
    empty_prompt_embedding,
    read_ip_adapter,
)
from dd_live.generate.schedulers import make_scheduler
from dd_live.generate.tiny import (
    save_ip_adapter_state,
    save_tiny_sd15,
    tiny_ip_adapter_state,
    tiny_tiny_vae_config,
)

pytestmark = pytest.mark.filterwarnings(
    # diffusers notes that the tiny decoder's saved config has a key it does not use
    "ignore:The config attributes:UserWarning")

IMAGE_SIZE = 32
EMBED_DIM = 32  # the tiny adapter's image-embedding width (ip-adapter_sd15: 1024)
WEIGHTS = "ip-adapter_sd15.safetensors"
# the same float32 arithmetic on both sides; the 8-bit conversion happens in torch here and in
# numpy there: at most one level of 255 apart
MAX_LEVEL_DIFFERENCE = 1


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A tiny SD 1.5 folder, its IP-Adapter as .safetensors and .bin, a LoRA, a tiny VAE."""
    root = tmp_path_factory.mktemp("ip_adapter")
    base = save_tiny_sd15(root / "sd15", seed=0, image_size=IMAGE_SIZE)
    unet = UNet2DConditionModel.from_pretrained(base, subfolder="unet")
    state = tiny_ip_adapter_state(unet, image_embed_dim=EMBED_DIM, seed=1)
    (root / "adapter").mkdir()
    save_ip_adapter_state(state, root / "adapter" / WEIGHTS)
    save_ip_adapter_state(state, root / "ip-adapter_sd15.bin")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian",
                                target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    with torch.no_grad():  # peft starts LoRA's up-projection at zero: make it do something
        for name, param in unet.named_parameters():
            if "lora_" in name:
                param.normal_(0, 0.2)
    StableDiffusionPipeline.save_lora_weights(
        root / "lora", unet_lora_layers=convert_state_dict_to_diffusers(get_peft_model_state_dict(unet)),
        safe_serialization=True)
    torch.manual_seed(3)
    AutoencoderTiny(**tiny_tiny_vae_config()).save_pretrained(root / "taesd")
    return {"root": root, "base": base, "adapter": root / "adapter" / WEIGHTS,
            "bin": root / "ip-adapter_sd15.bin", "lora": root / "lora", "taesd": root / "taesd"}


def embedding(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(EMBED_DIM).astype(np.float32)


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


def renderer(files, adapter=None, **kwargs) -> IPAdapterRenderer:
    kwargs = {"num_inference_steps": 2, "device": "cpu", "dtype": "float32", "embedder_id": "tiny/test",
              **kwargs}
    return IPAdapterRenderer.from_pretrained(files["base"], adapter or files["adapter"], **kwargs).prepare()


def diffusers_images(files, emb, seed, *, scheduler="dpm++", steps=2, guidance=1.0, scale=1.0,
                     ip_adapter=True, lora=None, init_latents=None, strength=1.0, device="cpu") -> np.ndarray:
    """diffusers' own pipeline, loaded from the same files by diffusers, prompt "" (its text
    encoder), the embedding as ``ip_adapter_image_embeds`` (a zero negative with guidance)."""
    cls = StableDiffusionPipeline if init_latents is None else StableDiffusionImg2ImgPipeline
    pipe = cls.from_pretrained(files["base"], safety_checker=None, requires_safety_checker=False).to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler = make_scheduler(scheduler, pipe.scheduler.config)
    if lora is not None:
        pipe.load_lora_weights(str(lora))
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    kwargs = {}
    if ip_adapter:
        pipe.load_ip_adapter(str(files["adapter"].parent), subfolder="", weight_name=files["adapter"].name,
                             image_encoder_folder=None)
        pipe.set_ip_adapter_scale(scale)
        e = torch.from_numpy(emb)[None, None].to(device)  # [1, 1, D]
        kwargs["ip_adapter_image_embeds"] = [torch.cat([torch.zeros_like(e), e]) if guidance > 1 else e]
    if init_latents is None:
        kwargs.update(height=IMAGE_SIZE, width=IMAGE_SIZE)
    else:
        kwargs.update(image=init_latents.to(device), strength=strength)
    with torch.inference_mode():
        out = pipe(prompt="", num_inference_steps=steps, guidance_scale=guidance, output_type="np",
                   generator=torch.Generator("cpu").manual_seed(seed), **kwargs).images
    return (out * 255).round().astype(np.uint8)


def level_difference(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape, (a.shape, b.shape)
    return int(np.abs(a.astype(int) - b.astype(int)).max())


# -- parity with diffusers -------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler,guidance", [("dpm++", 3.0), ("euler-a", 1.0), ("ddim", 1.0)])
def test_image_is_diffusers_ip_adapter_pipeline_image(files, scheduler, guidance):
    r = renderer(files, scheduler=scheduler, guidance_scale=guidance)
    assert r.image_embed_dim == EMBED_DIM and r.embedder_id == "tiny/test"
    emb = embedding(0)
    ours = pixels(r(emb, seed=7))
    theirs = diffusers_images(files, emb, 7, scheduler=scheduler, guidance=guidance)
    assert ours.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert level_difference(ours, theirs) <= MAX_LEVEL_DIFFERENCE
    assert ours.std() > 0


def test_bin_file_loads_weights_only_to_the_same_image(files):
    from_bin = renderer(files, files["bin"])
    from_safetensors = renderer(files)
    emb = embedding(1)
    np.testing.assert_array_equal(pixels(from_bin(emb, seed=2)), pixels(from_safetensors(emb, seed=2)))
    assert from_bin.source.endswith(".bin")


def test_other_embedding_other_image_scale_zero_plain_image(files):
    r = renderer(files)
    a, b = pixels(r(embedding(0), seed=5)), pixels(r(embedding(1), seed=5))
    assert level_difference(a, b) > 10  # the embedding reaches the picture
    assert r.generator._captured  # the UNet step's static variant
    r.configure(scale=0.0)
    assert not r.generator._captured  # a captured step would replay the old scale: captured again
    off = pixels(r(embedding(0), seed=5))
    plain = diffusers_images(files, embedding(0), 5, ip_adapter=False)  # no IP-Adapter at all
    assert level_difference(off, plain) <= MAX_LEVEL_DIFFERENCE
    np.testing.assert_array_equal(off, pixels(r(embedding(1), seed=5)))  # scale 0: the vector is unused
    r.configure(scale=0.5)
    half = pixels(r(embedding(0), seed=5))
    assert level_difference(half, diffusers_images(files, embedding(0), 5, scale=0.5)) <= MAX_LEVEL_DIFFERENCE


def test_batch_of_embeddings_is_each_its_own_image(files):
    r = renderer(files, guidance_scale=2.0)
    both = pixels(r(np.stack([embedding(0), embedding(1)]), seed=[4, 9]))
    assert level_difference(both[:1], pixels(r(embedding(0), seed=4))) <= MAX_LEVEL_DIFFERENCE
    assert level_difference(both[1:], pixels(r(embedding(1), seed=9))) <= MAX_LEVEL_DIFFERENCE


def test_few_step_lora_with_ip_adapter_is_diffusers_image(files):
    r = renderer(files, scheduler="lcm", num_inference_steps=2, lora=files["lora"])
    emb = embedding(2)
    ours = pixels(r(emb, seed=3))
    theirs = diffusers_images(files, emb, 3, scheduler="lcm", lora=files["lora"])
    assert level_difference(ours, theirs) <= MAX_LEVEL_DIFFERENCE
    assert level_difference(ours, pixels(renderer(files, scheduler="euler-a")(emb, seed=3))) > 0


def test_tiny_decoder_renders_and_differs_from_the_full_vae(files):
    tiny = renderer(files, tiny_vae=files["taesd"])
    full = renderer(files)
    a, b = pixels(tiny(embedding(0), seed=1)), pixels(full(embedding(0), seed=1))
    assert a.shape == b.shape and level_difference(a, b) > 0


@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt"])
def test_single_file_base_gives_the_folder_image_with_its_text_encoder(files, tmp_path, suffix):
    """An SD 1.5 single file (LDM layout, text encoder under cond_stage_model.transformer.)
    renders as its diffusers folder does: the empty prompt comes from the file's text encoder."""
    import shutil

    from safetensors.torch import save_file
    from transformers import CLIPTextModel

    gen = ImageGenerator.from_pretrained(files["base"], device="cpu")
    state = generation_state(gen)
    text_encoder = CLIPTextModel.from_pretrained(files["base"], subfolder="text_encoder")
    state.update({f"cond_stage_model.transformer.text_model.{k.removeprefix('text_model.')}": v.contiguous()
                  for k, v in text_encoder.state_dict().items()})  # the layout of SD 1.5's files
    configs = write_configs(gen, tmp_path / "configs")
    for part in ("text_encoder", "tokenizer"):  # the tiny text encoder's architecture and tokens
        shutil.copytree(files["base"] / part, configs / part)
    path = tmp_path / f"sd15{suffix}"
    save_file(state, path) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    single = IPAdapterRenderer.from_pretrained(
        path, files["adapter"], config=configs, num_inference_steps=2, device="cpu", dtype="float32").prepare()
    torch.testing.assert_close(single.text_embedding, empty_prompt_embedding(files["base"]))
    assert single.text_embedding.abs().sum() > 0
    np.testing.assert_array_equal(pixels(single(embedding(0), seed=3)), pixels(renderer(files)(embedding(0), seed=3)))
    # a file without a text encoder (UNet and VAE only) renders on a zero text context
    save_file(generation_state(gen), tmp_path / "no_text.safetensors")
    assert empty_prompt_embedding(tmp_path / "no_text.safetensors", configs) is None


# -- img2img: the low-level start ------------------------------------------------------------------

def test_img2img_from_a_latent_is_diffusers_img2img_image(files):
    r = renderer(files, num_inference_steps=4)
    emb = embedding(3)
    start = torch.randn(1, 4, IMAGE_SIZE // 2, IMAGE_SIZE // 2, generator=torch.Generator().manual_seed(0))
    ours = pixels(r(emb, seed=6, init_latent=start[0].numpy(), strength=0.5))
    # our strength is the share of the start kept; diffusers' the share of the schedule run
    theirs = diffusers_images(files, emb, 6, steps=4, init_latents=start, strength=0.5)
    assert level_difference(ours, theirs) <= MAX_LEVEL_DIFFERENCE
    pure = pixels(r(emb, seed=6))
    assert level_difference(ours, pure) > 0
    # strength 0: pure text-free IP-Adapter generation, the start unused (and the scheduler's
    # img2img offset does not leak into the next image)
    np.testing.assert_array_equal(pixels(r(emb, seed=6, init_latent=start[0], strength=0.0)), pure)


def test_img2img_takes_a_coarse_latent_or_a_picture_and_the_setting(files):
    r = renderer(files, num_inference_steps=4, strength=0.75)
    emb = embedding(4)
    coarse = np.random.default_rng(1).standard_normal((4, 4, 4)).astype(np.float32)  # upsampled
    from_coarse = r(emb, seed=2, init_latent=coarse)
    assert from_coarse.timings["steps"] == 1  # the last quarter of 4 steps
    picture = Image.fromarray(np.random.default_rng(2).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    from_picture = pixels(r(emb, seed=2, init_image=picture))
    assert from_picture.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert level_difference(from_picture, pixels(from_coarse)) > 0
    np.testing.assert_array_equal(from_picture, pixels(r(emb, seed=2, init_image=picture)))


# -- the renderer's lifecycle ----------------------------------------------------------------------

def test_interrupt_stops_between_unet_steps_and_clears(files):
    r = renderer(files, num_inference_steps=4)
    result = r(embedding(0), seed=1, on_step=lambda i: r.interrupt())
    assert result.interrupted and result.images == [] and result.timings["steps"] == 1
    assert r(embedding(0), seed=1).interrupted  # the flag holds until cleared
    r.clear_interrupt()
    again = r(embedding(0), seed=1)
    assert not again.interrupted and again.timings["steps"] == 4


def test_warmup_runs_each_guidance_variant_and_keeps_the_settings(files):
    r = renderer(files, guidance_scale=3.0)
    messages = []
    r.warmup(progress=messages.append)
    assert messages == ["warming up (guidance on) 1/1"]
    assert r.generator.settings.guidance_scale == 3.0
    assert "IP-Adapter (tiny/test, scale 1)" in r.description and "guidance 3" in r.description
    assert "32-d tiny/test" in repr(r)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_give_diffusers_image_on_cuda(files):
    emb = embedding(0)
    r = renderer(files, device="cuda", cuda_graphs=True, guidance_scale=3.0)
    ours = pixels(r(emb, seed=7))
    assert r.generator.use_graphs and any(call.captured for call in r.generator._captured.values())
    theirs = diffusers_images(files, emb, 7, guidance=3.0, device="cuda")
    assert level_difference(ours, theirs) <= MAX_LEVEL_DIFFERENCE
    for dtype in ("float16", "bfloat16"):  # the same picture in coarser numbers
        half = pixels(renderer(files, device="cuda", dtype=dtype, cuda_graphs=True)(emb, seed=7))
        assert np.abs(half.astype(int) - ours.astype(int)).mean() < 12


# -- bad input: one line each ----------------------------------------------------------------------

def test_wrong_width_embedding_is_one_line_naming_both(files):
    r = renderer(files)
    with pytest.raises(ConfigError) as err:
        r(np.zeros(EMBED_DIM * 2, np.float32), seed=0)
    message = str(err.value)
    assert "\n" not in message and str(EMBED_DIM * 2) in message and f"takes {EMBED_DIM}" in message
    assert "tiny/test" in message
    with pytest.raises(Exception, match="NaN"):
        r(np.full(EMBED_DIM, np.nan, np.float32), seed=0)


@pytest.mark.parametrize("name,content", [
    ("garbled.safetensors", b"\x00\x01not a safetensors file"),
    ("garbled.bin", b"PK\x03\x04 truncated zip"),
])
def test_garbled_ip_adapter_file_is_a_checkpoint_error_naming_it(files, tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=name) as err:
        IPAdapterRenderer.from_pretrained(files["base"], path)
    assert "\n" not in str(err.value)


class _RunsCode:
    """Unpickling this calls os.system: a .bin that would run code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_pickled_code_in_a_bin_is_refused_unrun(files, tmp_path):
    path, marker = tmp_path / "evil.bin", tmp_path / "ran"
    torch.save({"image_proj": _RunsCode(marker), "ip_adapter": {}}, path)
    with pytest.raises(CheckpointError, match="evil.bin was refused.*system"):
        read_ip_adapter(path)
    assert not marker.exists()


def test_weights_of_another_kind_or_unet_are_refused_naming_the_file(files, tmp_path):
    unet = UNet2DConditionModel.from_pretrained(files["base"], subfolder="unet")
    state = tiny_ip_adapter_state(unet, image_embed_dim=EMBED_DIM)
    wide = {**state, "ip_adapter": {k: torch.zeros(v.shape[0], v.shape[1] * 2) for k, v in state["ip_adapter"].items()}}
    with pytest.raises(CheckpointError, match="wide.safetensors.*does not fit"):
        IPAdapterRenderer.from_pretrained(files["base"], save_ip_adapter_state(wide, tmp_path / "wide.safetensors"))
    plus = {"image_proj": {"latents": torch.zeros(1, 16, 768), "proj_in.weight": torch.zeros(768, 8)},
            "ip_adapter": state["ip_adapter"]}
    with pytest.raises(CheckpointError, match="IP-Adapter Plus"):
        IPAdapterRenderer.from_pretrained(files["base"], save_ip_adapter_state(plus, tmp_path / "plus.bin"))
    with pytest.raises(CheckpointError, match="not an IP-Adapter"):
        IPAdapterRenderer.from_pretrained(files["base"], save_ip_adapter_state(
            {"image_proj": {}, "ip_adapter": {}}, tmp_path / "empty.bin"))


def test_where_the_weights_are_looked_for(files, tmp_path):
    assert IPAdapterRenderer.from_pretrained(files["base"], files["root"] / "adapter").source == str(files["adapter"])
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / WEIGHTS).write_bytes(files["adapter"].read_bytes())  # the hub's layout
    assert read_ip_adapter(tmp_path)[1] == str(tmp_path / "models" / WEIGHTS)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no weights file"):
        read_ip_adapter(tmp_path / "empty")
    with pytest.raises(ConfigError, match="huggingface-cli download h94/IP-Adapter"):
        read_ip_adapter(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE=1"):  # the tests run offline
        read_ip_adapter("nobody-here/no-such-adapter")


# -- settings and the command line -----------------------------------------------------------------

def test_settings_are_checked_naming_the_key():
    for bad, match in [({"ip_adapter_scale": -1.0}, r"\[generator\] ip_adapter_scale"),
                       ({"img2img_strength": 1.5}, r"\[generator\] img2img_strength"),
                       ({"ip_adapter_embedder": " "}, r"\[generator\] ip_adapter_embedder"),
                       ({"ip_adapter": "models/ip-adapter"}, r"\[generator\] ip_adapter needs \[generator\] base")]:
        with pytest.raises(ConfigError, match=match):
            GeneratorConfig(**bad)
    config = GeneratorConfig()
    assert (config.base, config.ip_adapter, config.ip_adapter_scale, config.img2img_strength) == (None, None, 1.0, 0.0)
    assert config.ip_adapter_embedder == DEFAULT_EMBEDDER_ID == "ViT-H-14/laion2b_s32b_b79k"


def test_readme_settings_block_documents_the_ip_adapter_keys():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("### Settings"):]
    block = block[block.index("[generator]"):block.index("[record]")]
    for key in ("base", "ip_adapter", "ip_adapter_scale", "ip_adapter_embedder", "img2img_strength"):
        assert f"{key} = " in block, f"README's [generator] settings lack {key}"


def test_command_line_wins_and_from_config_builds_the_renderer(files, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('[generator]\nbase = "elsewhere"\nip_adapter_scale = 0.3\nimg2img_strength = 0.5\n'
                    'ip_adapter_embedder = "tiny/test"\nsteps = 2\ndevice = "cpu"\ndtype = "float32"\n')
    for command in ("run", "demo"):
        args = cli.build_parser().parse_args([command, "--config", str(toml), "--base", str(files["base"]),
                                              "--ip-adapter", str(files["adapter"]), "--ip-adapter-scale", "0.8"])
        gen = cli._config_from_args(args).generator
        assert (gen.base, gen.ip_adapter, gen.ip_adapter_scale) == (str(files["base"]), str(files["adapter"]), 0.8)
    args = cli.build_parser().parse_args(["replay", str(tmp_path), "--config", str(toml), "--base", str(files["base"]),
                                          "--ip-adapter", str(files["adapter"])])
    gen = cli._config_from_args(args).generator
    assert (gen.ip_adapter_scale, gen.img2img_strength) == (0.3, 0.5)
    r = IPAdapterRenderer.from_config(gen).prepare()
    assert (r.settings.scale, r.settings.strength, r.embedder_id) == (0.3, 0.5, "tiny/test")
    assert r.generator.settings.num_inference_steps == 2
    with pytest.raises(ConfigError, match="needs \\[generator\\] base"):
        IPAdapterRenderer.from_config(GeneratorConfig())
