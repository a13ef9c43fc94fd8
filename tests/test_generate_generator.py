"""ImageGenerator on CPU with tiny random components (real diffusers classes, tiny widths)."""

import sys
import types

import numpy as np
import pytest
import torch

import dd_live.generate.backend as attention_backend
from dd_live.errors import ConfigError, GenerationError
from dd_live.generate import SCHEDULERS, GenerationResult, ImageGenerator, choose_attention_backend
from dd_live.model import CLIP_DIM, CLIP_TOKENS

IMAGE_SIZE = 32
STEPS = 2


def contexts(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, CLIP_TOKENS, CLIP_DIM, generator=torch.Generator().manual_seed(seed))


def pixels(result: GenerationResult) -> np.ndarray:
    return np.stack([np.asarray(image) for image in result.images])


@pytest.fixture
def generator() -> ImageGenerator:
    return ImageGenerator.tiny(image_size=IMAGE_SIZE).configure(num_inference_steps=STEPS).prepare()


def test_same_context_and_seed_give_identical_images_and_timings(generator):
    first = generator(contexts(2, 0), seed=7)
    second = generator(contexts(2, 0), seed=7)
    assert len(first.images) == 2 and first.images[0].size == (IMAGE_SIZE, IMAGE_SIZE)
    assert first.seeds == [7, 8]
    np.testing.assert_array_equal(pixels(first), pixels(second))
    assert first.timings["steps"] == STEPS
    assert {"unet", "decode", "total", "unet_per_step"} <= set(first.timings)


def test_different_contexts_or_seeds_give_different_images(generator):
    base = pixels(generator(contexts(1, 0), seed=1))
    assert not np.array_equal(base, pixels(generator(contexts(1, 1), seed=1)))
    assert not np.array_equal(base, pixels(generator(contexts(1, 0), seed=2)))


def test_guidance_uses_the_null_context_as_negative_embeds():
    null = contexts(1, 99)[0]  # stands for a learned null EEG context
    gen = ImageGenerator.tiny(image_size=IMAGE_SIZE, null_context=null).configure(num_inference_steps=STEPS)
    gen.prepare()
    seen = []
    gen.unet.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["encoder_hidden_states"].clone()), with_kwargs=True
    )
    context = contexts(2, 0)
    unguided = pixels(gen(context, seed=3))
    assert [s.shape[0] for s in seen] == [2] * STEPS  # guidance 1: one UNet batch of 2, no null rows
    seen.clear()
    guided = pixels(gen.configure(guidance_scale=4.0)(context, seed=3))
    assert [s.shape[0] for s in seen] == [4] * STEPS  # null rows first, then the contexts
    torch.testing.assert_close(seen[0][:2], null.expand(2, -1, -1))
    torch.testing.assert_close(seen[0][2:], context)
    assert not np.array_equal(unguided, guided)


@pytest.mark.parametrize("name", sorted(set(SCHEDULERS) - {"lcm", "tcd"}))
def test_each_scheduler_runs(generator, name):
    result = generator.configure(scheduler=name)(contexts(1, 0), seed=0)
    assert np.asarray(result.images[0]).std() > 0
    assert generator.scheduler.__class__ is SCHEDULERS[name][0]


def test_lcm_needs_lcm_weights_and_runs_with_an_lcm_unet():
    with pytest.raises(GenerationError, match="'lcm' needs few-step weights.*lcm_lora="):
        ImageGenerator.tiny(image_size=IMAGE_SIZE).configure(scheduler="lcm", num_inference_steps=2)
    gen = ImageGenerator.tiny(image_size=IMAGE_SIZE, lcm=True).configure(scheduler="lcm", num_inference_steps=2)
    assert gen(contexts(1, 0), seed=0).timings["steps"] == 2
    with pytest.raises(ConfigError, match="1-8 steps"):
        gen.configure(num_inference_steps=20)


def test_interrupt_stops_within_one_step(generator):
    calls = []
    generator.unet.register_forward_pre_hook(lambda *args: calls.append(1))
    # interrupt() from inside the loop, as another thread would between two steps
    generator.unet.register_forward_hook(lambda *args: generator.interrupt())
    result = generator.configure(num_inference_steps=10)(contexts(1, 0), seed=0)
    assert result.interrupted and result.images == []
    assert len(calls) == 1 and result.timings["steps"] == 1


