"""The model card (README.md) of the demo model, written from the build's measured record."""

import math
from pathlib import Path

from safetensors import safe_open

from training.demo.world import STATE_NAMES

CARD = """# dd-live demo model

A small EEG-to-image model that really decodes: trained on dd-live's synthetic EEG states so
that `make demo` shows images that follow the (synthetic) mind, on a CPU, with no download.
It knows nothing about real brains: use it to see the app work end to end.

## What it is

| part | folder | architecture | parameters |
| --- | --- | --- | --- |
| EEG conditioner | `conditioner/` | dd-live `EEGConditioner`: ViT encoder over 4-sample tokens, 16 ch x 128 samples -> 32 tokens x 128, 4 blocks; context head -> 77 x 768 | {conditioner_m:.2f} M |
| UNet | `unet/` | diffusers `UNet2DConditionModel` (64, 128), cross-attention (768) at both levels, on 8 x 8 x 4 latents | {unet_m:.2f} M |
| VAE | `vae/` | diffusers `AutoencoderKL` (16, 32, 64, 64): 64 x 64 RGB <-> 8 x 8 x 4 latents | {vae_m:.2f} M |
| sampler | `scheduler/` | DPM-Solver++ (order 2), SD 1.x noise schedule, `timestep_spacing="trailing"` | - |
| state classifier | `classifier/` | 3-layer CNN naming the state of a 64 px image (quality check only) | {classifier_m:.3f} M |

UNet and VAE weights are stored in float16 (they load as float32); everything is safetensors +
JSON. Load it like any dd-live model folder:
`EEGDecoder.from_config(GeneratorConfig(model="demo", scheduler="{scheduler}", steps={steps}))`.

## Data (all synthetic, drawn by the build)

- EEG: `SyntheticSource` (16 channels, 250 Hz) in one of its 8 states ({states}), streamed in
  0.1 s chunks through the app's online filter (5-95 Hz band-pass, 50 Hz notch), cut into
  0.44 s windows (the app's default) every 0.13 s, and mapped by the app's `WindowPreprocessor`
  to 16 x 128 (resampled, standardised per channel). Training: {train_streams} streams per state
  (seeds 0..{last_seed}), {windows_per_stream} windows each ({n_train} windows). Held out: streams with seeds from
  10000 on.
- Images: state k is shape k in colour k (`training.data.synthetic.draw_class_image`: circle red,
  square green, triangle blue, cross yellow, ring magenta, diamond cyan, horizontal bar orange,
  vertical bar white), jittered in place and size, turned by up to 20 degrees, on a random dark
  background, 64 x 64. {images_per_state} images per state for the generator, another
  {classifier_images} per state (other seeds) for the classifier.

## How it was made

Rebuild with `make demo-model`, i.e. `python -m training.demo.build --out dd_live/assets/demo`
(`--threads N` for more torch threads; the recorded figures used {threads}). Intermediate
files go to `dd_live/assets/demo.work/` and are removed; the folder is replaced only when complete.

1. Masked-signal pretraining of the encoder (mask ratio 0.75; `dd_live.model.MaskedSignalModel`,
   `training.pretrain.masked_loss`): {pre_epochs} epochs, batch {pre_batch}, lr {pre_lr:g}.
2. The VAE from scratch (MSE + 1e-6 KL): {vae_epochs} epochs, batch {vae_batch}, lr {vae_lr:g};
   `scaling_factor` set so latents have unit variance.
3. Conditioner (from the pretrained encoder) + UNet from scratch, VAE frozen, noise-prediction
   loss (`training.models.EEGDiffusion`): {gen_epochs} epochs, batch {gen_batch}, lr {gen_lr:g}.
   Every window is paired with an image of its state.
4. The state classifier: {cls_epochs} epochs on its own images, with colour jitter (+-20 % per
   channel), noise and blur, so it names a slightly off-colour image by its shape too.

All stages use the project's training loop (`training.engine.train_one_epoch`), AdamW, cosine
lr, fixed seeds, {threads} CPU thread(s). No CLIP alignment: the demo ships no CLIP model
(ViT-L/14 is 1.7 GB, and a small CLIP trained on 8 drawn classes would add build time and teach
nothing the diffusion loss does not); the diffusion loss alone makes the encoder separate the
states. The CLIP head (`clip_projection`) is therefore untrained: retrieval mode does not work
with this model. There is no classifier-free guidance (the null context is untrained): use
guidance 1.

Build time on a 2-core machine: {build_total:.0f} s ({build_parts}).

## Measured quality (held-out streams)

What `dd-live demo` shows: a `LiveSession` with the settings the command line builds (the
newest window whenever the generator is free, a new seed per window, {scheduler} {steps}
steps), the synthetic headset going through every thought; the state classifier judges each
image whose window lies in one thought (the window's live verdict, `dd_live.verdict`).

| figure | value |
| --- | --- |
| images the classifier names as the intended thought, in `dd-live demo` ({live_n} images) | {live_accuracy:.1%} |
| per thought, in `dd-live demo` | {live_per_state} |
| the same judged one held-out window at a time through `EEGDecoder` ({n_held_out} windows, windows every 0.13 s) | {image_accuracy:.1%} |
| state decoding from the encoder (nearest class centroid of the mean token; centroids on training streams) | {embedding_accuracy:.1%} |
| images per second, end to end (encode + sample + decode, one window at a time, {threads} thread(s)) | {images_per_second:.1f} |

With a fixed seed for every image (`fixed_seed = true`) seed 0 draws *motor* as another
thought in almost every image (10 % recognised): that is why each window gets its own seed.
In the app the latest-window trigger keeps the generator busy, so the live rate is about the
end-to-end figure above (`benchmarks/live.py` prints the ratio).

Measured on a 2-core CPU shared with other jobs. Speed depends on torch's thread count: with
one thread per process the figure above; with two OpenMP threads on a 2-core machine that is
also busy elsewhere, each UNet step can take 4-5x longer (measured: ~2 images/s at 6 steps).

Limits: the model knows only the 8 states. Background-only EEG (`synthetic` with no state) was
never shown to it and gives arbitrary pictures of the 8 families. Shapes are softer than the
drawn ones and colours drift a little; the weakest state is listed in the per-state row above
(in the shipped build: the thin blue triangles of "visual", sometimes malformed).

`samples.png`: one row per state (top to bottom: {states}), images generated from held-out windows.
The figures are re-measured by `tests/test_demo_model.py` on other held-out seeds.
"""


