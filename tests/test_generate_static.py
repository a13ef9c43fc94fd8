"""The hot path: dd-live's fixed-shape loop against diffusers' pipeline, captured variants,
one-step samplers, the conditioner on the generator's device, the interrupt flag.

On CPU the static path runs the captured calls eagerly on their static buffers (CUDA graphs need
CUDA, which CI never has); everything else is the code users run. Random tiny weights.
"""

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import save_file

from dd_live.config import GeneratorConfig
from dd_live.decoding import EEGDecoder, conditioner_dtype, cpu_has_native_bf16, place_conditioner
from dd_live.generate import ImageGenerator
from dd_live.generate.schedulers import make_scheduler
from dd_live.model import CLIP_DIM, CLIP_TOKENS, EEGConditioner, get_preset

IMAGE_SIZE = 32
# the static path and diffusers' pipeline do the same float32 arithmetic; the 8-bit conversion
# happens in torch here and in numpy there: at most one level of 255 apart, on a few pixels
MAX_LEVEL_DIFFERENCE = 1


def contexts(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, CLIP_TOKENS, CLIP_DIM, generator=torch.Generator().manual_seed(seed))


def pixels(result) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


def hooked_pipeline_images(gen: ImageGenerator, context, seeds, *, steps, guidance) -> np.ndarray:
    """The former eager path: diffusers' StableDiffusionPipeline, the time conditioning fed by a
    forward pre-hook from each call's ``encoder_hidden_states`` (how dd-live did it before)."""
    pipe = StableDiffusionPipeline(
        vae=gen.vae, text_encoder=None, tokenizer=None, unet=gen.unet,
        scheduler=make_scheduler(gen.settings.scheduler, gen.scheduler_config), safety_checker=None,
        feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    handle = None
    if gen.time_cond is not None:
        def add_class_labels(module, args, kwargs):
            kwargs["class_labels"] = gen.time_cond(kwargs["encoder_hidden_states"])
            return args, kwargs
        handle = gen.unet.register_forward_pre_hook(add_class_labels, with_kwargs=True)
    try:
        with torch.inference_mode():
            out = pipe(prompt_embeds=context, negative_prompt_embeds=torch.zeros_like(context)
                       if guidance > 1 else None, num_inference_steps=steps, guidance_scale=guidance,
                       height=IMAGE_SIZE, width=IMAGE_SIZE, output_type="np",
                       generator=[torch.Generator("cpu").manual_seed(s) for s in seeds]).images
    finally:
        if handle is not None:
            handle.remove()
    return (out * 255).round().astype(np.uint8)


@pytest.mark.parametrize("scheduler,guidance", [("dpm++", 3.0), ("euler-a", 1.0), ("plms", 1.0)])
def test_static_path_gives_the_eager_pipeline_image(scheduler, guidance):
    gen = ImageGenerator.tiny(seed=1, image_size=IMAGE_SIZE, time_conditioning=True).prepare()
    with torch.no_grad():
        gen.time_cond.layers[2].bias.fill_(3.0)  # a time-embedding offset that shows in the image
    gen.configure(scheduler=scheduler, num_inference_steps=2, guidance_scale=guidance)
    context = contexts(2, 0)
    ours = pixels(gen(context, seed=[7, 8]))
    theirs = hooked_pipeline_images(gen, context, [7, 8], steps=2, guidance=guidance)
    assert ours.shape == theirs.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= MAX_LEVEL_DIFFERENCE
    assert ours.std() > 0


def test_guidance_variants_are_separate_and_replays_do_not_mix():
    gen = ImageGenerator.tiny(seed=2, image_size=IMAGE_SIZE).prepare().configure(num_inference_steps=2)
    context = contexts(1, 3)
    off = pixels(gen(context, seed=1))
    on = pixels(gen.configure(guidance_scale=4.0)(context, seed=1))
    off_again = pixels(gen.configure(guidance_scale=1.0)(context, seed=1))
    np.testing.assert_array_equal(off, off_again)
    assert not np.array_equal(off, on)
    unet_variants = sorted(key[1] for key in gen._captured if key[0] == "unet")
    assert unet_variants == [1, 2]  # batch 1 without guidance, 2 (null + context) with it


def test_warmup_reports_progress_and_leaves_the_settings():
    gen = ImageGenerator.tiny(seed=2, image_size=IMAGE_SIZE).configure(num_inference_steps=2)
    messages = []
    gen.warmup(progress=messages.append)
    assert messages and all("1/1" in m or "warming" in m for m in messages)
    assert gen.settings.guidance_scale == 1.0 and any(k[0] == "unet" for k in gen._captured)


@pytest.mark.parametrize("scheduler", ["lcm", "tcd"])
def test_one_step_sampler_runs_one_unet_step_from_t999(scheduler):
    gen = ImageGenerator.tiny(seed=4, image_size=IMAGE_SIZE, lcm=True).configure(
        scheduler=scheduler, num_inference_steps=1)
    timesteps = []
    gen.unet.register_forward_pre_hook(lambda m, args: timesteps.append(int(args[1])))
    result = gen(contexts(1, 0), seed=0)
    assert timesteps == [999] and result.timings["steps"] == 1
    assert pixels(result).std() > 0


def test_distilled_unet_file_replaces_the_models_unet_and_runs_one_step(tmp_path):
    base = ImageGenerator.tiny(seed=5, image_size=IMAGE_SIZE)
    base.save_pretrained(tmp_path / "model")
    base.unet.save_config(tmp_path / "configs" / "unet")
    distilled = ImageGenerator.tiny(seed=6, image_size=IMAGE_SIZE).unet  # other weights
    save_file(distilled.state_dict(), tmp_path / "onestep_unet.safetensors")
    gen = ImageGenerator.from_pretrained(tmp_path / "model", unet=tmp_path / "onestep_unet.safetensors",
                                         config=tmp_path / "configs", scheduler="lcm", num_inference_steps=1,
                                         device="cpu")
    for name, value in distilled.state_dict().items():
        torch.testing.assert_close(gen.unet.state_dict()[name], value, rtol=0, atol=0)
    result = gen(contexts(1, 0), seed=0)
    assert result.timings["steps"] == 1 and len(result.images) == 1
    with pytest.raises(Exception, match="needs few-step weights"):
        ImageGenerator.from_pretrained(tmp_path / "model", scheduler="lcm", num_inference_steps=1, device="cpu")


def test_interrupt_flag_holds_until_cleared():
    gen = ImageGenerator.tiny(seed=2, image_size=IMAGE_SIZE).configure(num_inference_steps=3)
    gen.interrupt()  # e.g. pause pressed while the window was being encoded
    stopped = gen(contexts(1, 0), seed=0)
    assert stopped.interrupted and stopped.images == [] and stopped.timings["steps"] == 0
    gen.clear_interrupt()  # what the worker does when it takes the next window
    assert gen(contexts(1, 0), seed=0).timings["steps"] == 3


def test_conditioner_lives_on_the_generators_device_and_dtype_policy():
    decoder = EEGDecoder.from_config(GeneratorConfig(model="tiny", steps=2))
    gen = decoder.generator
    expected = conditioner_dtype(gen.device)
    tensors = [*decoder.conditioner.parameters(), *decoder.conditioner.buffers()]
    assert tensors and all(t.device == gen.device and t.dtype == expected for t in tensors)
    window = decoder._window_to_device(np.zeros((decoder.n_channels, decoder.n_times), np.float32))
    assert window.device == gen.device and window.dtype == expected
    result = decoder(np.random.default_rng(0).standard_normal(
        (decoder.n_channels, decoder.n_times)).astype(np.float32), seed=0)
    assert len(result.images) == 1 and {"encode", "sample", "decode"} <= set(result.timings)


def test_cuda_policy_places_every_conditioner_tensor_in_bfloat16():
    # device stand-in: CUDA is not available in CI, so the CUDA policy's dtype is applied on the
    # meta device (no memory, same .to() path); the device move itself is torch's
    assert conditioner_dtype("cuda") == torch.bfloat16
    assert conditioner_dtype("cpu") == (torch.bfloat16 if cpu_has_native_bf16() else torch.float32)
    with torch.device("meta"):
        conditioner = EEGConditioner(get_preset("tiny", kind="conditioner"))
    place_conditioner(conditioner, "meta", conditioner_dtype("cuda"))
    tensors = [*conditioner.parameters(), *conditioner.buffers()]
    assert all(t.dtype == torch.bfloat16 for t in tensors if t.is_floating_point())
    assert conditioner.null_context.dtype == torch.bfloat16
    assert not any(p.requires_grad for p in conditioner.parameters())


def test_native_bf16_is_read_from_the_cpu_flags(tmp_path):
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n")
    without.write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw\n")
    assert cpu_has_native_bf16(str(with_bf16)) and not cpu_has_native_bf16(str(without))
    assert not cpu_has_native_bf16(str(tmp_path / "missing"))