def test_tiny_decoder_and_time_conditioning_change_the_images():
    gen = ImageGenerator.tiny(image_size=IMAGE_SIZE).configure(num_inference_steps=STEPS)
    full = pixels(gen(contexts(1, 0), seed=0))
    tiny = gen.configure(tiny_decoder=True)(contexts(1, 0), seed=0)
    assert tiny.images[0].size == (IMAGE_SIZE, IMAGE_SIZE) and not np.array_equal(full, pixels(tiny))
    timed = ImageGenerator.tiny(image_size=IMAGE_SIZE, time_conditioning=True).configure(num_inference_steps=STEPS)
    with torch.no_grad():
        timed.time_cond.layers[2].bias.fill_(5.0)  # a visible offset on the time embedding
    assert not np.array_equal(full, pixels(timed(contexts(1, 0), seed=0)))
    assert "time-conditioned" in repr(timed)


def test_description_and_repr_say_what_it_is(generator):
    assert generator.is_tiny and generator.description == "tiny random generator — images carry no meaning"
    assert "dpm++ 2 steps" in repr(generator) and "cpu torch.float32 sdpa" in repr(generator)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (torch.zeros(1, CLIP_TOKENS, 512), r"shape \[B, 77, 768\], got \[1, 77, 512\]"),
        (torch.zeros(CLIP_TOKENS, CLIP_DIM), r"shape \[B, 77, 768\], got \[77, 768\]"),
        (torch.full((1, CLIP_TOKENS, CLIP_DIM), float("nan")), "NaN or infinite"),
        (np.zeros((1, CLIP_TOKENS, CLIP_DIM)), "must be a torch.Tensor"),
    ],
)
def test_bad_contexts_are_clear_errors(generator, bad, match):
    with pytest.raises(GenerationError, match=match):
        generator(bad, seed=0)


def test_seed_count_and_settings_are_checked(generator):
    with pytest.raises(GenerationError, match="got 1 seeds for a batch of 2"):
        generator(contexts(2, 0), seed=[1])
    with pytest.raises(ConfigError, match="scheduler 'k-lms' is not one of"):
        generator.configure(scheduler="k-lms")
    with pytest.raises(ConfigError, match="multiple of 8"):
        generator.configure(image_size=30)
    with pytest.raises(GenerationError, match="tiny_decoder=True needs a tiny autoencoder"):
        ImageGenerator(generator.unet, generator.vae, generator.scheduler_config).configure(tiny_decoder=True)


def _fake_xformers(monkeypatch, kernel) -> list:
    """Mock: an importable "xformers" whose ``memory_efficient_attention`` is ``kernel`` (no
    xformers build exists for this CPU-only torch). Returns the list of calls it received."""
    calls = []

    def attention(q, k, v):
        calls.append(q.device)
        return kernel(q, k, v)

    fake = types.ModuleType("xformers")
    fake.ops = types.ModuleType("xformers.ops")
    fake.ops.memory_efficient_attention = attention
    monkeypatch.setitem(sys.modules, "xformers", fake)
    monkeypatch.setitem(sys.modules, "xformers.ops", fake.ops)
    return calls


def test_xformers_counts_as_usable_only_when_its_kernel_runs(monkeypatch):
    """The probe really calls the kernel: an xformers that imports but whose kernel fails (a
    wheel built for another torch) is not usable; one whose kernel runs is."""
    device = torch.device("cpu")
    monkeypatch.setitem(sys.modules, "xformers.ops", None)  # as if not installed
    assert not attention_backend._xformers_kernels_load(device)

    def broken(q, k, v):
        raise RuntimeError("no kernel image is available for execution on the device")

    calls = _fake_xformers(monkeypatch, broken)
    assert not attention_backend._xformers_kernels_load(device)
    assert calls == [device]
    calls = _fake_xformers(monkeypatch, lambda q, k, v: q)
    assert attention_backend._xformers_kernels_load(device)
    assert calls == [device]


def test_attention_backend_choice(monkeypatch):
    """Mock: CUDA and xformers cannot run here, so ``torch.cuda.is_available`` and the kernel
    probe are replaced; the decision made from them is the real one."""
    probe = {"ok": True}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(attention_backend, "_xformers_kernels_load", lambda device: probe["ok"])
    assert choose_attention_backend("cuda") == "xformers"
    assert choose_attention_backend("cuda", "sdpa") == "sdpa"
    assert choose_attention_backend("cpu") == "sdpa"  # never on CPU, even where the probe passes
    with pytest.raises(GenerationError, match="attention='xformers' was asked for but xformers cannot run on cpu"):
        choose_attention_backend("cpu", "xformers")
    probe["ok"] = False  # installed but its kernels do not run: SDPA, or an error when asked for
    assert choose_attention_backend("cuda") == "sdpa"
    with pytest.raises(GenerationError, match="xformers cannot run on cuda"):
        choose_attention_backend("cuda", "xformers")
    with pytest.raises(ConfigError, match="attention 'flash' is not one of"):
        choose_attention_backend("cpu", "flash")
