"""Build the demo model. ``python -m training.demo.build --out dd_live/assets/demo``.

Stages (all on CPU, fixed seeds, one torch thread by default):

1. the demo world: live-like windows of the 8 synthetic states, images of each state;
2. masked-signal pretraining of a small EEG encoder (16 ch x 128 samples);
3. a KL autoencoder from scratch (64 px images <-> 8 x 8 x 4 latents);
4. EEG conditioner + UNet from scratch on the latents (diffusion loss, no CLIP);
5. the state-image classifier;
6. the model folder (``conditioner/ unet/ vae/ scheduler/ classifier/``, with the same models
   exported for ONNX Runtime beside their weights, :mod:`training.demo.export_onnx`) and its
   measured quality: ``quality.json``, ``samples.png`` and the model card ``README.md``.
"""

import argparse
import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler
from safetensors.torch import load_file, save_file

from dd_live.config import GeneratorConfig
from dd_live.decoding import EEGDecoder, write_model_settings
from dd_live.model import load, save
from training.demo.card import write_card
from training.demo.classifier import StateClassifierConfig, save_classifier, train_classifier
from training.demo.export_onnx import export_model_folder
from training.demo.models import (
    StageConfig,
    encode_posteriors,
    encoder_config,
    pretrain_encoder,
    train_generator,
    train_vae,
)
from training.demo.quality import (
    embedding_accuracy,
    generate,
    image_accuracy,
    images_per_second,
    live_accuracy,
    state_grid,
)
from training.demo.world import STATE_NAMES, DemoPairs, DemoWorld
from training.models import SD_NOISE_SCHEDULE

logger = logging.getLogger(__name__)

#: The sampler the demo model is built and measured for (GeneratorConfig scheduler / steps).
DEMO_SCHEDULER = "dpm++"
DEMO_STEPS = 6
#: Seeds of held-out streams start here (training streams use 0..train_streams-1).
HELD_OUT_SEED = 10_000
QUALITY_FILE = "quality.json"
DEMO_DESCRIPTION = "synthetic demo model: 8 simulated brain states -> shapes (not a real brain)"
SAMPLES_FILE = "samples.png"
CLASSIFIER = "classifier"
#: Images judged per thought for the live figure (training.demo.quality.live_accuracy).
LIVE_IMAGES_PER_STATE = 24
#: What each thought's picture looks like: the window's legend (dd_live.json "legend").
LEGEND = {"calm": "red circle", "focus": "green square", "visual": "blue triangle",
          "motor": "yellow cross", "memory": "magenta ring", "imagery": "cyan diamond",
          "alert": "orange horizontal bar", "drowsy": "white vertical bar"}


def write_demo_settings(folder: Path, generator: dict) -> Path:
    """The folder's dd_live.json: description, sampler settings, and the thought legend."""
    path = write_model_settings(folder, DEMO_DESCRIPTION, {**generator, "threads": 1})
    settings = json.loads(path.read_text(encoding="utf-8"))
    settings["legend"] = {name: LEGEND[name] for name in STATE_NAMES}
    path.write_text(json.dumps(settings, indent=1) + "\n", encoding="utf-8")
    return path


@dataclass(frozen=True)
class BuildConfig:
    """Everything the build depends on (saved in quality.json)."""

    world: DemoWorld = field(default_factory=DemoWorld)
    seed: int = 2022
    train_streams: int = 8
    windows_per_stream: int = 50
    images_per_state: int = 64
    classifier_images_per_state: int = 128
    eval_streams: int = 2
    eval_windows_per_stream: int = 12
    pretrain: StageConfig = StageConfig(epochs=10, lr=1e-3, batch_size=64, warmup_epochs=1, weight_decay=0.05,
                                        betas=(0.9, 0.95))
    vae: StageConfig = StageConfig(epochs=20, lr=2e-3, batch_size=16, warmup_epochs=0.5)
    generator: StageConfig = StageConfig(epochs=20, lr=1e-3, batch_size=64, warmup_epochs=1)
    classifier_epochs: int = 10


PRESETS = {
    "full": BuildConfig(),
    # a quick end-to-end pass of the build (minutes): checks the recipe, not the quality
    "smoke": BuildConfig(train_streams=2, windows_per_stream=16, images_per_state=8, classifier_images_per_state=16,
                         eval_streams=1, eval_windows_per_stream=2,
                         pretrain=StageConfig(epochs=1, lr=1e-3, batch_size=32),
                         vae=StageConfig(epochs=1, lr=1e-3, batch_size=16),
                         generator=StageConfig(epochs=1, lr=1e-3, batch_size=32), classifier_epochs=1),
}


def demo_generator_config(model: str | Path) -> GeneratorConfig:
    """The GeneratorConfig the app should use for the demo model (CPU, float32)."""
    return GeneratorConfig(model=str(model), scheduler=DEMO_SCHEDULER, steps=DEMO_STEPS, device="cpu", dtype="float32")


def save_model(out: Path, conditioner, unet, vae, classifier) -> None:
    """The dd-live model folder; UNet and VAE weights stored in float16 (they load as float32)."""
    save(conditioner, out / "conditioner")
    for name, module in (("unet", unet), ("vae", vae)):
        module.save_pretrained(out / name)
        for path in (out / name).glob("*.safetensors"):
            halved = {key: value.half() for key, value in load_file(path).items()}
            save_file(halved, path, metadata={"format": "pt"})
    scheduler = DPMSolverMultistepScheduler.from_config(
        SD_NOISE_SCHEDULE, algorithm_type="dpmsolver++", solver_order=2, timestep_spacing="trailing")
    scheduler.save_pretrained(out / "scheduler")
    save_classifier(classifier, out / CLASSIFIER)
    export_model_folder(out)  # the graphs the CPU runtime runs (measured below as the app runs)


