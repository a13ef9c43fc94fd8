"""From a calibration session to a personal model, on CPU: the documented command forms.

The person is the simulated viewer (``synthetic?viewer=1``), whose evoked responses are a fixed
function of each image's colours and layout; the images are drawn here. The image embedder is
the tiny open_clip model shipped in training/assets, randomly initialised and frozen (its
weights are saved in the model folder so evaluation embeds the held-out images alike); nothing
downloads.
"""

import json

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from test_calibration import VIEWER, draw_images

from dd_live import cli
from dd_live.calibration import CalibrationConfig, calibrate
from dd_live.config import AppConfig
from dd_live.generate import ImageGenerator
from dd_live.model import EEGConditioner, get_preset, load
from dd_live.recording import read_events
from training import evaluate, finetune, pretrain
from training.common import read_log
from training.finetune import build_time_conditioner
from training.models import (
    SD_NOISE_SCHEDULE,
    AdaptedConditioner,
    ChannelAdapter,
    ClipAlignLoss,
    EEGDiffusion,
    fold_channel_adapter,
    scratch_unet_vae,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_calibration_to_personal_model_to_retrieval_beats_chance(tmp_path):
    images = draw_images(tmp_path / "img", 200)
    config = AppConfig().replace(source={"spec": VIEWER}, record={"root": str(tmp_path / "runs")})
    # 180 training images, 20 held-out test images shown 4 times each; 780 rsvp trials (2.6 min)
    run = calibrate(images, CalibrationConfig(test_images=20, test_repeats=4, n_trials=780, seed=0),
                    config, headless=True, speed=0)
    session = str(run.folder)

    out = tmp_path / "out"
    finetune.main(["--preset", "tiny", "--data", session, "--output-dir", str(out),
                   "--image-size", "16", "--epochs", "1", "--vae-epochs", "0", "--batch-size", "32"])
    log = read_log(out)
    assert [r["align_epoch"] for r in log if "align_epoch" in r] == list(range(20))
    assert [r["epoch"] for r in log if "epoch" in r] == [0]
    # the adapter is folded in: the saved conditioner reads the session's 8 channels directly
    conditioner = load(out / "model" / "conditioner")
    assert isinstance(conditioner, EEGConditioner) and conditioner.config.encoder.n_channels == 8
    generator = ImageGenerator.from_pretrained(out / "model", num_inference_steps=2, device="cpu",
                                               dtype="float32")
    assert generator.time_cond is not None and generator.unet.config.class_embed_type == "identity"

    results = evaluate.main(["--model", str(out / "model"), "--data", session, "--metric", "retrieval",
                             "--output-dir", str(tmp_path / "ev")])
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    retrieval = saved["retrieval"]
    assert retrieval == results["retrieval"]
    assert retrieval["n_way"] == 20 and retrieval["n_trials"] == 20
    chance = 1 / retrieval["n_way"]
    assert retrieval["top1"] >= 3 * chance, retrieval
    assert retrieval["top5"] >= retrieval["top1"]
    assert (tmp_path / "ev" / "retrieval_matrix.png").stat().st_size > 1000

    # live with the personal model: generated images, and beside them the nearest calibration
    # images with their scores, by default (the model folder carries them and names its image
    # embedder and weights)
    assert len(list((out / "model" / "gallery").iterdir())) == 200
    assert cli.main(["run", "--headless", "--model", str(out / "model"), "--source", VIEWER,
                     "--steps", "2", "--duration", "2", "--record", str(tmp_path / "live")]) == 0
    (live,) = (tmp_path / "live").iterdir()
    results = [e for e in read_events(live) if e["type"] == "image"]
    assert results and all(e["seed"] is not None for e in results)  # generated, not retrieved
    for event in results:
        assert len(event["matches"]) == 4 and str(out / "model" / "gallery") in event["matches"][0][0]
        scores = [score for _, score in event["matches"]]
        assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1


def test_time_conditioning_receives_gradients_and_the_adapter_folds_exactly():
    torch.manual_seed(0)
    unet, vae = scratch_unet_vae("tiny", 16, time_conditioning=True)
    inner = EEGConditioner(get_preset("tiny", "conditioner"))
    conditioner = AdaptedConditioner(ChannelAdapter(5, 8), inner)
    time_cond = build_time_conditioner(unet, conditioner)
    model = EEGDiffusion(conditioner, unet, vae, DDPMScheduler.from_config(SD_NOISE_SCHEDULE),
                         ClipAlignLoss("infonce+cosine"), 1.0, time_cond=time_cond)
    eeg, image = torch.randn(4, 5, 64), torch.rand(4, 3, 16, 16) * 2 - 1
    out = model(eeg, image, torch.nn.functional.normalize(torch.randn(4, 768), dim=-1))
    out["loss"].backward()
    for name, param in time_cond.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert conditioner.adapter.proj.weight.grad.abs().sum() > 0
    # folding the adapter into the patch embedding changes nothing the model computes
    with torch.no_grad():
        conditioner.adapter.proj.weight.add_(0.1 * torch.randn_like(conditioner.adapter.proj.weight))
        conditioner.eval()
        folded = fold_channel_adapter(inner, conditioner.adapter).eval()
        expected, got = conditioner(eeg), folded(eeg)
    assert folded.config.encoder.n_channels == 5
    for key in ("context", "clip"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), rtol=1e-4, atol=1e-5)


def test_pretrain_reads_a_folder_of_calibration_sessions(tmp_path):
    images = draw_images(tmp_path / "img", 6)
    config = AppConfig().replace(source={"spec": VIEWER}, record={"root": str(tmp_path / "runs")})
    for seed in (0, 1):
        calibrate(images, CalibrationConfig(n_trials=20, test_images=1, seed=seed), config,
                  headless=True, speed=0)
    out = tmp_path / "pre"
    pretrain.main(["--preset", "tiny", "--data", str(tmp_path / "runs"), "--output-dir", str(out),
                   "--epochs", "1"])
    manifest = json.loads((out / "corpus" / "manifest.json").read_text())
    assert len(manifest["parts"]) == 2 and all(p["n_windows"] > 0 for p in manifest["parts"])
    assert isinstance(load(out / "encoder"), torch.nn.Module)
