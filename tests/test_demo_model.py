"""The shipped demo model (dd_live/assets/demo) really decodes the synthetic states.

These tests LOAD the shipped folder (built by ``python -m training.demo.build --out
dd_live/assets/demo``); they never retrain it. Held-out streams use seeds the build never saw.
Torch runs on one thread here: on a busy 2-core machine two OpenMP threads that lose their
core to another process make small models ~20x slower.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from dd_live.config import GeneratorConfig
from dd_live.decoding import EEGDecoder
from dd_live.errors import CheckpointError
from dd_live.model import load
from training.data.images import tensor_to_image
from training.demo.build import DEMO_SCHEDULER, DEMO_STEPS, HELD_OUT_SEED, demo_generator_config
from training.demo.classifier import load_classifier
from training.demo.quality import embedding_accuracy, generate, image_accuracy, live_accuracy
from training.demo.world import STATE_NAMES, DemoWorld

DEMO = Path(__file__).resolve().parents[1] / "dd_live" / "assets" / "demo"
MAX_FOLDER_BYTES = 25 * 1024 * 1024
#: Seeds no build stage used (training streams are 0..7, the build's own check 10000..).
TEST_SEED = 3 * HELD_OUT_SEED


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def world() -> DemoWorld:
    return DemoWorld()


@pytest.fixture(scope="module")
def decoder() -> EEGDecoder:
    """The demo model loaded exactly as the app loads it, with the demo's sampler settings."""
    return EEGDecoder.from_config(demo_generator_config(DEMO))


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(DEMO / "classifier")


def test_folder_is_a_complete_model_within_the_size_budget():
    for part in ("conditioner/model.safetensors", "conditioner/config.json", "unet/config.json",
                 "vae/config.json", "scheduler/scheduler_config.json", "classifier/model.safetensors",
                 "README.md"):
        assert (DEMO / part).is_file(), f"dd_live/assets/demo lacks {part}; rebuild it with make demo-model"
    size = sum(path.stat().st_size for path in DEMO.rglob("*") if path.is_file())
    assert size <= MAX_FOLDER_BYTES, f"dd_live/assets/demo is {size / 2**20:.1f} MB"


def test_app_path_makes_a_64px_image_from_a_live_window(world):
    decoder = EEGDecoder.from_config(GeneratorConfig(model=str(DEMO), scheduler=DEMO_SCHEDULER, steps=DEMO_STEPS))
    assert (decoder.n_channels, decoder.n_times) == (world.n_channels, world.n_times)
    window = world.windows(state=2, seed=TEST_SEED, n_windows=1)[0]  # SyntheticSource -> filter -> preprocessor
    result = decoder(window, seed=0)
    assert len(result.images) == 1 and result.images[0].size == (world.image_size, world.image_size)
    assert result.timings["steps"] == DEMO_STEPS
    pixels = np.asarray(result.images[0], np.float32)
    assert pixels.std() > 10  # a picture, not a flat field


def test_encoder_embedding_decodes_held_out_states(world):
    conditioner = load(DEMO / "conditioner")
    fit = world.state_windows(range(TEST_SEED, TEST_SEED + 2), 10)
    test = world.state_windows(range(TEST_SEED + 100, TEST_SEED + 102), 10)
    accuracy = embedding_accuracy(conditioner, fit, test)
    assert accuracy >= 0.9, f"nearest-centroid state accuracy {accuracy:.3f} on held-out streams"


def test_classifier_names_drawn_images(world, classifier):
    images, labels = world.image_bank(per_state=8, seed=TEST_SEED)
    accuracy = image_accuracy(classifier, [tensor_to_image(image) for image in images], labels)
    assert accuracy >= 0.95, f"the state classifier names only {accuracy:.3f} of fresh drawn images"


def test_generated_images_follow_the_state(world, decoder, classifier):
    eeg, labels = world.state_windows(range(TEST_SEED + 200, TEST_SEED + 203), 2)  # 6 windows per state
    images = generate(decoder, eeg, seed=TEST_SEED)
    accuracy = image_accuracy(classifier, images, labels)
    assert accuracy >= 0.8, f"only {accuracy:.3f} of generated images show the intended state"
    # and not by always drawing one picture: every state is recognised somewhere
    assert set(classifier.predict(images)) == set(range(len(STATE_NAMES)))


def test_load_classifier_refuses_a_folder_without_one(tmp_path):
    with pytest.raises(CheckpointError, match="not a state classifier folder"):
        load_classifier(tmp_path)
    # truncated weights (an interrupted copy): a CheckpointError naming the file
    broken = tmp_path / "classifier"
    shutil.copytree(DEMO / "classifier", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:500])
    with pytest.raises(CheckpointError, match=f"{weights} is not a readable safetensors file"):
        load_classifier(broken)


