"""Stages 2+3 (python -m training.finetune): real short runs on synthetic pairs, on CPU.

The UNet/VAE are tiny random diffusers models and CLIP is the tiny random open_clip model
shipped in training/assets (nothing downloads). The output folder is opened exactly as the
live app opens it.
"""

import json

import pytest
import torch

from dd_live import cli
from dd_live.errors import CheckpointError
from dd_live.generate import ImageGenerator
from dd_live.model import EEGConditioner, MaskedSignalModel, get_preset, load, save
from dd_live.recording import read_events
from training import finetune
from training.common import read_log
from training.models import ClipAlignLoss

TINY = ["--preset", "tiny", "--image-size", "16", "--synthetic-classes", "2", "--synthetic-per-class", "4",
        "--batch-size", "4"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_finetune_writes_a_model_folder_the_app_opens_and_resumes(tmp_path):
    run = tmp_path / "run"
    finetune.main([*TINY, "--epochs", "1", "--output-dir", str(run)])
    log = read_log(run)
    assert [r.get("vae_epoch") for r in log] == [0, None]  # the VAE alone first (from scratch), then all
    assert [r["epoch"] for r in log[1:]] == [0]
    assert "train_loss_vae" in log[0] and {"train_loss_noise", "train_loss_clip", "train_cosine"} <= set(log[1])
    for part in ("unet", "vae", "scheduler", "conditioner"):
        assert (run / "model" / part).is_dir()

    generator = ImageGenerator.from_pretrained(run / "model", num_inference_steps=2, device="cpu",
                                               dtype="float32").prepare()
    conditioner = load(run / "model" / "conditioner")
    assert isinstance(conditioner, EEGConditioner)
    with torch.no_grad():
        context = conditioner(torch.randn(2, 8, 64))["context"]  # [2, 77, 768]
    result = generator(context, seed=[1, 2])
    assert len(result.images) == 2 and result.images[0].size == (16, 16)

    # the live app runs it: `dd-live run --model <folder>` (headless), images land in the session
    assert cli.main(["run", "--headless", "--model", str(run / "model"), "--steps", "2",
                     "--duration", "3", "--record", str(tmp_path / "runs")]) == 0
    (session,) = (tmp_path / "runs").iterdir()
    images = [e for e in read_events(session) if e["type"] == "image"]
    assert images and (session / images[0]["images"][0]).is_file()

    finetune.main([*TINY, "--epochs", "2", "--resume", "--output-dir", str(run)])
    assert [r["epoch"] for r in read_log(run) if "epoch" in r] == [0, 1]
    assert json.loads((run / "model" / "train_state.json").read_text())["epoch"] == 1


def test_finetune_from_a_base_trains_only_cross_attention(tmp_path):
    base = ImageGenerator.tiny(seed=1, image_size=16).save_pretrained(tmp_path / "base")
    pretrained = MaskedSignalModel(get_preset("tiny", "masked_signal"))
    save(pretrained.encoder, tmp_path / "encoder")
    run = tmp_path / "run"
    finetune.main([*TINY, "--epochs", "1", "--base", str(base), "--encoder", str(tmp_path / "encoder"),
                   "--clip-loss", "infonce", "--lr", "1e-2", "--output-dir", str(run)])
    before = ImageGenerator.from_pretrained(base, device="cpu", dtype="float32")
    after = ImageGenerator.from_pretrained(run / "model", device="cpu", dtype="float32")
    unet_before, unet_after = before.unet.state_dict(), after.unet.state_dict()
    changed = {k for k in unet_before if not torch.equal(unet_before[k], unet_after[k])}
    assert changed and all("attn2" in k or "norm2" in k for k in changed)
    assert any("attn2.to_k" in k for k in changed)
    for key, value in before.vae.state_dict().items():
        assert torch.equal(value, after.vae.state_dict()[key]), key  # the VAE stays frozen
    with pytest.raises(CheckpointError, match="run without --resume first"):
        finetune.main([*TINY, "--resume", "--output-dir", str(tmp_path / "nothing")])


def test_clip_losses():
    target = torch.nn.functional.normalize(torch.randn(6, 16), dim=-1)
    for kind in ("cosine", "infonce"):
        loss = ClipAlignLoss(kind, temperature=0.1)
        aligned, random = loss(target * 3, target), loss(torch.randn(6, 16), target)
        assert aligned["cosine"] == pytest.approx(1.0)
        assert aligned["loss_clip"] < random["loss_clip"]
    assert ClipAlignLoss("cosine")(target, target)["loss_clip"] == pytest.approx(0.0, abs=1e-6)