def _millions(folder: Path) -> float:
    """Parameters (millions) in the safetensors files of ``folder``."""
    total = 0
    for path in folder.glob("*.safetensors"):
        with safe_open(path, "pt") as file:
            total += sum(math.prod(file.get_slice(key).get_shape()) for key in file.keys())  # noqa: SIM118
    return total / 1e6


def write_card(folder: Path, record: dict) -> Path:
    """Write ``folder/README.md`` from the build ``record`` (see :func:`training.demo.build.build`)."""
    config, quality, seconds = record["build_config"], record["quality"], record["build_seconds"]
    text = CARD.format(
        conditioner_m=_millions(folder / "conditioner"), unet_m=_millions(folder / "unet"),
        vae_m=_millions(folder / "vae"), classifier_m=_millions(folder / "classifier"),
        scheduler=record["generator_config"]["scheduler"], steps=record["generator_config"]["steps"],
        states=", ".join(STATE_NAMES), train_streams=config["train_streams"],
        last_seed=config["train_streams"] - 1, windows_per_stream=config["windows_per_stream"],
        n_train=config["train_streams"] * config["windows_per_stream"] * len(STATE_NAMES),
        images_per_state=config["images_per_state"], classifier_images=config["classifier_images_per_state"],
        pre_epochs=config["pretrain"]["epochs"], pre_batch=config["pretrain"]["batch_size"],
        pre_lr=config["pretrain"]["lr"], vae_epochs=config["vae"]["epochs"], vae_batch=config["vae"]["batch_size"],
        vae_lr=config["vae"]["lr"], gen_epochs=config["generator"]["epochs"],
        gen_batch=config["generator"]["batch_size"], gen_lr=config["generator"]["lr"],
        cls_epochs=config["classifier_epochs"], threads=record["threads"], build_total=seconds["total"],
        build_parts=", ".join(f"{k} {v:.0f} s" for k, v in seconds.items() if k != "total"),
        n_held_out=quality["n_held_out_windows"], embedding_accuracy=quality["embedding_accuracy"],
        image_accuracy=quality["image_accuracy"],
        live_accuracy=quality["live_accuracy"], live_n=quality["live_n_judged"],
        live_per_state=", ".join(f"{k} {v:.0%}"
                                 for k, v in quality["live_accuracy_per_state"].items()),
        images_per_second=quality["images_per_second"],
    )
    path = folder / "README.md"
    path.write_text(text)
    return path
