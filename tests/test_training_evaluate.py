"""Evaluation (python -m training.evaluate) and the learning check of fine-tuning.

The classifier is the tiny colour classifier of training.metrics (a stand-in for the ImageNet
classifier, which would need downloaded weights); the rest is the real pipeline.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from dd_live.errors import ConfigError
from dd_live.generate.tiny import tiny_unet_config
from training import evaluate, finetune
from training.common import read_log
from training.data import SyntheticPairs
from training.metrics import ColourClassifier, n_way_top_k

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_n_way_top_k_follows_the_reference_definition():
    rng = np.random.default_rng(0)
    scores = np.arange(10.0)  # class 9 scores highest, class 0 lowest
    assert n_way_top_k(scores, 9, n_way=5, trials=50, top_k=1, rng=rng) == 1.0
    assert n_way_top_k(scores, 0, n_way=5, trials=50, top_k=1, rng=rng) == 0.0
    assert n_way_top_k(scores, 0, n_way=5, trials=50, top_k=4, rng=rng) == 0.0
    assert n_way_top_k(scores, 1, n_way=2, trials=50, top_k=1, rng=rng) == pytest.approx(1 / 9, abs=0.1)
    random = [n_way_top_k(rng.random(50), 3, n_way=10, trials=20, top_k=1, rng=rng) for _ in range(200)]
    assert np.mean(random) == pytest.approx(0.1, abs=0.03)  # chance is 1 / n_way
    with pytest.raises(ConfigError, match="n_way"):
        n_way_top_k(scores, 0, n_way=11, trials=1, top_k=1, rng=rng)


def test_colour_classifier_recognises_the_synthetic_classes():
    pairs = SyntheticPairs(n_per_class=2, n_channels=8, n_times=64, image_size=32)
    images = torch.stack([(pairs[i]["image"] + 1) / 2 for i in range(len(pairs))])  # [16, 3, 32, 32] in [0, 1]
    assert ColourClassifier()(images).argmax(1).tolist() == pairs.labels


def test_finetuning_learns_and_evaluation_beats_chance(tmp_path):
    """Train from scratch on 4 synthetic classes, then evaluate 4-way on the held-out split
    (other EEG streams and other images than training saw)."""
    unet_config = {**tiny_unet_config(16), "block_out_channels": [16, 32], "norm_num_groups": 8}
    (tmp_path / "unet.json").write_text(json.dumps(unet_config))
    run = tmp_path / "run"
    finetune.main(["--preset", "tiny", "--image-size", "16", "--synthetic-classes", "4", "--synthetic-per-class",
                   "4", "--synthetic-background", "0.2", "--batch-size", "8", "--lr", "3e-3", "--epochs", "200",
                   "--vae-epochs", "60", "--save-every", "200", "--unet-config", str(tmp_path / "unet.json"),
                   "--clip-loss", "infonce", "--clip-weight", "0.1", "--output-dir", str(run)])
    log = [record for record in read_log(run) if "epoch" in record]
    assert log[-1]["train_cosine"] > log[0]["train_cosine"] + 0.05  # EEG vectors move towards their images
    assert log[-1]["train_loss_clip"] < 0.8 * log[0]["train_loss_clip"]
    # the diffusion objective itself: noise prediction improves (mean of the last 10 epochs vs
    # the first 10, so one noisy epoch cannot decide it)
    noise = [record["train_loss_noise"] for record in log]
    assert np.mean(noise[-10:]) < 0.8 * np.mean(noise[:10]), (noise[:10], noise[-10:])
    out = tmp_path / "eval"
    results = evaluate.main(["--model", str(run / "model"), "--output-dir", str(out), "--split", "test",
                             "--samples", "2", "--n-way", "4", "--trials", "20", "--classifier", "tiny",
                             "--scheduler", "ddim", "--num-inference-steps", "10"])
    assert json.loads((out / "results.json").read_text())["n_way_accuracy"] == results["n_way_accuracy"]
    assert results["n_eeg"] == 16 and results["chance"] == 0.25
    assert results["n_way_accuracy"] >= 2 * results["chance"]  # measured 0.79 (held out)
    assert results["n_way_accuracy"] <= results["n_way_accuracy_max"] <= 1
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (16 * 3, 16 * 8)  # ground truth + 2 samples, 8 rows