#: Floors for the demo through the app: every thought, and all of them together.
STATE_FLOOR, OVERALL_FLOOR = 0.7, 0.85


def test_demo_through_a_live_session_with_default_settings_shows_each_thought():
    """What `dd-live demo` shows: the settings the command line builds (defaults + the model
    folder's dd_live.json), a real LiveSession on the synthetic headset, the app's own seed
    policy and trigger; the shipped classifier judges each image against the simulated thought
    (dd_live.verdict, the window's live verdict). Only the clock differs: the source is not
    paced by the wall clock and the session is stepped (training.demo.quality.live_accuracy,
    which the model card's figure comes from too)."""
    from dd_live.cli import _config_from_args, build_parser

    config = _config_from_args(build_parser().parse_args(["demo", "--model", "demo"]))
    assert config.window.mode == "latest" and not config.generator.fixed_seed  # the defaults
    result = live_accuracy(DEMO, source_seed=TEST_SEED, per_state=10)
    summary = ", ".join(f"{s} {a:.2f}" for s, a in result["per_state"].items())
    assert set(result["per_state"]) == set(STATE_NAMES) and result["n_judged"] == 80
    assert min(result["per_state"].values()) >= STATE_FLOOR, f"per thought: {summary}"
    assert result["accuracy"] >= OVERALL_FLOOR, f"overall {result['accuracy']:.3f} ({summary})"
    assert result["n_dropped"] == 0


# -- the demo model names its channels -----------------------------------------------------------
def test_demo_model_names_the_channels_its_windows_are_built_from(tmp_path, world):
    """dd_live.json lists the synthetic source's channel names in order (the rows of every
    training window, DemoWorld.windows), as the build's own writer writes them: rewriting the
    settings from the folder's quality.json gives the shipped file byte for byte."""
    from dd_live.decoding import read_model_settings
    from dd_live.sources import SyntheticSource
    from training.demo.build import rewrite_settings

    channels = read_model_settings(DEMO)["channels"]
    assert channels == list(world.ch_names) == list(SyntheticSource(16, 250.0).info.ch_names)
    assert len(channels) == world.n_channels
    for name in ("dd_live.json", "quality.json"):
        shutil.copy(DEMO / name, tmp_path / name)
    (tmp_path / "dd_live.json").unlink()
    rewrite_settings(tmp_path)
    assert (tmp_path / "dd_live.json").read_bytes() == (DEMO / "dd_live.json").read_bytes()


SPLINE = '[generator]\nchannel_method = "spline"\n'


def test_demo_with_spline_channel_mapping_starts_and_makes_images(tmp_path):
    """`[generator] channel_method = "spline"` with --model demo: the settings the command line
    builds, a real LiveSession on the synthetic headset (stepped, not paced by the wall clock):
    it maps the channels by name with splines and makes images."""
    from dd_live.cli import _config_from_args, build_parser
    from dd_live.session import LiveSession
    from dd_live.sources import SyntheticSource

    path = tmp_path / "spline.toml"
    path.write_text(SPLINE)
    config = _config_from_args(build_parser().parse_args(
        ["demo", "--model", "demo", "--config", str(path)]))
    assert config.generator.channel_method == "spline"
    session = LiveSession(config, source=SyntheticSource(16, 250.0, realtime=False, seed=4),
                          threaded=False)
    images = []
    session.callbacks.image.append(images.append)
    session.start()
    try:
        while len(images) < 3:
            session.step()
    finally:
        session.stop()
    assert session.preprocessor.mapper.method == "spline"
    assert [how for _, _, how in session.channel_map] == ["name"] * 16
    assert all(image.size == (64, 64) for result in images for image in result.images)


def test_dd_live_demo_with_spline_from_the_command_line(tmp_path):
    """`dd-live demo --headless --config spline.toml`, as a user starts it: it runs (before the
    demo model named its channels it stopped at start) and its summary counts images."""
    import re
    import subprocess
    import sys

    path = tmp_path / "spline.toml"
    path.write_text(SPLINE)
    proc = subprocess.run([sys.executable, "-m", "dd_live", "demo", "--headless", "--duration",
                           "4", "--config", str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n_images = re.search(r"\d+ samples, \d+ windows, (\d+) images", proc.stdout)  # the summary
    assert n_images and int(n_images.group(1)) > 0, proc.stdout