def measure(out: Path, world: DemoWorld, config: BuildConfig, classifier, fit) -> dict:
    """Quality of the saved folder, loaded the way the app loads it."""
    decoder = EEGDecoder.from_config(demo_generator_config(out))
    held_out = world.state_windows(range(HELD_OUT_SEED, HELD_OUT_SEED + config.eval_streams),
                                   config.eval_windows_per_stream)
    images = generate(decoder, held_out[0])
    predicted = classifier.predict(images)
    per_state = {name: float((predicted[held_out[1] == k] == k).mean()) for k, name in enumerate(STATE_NAMES)}
    state_grid(images, held_out[1], per_row=min(8, config.eval_streams * config.eval_windows_per_stream)).save(
        out / SAMPLES_FILE)
    live = live_accuracy(out, source_seed=HELD_OUT_SEED, per_state=LIVE_IMAGES_PER_STATE)
    return {
        "live_accuracy": live["accuracy"],
        "live_accuracy_per_state": live["per_state"],
        "live_n_judged": live["n_judged"],
        "embedding_accuracy": embedding_accuracy(load(out / "conditioner"), fit, held_out),
        "image_accuracy": image_accuracy(classifier, images, held_out[1]),
        "image_accuracy_per_state": per_state,
        "images_per_second": images_per_second(decoder, held_out[0]),
        "runtime": getattr(decoder, "runtime", "torch"),  # what `dd-live demo` runs it on
        "n_held_out_windows": int(len(held_out[1])),
    }


def build(out: Path, config: BuildConfig, work_dir: Path) -> dict:
    """Run every stage; write the model folder ``out``; return the quality record."""
    world, times = config.world, {}
    start = time.perf_counter()
    logger.info("1/6 demo world: %d streams x %d windows per state", config.train_streams, config.windows_per_stream)
    eeg, labels = world.state_windows(range(config.train_streams), config.windows_per_stream)
    images, image_labels = world.image_bank(config.images_per_state, config.seed)
    times["data"] = time.perf_counter() - start

    logger.info("2/6 masked-signal pretraining of the encoder on %d windows", len(eeg))
    encoder = encoder_config(world.n_channels, world.n_times)
    history = {"pretrain": pretrain_encoder(torch.from_numpy(eeg), encoder, config.pretrain, work_dir / "encoder")}
    times["pretrain"] = time.perf_counter() - start - sum(times.values())

    logger.info("3/6 autoencoder on %d images", len(images))
    vae, history["vae"] = train_vae(images, config.vae)
    times["vae"] = time.perf_counter() - start - sum(times.values())

    logger.info("4/6 conditioner + UNet on %d pairs", len(eeg))
    pairs = DemoPairs(eeg, labels, encode_posteriors(vae, images), image_labels)
    conditioner, unet, history["generator"] = train_generator(pairs, work_dir / "encoder", encoder, vae,
                                                              config.generator)
    times["generator"] = time.perf_counter() - start - sum(times.values())

    logger.info("5/6 state-image classifier")
    classifier_images, classifier_labels = world.image_bank(config.classifier_images_per_state, config.seed + 1)
    classifier = train_classifier(classifier_images, classifier_labels,
                                  StateClassifierConfig(world.n_states, world.image_size), STATE_NAMES,
                                  epochs=config.classifier_epochs, seed=config.seed)
    times["classifier"] = time.perf_counter() - start - sum(times.values())

    logger.info("6/6 saving to %s and measuring", out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(tmp, conditioner, unet, vae, classifier)
    generator_config = {"scheduler": DEMO_SCHEDULER, "steps": DEMO_STEPS, "guidance_scale": 1.0}
    write_demo_settings(tmp, generator_config)  # measured as `dd-live demo` runs it
    quality = measure(tmp, world, config, classifier, (eeg, labels))
    times["measure"] = time.perf_counter() - start - sum(times.values())
    record = {
        "quality": quality,
        "build_seconds": {**{k: round(v, 1) for k, v in times.items()}, "total": round(sum(times.values()), 1)},
        "threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "torch": torch.__version__,
        "generator_config": generator_config,
        "build_config": asdict(config),
        "final_losses": {stage: rows[-1] for stage, rows in history.items()},
    }
    (tmp / QUALITY_FILE).write_text(json.dumps(record, indent=1) + "\n")
    write_card(tmp, record)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return record


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.demo.build", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the model folder to write (e.g. dd_live/assets/demo)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (1: fastest on a busy 2-core machine, and reproducible)")
    parser.add_argument("--work-dir", type=Path, default=None, help="intermediate files (default: <out>.work)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    np.random.seed(0)  # nothing should draw from numpy's global RNG; pinned in case a library does
    work_dir = args.work_dir or args.out.with_name(args.out.name + ".work")
    work_dir.mkdir(parents=True, exist_ok=True)
    record = build(args.out, PRESETS[args.preset], work_dir)
    shutil.rmtree(work_dir, ignore_errors=True)
    q = record["quality"]
    logger.info("built %s in %.0f s: embedding accuracy %.3f, image accuracy %.3f, %.1f images/s", args.out,
                record["build_seconds"]["total"], q["embedding_accuracy"], q["image_accuracy"],
                q["images_per_second"])
    return record


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    main()
