"""The command line's generation settings: ``--steps 1`` end to end, ``--preset cpu|gpu``."""

import json

import pytest

from dd_live import cli
from dd_live.cli import main
from dd_live.config import PRESETS, ConfigError, GeneratorConfig, apply_preset
from dd_live.recording import read_events

SMALL_SYNTHETIC = "synthetic?n_channels=4&sfreq=250"


def test_one_step_sampling_runs_end_to_end_and_records_its_images(tmp_path, capsys):
    assert main(["run", "--headless", "--source", SMALL_SYNTHETIC, "--model", "tiny", "--scheduler", "lcm",
                 "--steps", "1", "--duration", "2", "--record", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    images = [e for e in read_events(folder) if e["type"] == "image"]
    assert images and len(list((folder / "images").glob("*.png"))) == len(images)
    config = (folder / "config.toml").read_text()
    assert 'scheduler = "lcm"' in config and "steps = 1" in config


def _config(argv, tmp_path=None):
    return cli._config_from_args(cli.build_parser().parse_args(["run", *argv]))


def test_preset_fills_only_what_nobody_set(tmp_path):
    cpu = _config(["--model", "tiny", "--preset", "cpu"]).generator
    assert (cpu.image_size, cpu.steps, cpu.tiny_decoder) == (256, 4, True)
    mine = _config(["--model", "tiny", "--preset", "cpu", "--steps", "20"]).generator
    assert mine.steps == 20 and mine.image_size == 256  # the command line wins, even at the default
    model = tmp_path / "model"
    model.mkdir()
    (model / "dd_live.json").write_text(json.dumps({"generator": {"preset": "cpu", "steps": 2}}))
    recommended = _config(["--model", str(model)]).generator
    assert (recommended.preset, recommended.steps, recommended.image_size) == ("cpu", 2, 256)
    gpu = _config(["--model", str(model), "--preset", "gpu"]).generator
    assert gpu.image_size is None and gpu.steps == 2 and gpu.cuda_graphs


def test_preset_values_and_bad_names():
    assert set(PRESETS) == {"cpu", "gpu", "release"}  # release: tests/test_release_live.py
    assert apply_preset(GeneratorConfig()) == GeneratorConfig()
    with pytest.raises(ConfigError, match="preset must be one of"):
        GeneratorConfig(preset="laptop")
