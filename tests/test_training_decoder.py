"""From a calibration session to a personal embedding-route model (``python -m training.decoder``)
and its evaluation (``python -m training.evaluate --metric retrieval,lowlevel``), on CPU.

The person is the simulated viewer (``synthetic?viewer=1``), whose evoked responses are a fixed
function of each image's colours and layout; the 200 images are drawn here; one 400-trial
session (20 test images shown 4 times each) is recorded once for the module. The image embedder
is the tiny open_clip model in training/assets with random weights (ViT-H/14's weights are not
on a test machine, and nothing downloads): the real default's fallback.
"""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_calibration import VIEWER, draw_images

from dd_live.calibration import CalibrationConfig, calibrate
from dd_live.config import AppConfig
from dd_live.decoders import EmbeddingModel, RidgeDecoder, is_embedding_model
from dd_live.decoders.conv import ConvDecoder
from training import decoder as training_decoder
from training import evaluate
from training.data.calibration import CalibrationPairs

N_IMAGES, N_TEST, N_TRIALS = 200, 20, 400


def record(folder, n_trials, seed=0, spec=VIEWER, n_images=N_IMAGES):
    images = draw_images(folder / "img", n_images)
    config = AppConfig().replace(source={"spec": spec}, record={"root": str(folder / "runs")})
    run = calibrate(images, CalibrationConfig(test_images=N_TEST, test_repeats=4, n_trials=n_trials, seed=seed),
                    config, headless=True, speed=0)
    return str(run.folder)


@pytest.fixture(scope="module")
def threads():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the one_torch_thread fixture, for the module's fixtures
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    return record(tmp_path_factory.mktemp("calibration"), N_TRIALS)


@pytest.fixture(scope="module")
def ridge_model(session, tmp_path_factory, threads):
    out = tmp_path_factory.mktemp("ridge")
    folder = training_decoder.main(["--data", session, "--output-dir", str(out), "--model", "ridge"])
    return folder


def test_ridge_model_folder_is_what_the_contract_says(ridge_model, session):
    assert ridge_model.name == "model" and is_embedding_model(ridge_model)
    settings = json.loads((ridge_model / "dd_live.json").read_text())
    assert settings["route"] == "embedding" and settings["decoder"] == "ridge"
    assert settings["channels"] == ["Fp1", "Fp2", "C3", "C4", "P7", "P8", "O1", "O2"]
    assert settings["embedder"]["name"] == "dd-live-tiny-clip" and settings["embedder"]["dim"] == 768
    assert settings["n_times"] == 112  # the session's 0.44 s window at 250 Hz, to a multiple of 8
    model = EmbeddingModel.load(ridge_model)
    assert (model.n_channels, model.n_times, model.decoder_name) == (8, 112, "ridge")
    assert model.embedder.id == settings["embedder"]["id"] == model.gallery.embedder_id
    assert len(model.gallery) == N_IMAGES  # every image the session showed, copied
    assert all(p.parent == ridge_model / "gallery" and p.is_file() for p in model.gallery.paths)
    card = (ridge_model / "README.md").read_text()
    assert "| ridge |" in card and "PixCorr" in card


def test_encode_gives_the_training_prediction_of_the_live_window(ridge_model, session):
    model = EmbeddingModel.load(ridge_model)
    # the windows training used: the live app's own cutting and preprocessing of the recording
    trials = CalibrationPairs(session, "test", model.n_channels, model.n_times)
    assert trials.eeg.dtype == np.float32 and trials.eeg.shape[1:] == (8, 112)
    trained = RidgeDecoder.load(ridge_model / "decoder")
    batch = training_decoder.predict(trained, trials.eeg)  # [n, 768], as training scored it
    single = np.stack([model.encode(window) for window in trials.eeg])
    assert single.dtype == np.float32 and single.shape == (len(trials), 768)
    np.testing.assert_allclose(single, batch, rtol=1e-5, atol=1e-5)
    low = model.lowlevel(trials.eeg[0])
    assert low.picture.mode == "RGB" and low.picture.size == (128, 128) and low.latent is None
    nearest = model.gallery.nearest(single[0], 4)
    scores = [s for _, s in nearest]
    assert len(nearest) == 4 and scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1


def test_the_ridge_model_runs_with_numpy_alone(ridge_model):
    """Run time needs no torch and no scikit-learn for a ridge model (a fresh interpreter)."""
    code = ("import sys, numpy as np; from dd_live.decoders import EmbeddingModel; "
            f"m = EmbeddingModel.load({str(ridge_model)!r}); "
            "v = m.encode(np.zeros((m.n_channels, m.n_times), np.float32)); m.lowlevel(np.zeros((8, 112), np.float32)); "
            "m.gallery.nearest(v, 3); "
            "print(v.shape, sorted(k for k in ('torch', 'sklearn') if k in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "(768,) []"


def test_ridge_identifies_held_out_images_and_the_low_level_picture_beats_shuffled(ridge_model, session, tmp_path):
    results = evaluate.main(["--model", str(ridge_model), "--data", session, "--metric", "retrieval,lowlevel",
                             "--output-dir", str(tmp_path / "ev")])
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved == json.loads(json.dumps(results))
    retrieval, two_way, lowlevel = saved["retrieval"], saved["two_way"], saved["lowlevel"]
    assert retrieval["n_way"] == N_TEST and retrieval["n_trials"] == N_TEST  # repeats averaged
    assert retrieval["chance_top1"] == 1 / N_TEST
    single = retrieval["single_trial"]
    assert single["n_trials"] > N_TEST
    # n-way top-1 with n = 20: a clear margin over chance (0.05) and over shuffled labels
    assert single["top1"] >= 3 * retrieval["chance_top1"], retrieval
    assert retrieval["top1"] >= 4 * retrieval["chance_top1"], retrieval
    assert retrieval["top1"] > retrieval["shuffled_top1"] + 0.15
    assert two_way["accuracy"] > 0.75 and two_way["shuffled"] < 0.65, two_way
    assert two_way["single_trial"]["accuracy"] > two_way["single_trial"]["shuffled"] + 0.15
    for view in ("single_trial", "averaged"):
        assert lowlevel[view]["pixcorr"] > lowlevel[view]["shuffled_pixcorr"] + 0.25, lowlevel
        assert lowlevel[view]["ssim"] > lowlevel[view]["shuffled_ssim"], lowlevel
    assert set(lowlevel) >= {"pixcorr", "ssim", "shuffled_pixcorr", "shuffled_ssim"}


def test_all_decoders_are_tried_and_the_best_on_validation_is_kept(session, tmp_path, one_torch_thread):
    out = tmp_path / "all"
    folder = training_decoder.main(["--data", session, "--output-dir", str(out), "--epochs", "3"])
    results = json.loads((out / "results.json").read_text())
    assert set(results["decoders"]) == {"ridge", "conv", "dreamdiffusion"}
    best = max(results["decoders"], key=lambda n: (results["decoders"][n]["val"]["two_way"],
                                                   results["decoders"][n]["val"]["top1"]))
    assert results["kept"] == best == json.loads((folder / "dd_live.json").read_text())["decoder"]
    assert results["decoders"]["conv"]["parameters"] <= 2_000_000
    for figures in results["decoders"].values():
        assert figures["test"]["n_way"] == N_TEST and figures["train_seconds"] > 0
    card = (folder / "README.md").read_text()
    for name in ("ridge", "conv", "dreamdiffusion"):
        assert f"| {name} |" in card
    model = EmbeddingModel.load(folder)
    assert model.decoder_name == best
    assert model.encode(np.zeros((8, 112), np.float32)).shape == (768,)


def test_a_group_backbone_then_a_new_person_with_the_backbone_frozen(session, tmp_path, one_torch_thread):
    """ENIGMA's protocol: two people with different montages train one conv backbone (an
    alignment layer each); a third person's model is fitted on it with the backbone frozen."""
    other = record(tmp_path / "other", 200, seed=1, spec="synthetic?viewer=1&n_channels=6", n_images=60)
    group = training_decoder.main(["--data", session, other, "--output-dir", str(tmp_path / "group"),
                                   "--model", "conv", "--epochs", "2"])
    base = ConvDecoder.load(group / "decoder")
    assert base.config.subject_channels == (8, 6) and len(base.alignment) == 2
    new = record(tmp_path / "new", 200, seed=2, n_images=60)
    person = training_decoder.main(["--data", new, "--output-dir", str(tmp_path / "person"),
                                    "--init", str(group), "--epochs", "2"])
    fitted = ConvDecoder.load(person / "decoder")
    assert fitted.config.subject_channels == (8,)
    backbone, start = fitted.backbone.state_dict(), base.backbone.state_dict()
    assert backbone.keys() == start.keys()
    for key in backbone:  # weights and normalisation statistics unchanged
        assert torch.equal(backbone[key], start[key]), key
    projector = fitted.projector.state_dict()
    assert any(not torch.equal(projector[k], base.projector.state_dict()[k]) for k in projector)
    assert json.loads((person / "dd_live.json").read_text())["embedder"] == \
        json.loads((group / "dd_live.json").read_text())["embedder"]


def test_the_default_embedder_falls_back_to_the_tiny_one_with_one_warning(caplog, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with caplog.at_level(logging.WARNING, logger="training.decoder"):
        embedder = training_decoder.resolve_embedder(None, None, seed=0)
    assert embedder.spec.name == "dd-live-tiny-clip" and embedder.weights is None
    (line,) = [r.getMessage() for r in caplog.records if r.name == "training.decoder"]
    assert "ViT-H-14" in line and "IP-Adapter" in line and "huggingface-cli download" in line


def test_vit_h_weights_in_the_hub_cache_are_found_offline(monkeypatch, tmp_path):
    """The hub cache's own layout (refs/main -> snapshots/<rev>/file), with a stand-in file:
    found by name, not opened, nothing downloaded."""
    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--laion--CLIP-ViT-H-14-laion2B-s32B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "open_clip_model.safetensors").write_bytes(b"stand-in")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    embedder = training_decoder.resolve_embedder(None, None, seed=0)
    assert embedder.spec.id == "ViT-H-14/laion2b_s32b_b79k" and embedder.spec.dim == 1024
    assert embedder.weights.endswith("open_clip_model.safetensors")
    # a file given by path keeps the tag of the hub repository it sits in
    named = training_decoder.resolve_embedder("ViT-H-14", embedder.weights, seed=0)
    assert named.spec.id == "ViT-H-14/laion2b_s32b_b79k"


def test_things_eeg2_subjects_train_a_model_whose_gallery_is_the_test_images(tmp_path):
    from test_training_things_eeg2 import write_things

    root = write_things(tmp_path / "things")
    folder = training_decoder.main(["--data", f"things-eeg2:{root}", "--subject", "1", "--model", "ridge",
                                    "--output-dir", str(tmp_path / "out")])
    model = EmbeddingModel.load(folder)
    assert (model.n_channels, model.n_times) == (17, 48) and model.ch_names[0] == "O0"
    assert len(model.gallery) == 4  # the 4 test images, not the training set
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["decoders"]["ridge"]["test"]["n_way"] == 4
    with pytest.raises(Exception, match="--subject"):
        training_decoder.main(["--data", f"things-eeg2:{root}", "--output-dir", str(tmp_path / "o2")])


def test_a_vae_gives_the_low_level_head_a_coarse_latent(tmp_path, one_torch_thread):
    """``--vae``: the head also predicts the image's VAE latent pooled to 4 x 4, the img2img
    start (a tiny random diffusers VAE stands in for SD's, which is not on a test machine)."""
    from diffusers import AutoencoderKL

    from dd_live.generate.tiny import tiny_vae_config

    torch.manual_seed(0)
    AutoencoderKL(**tiny_vae_config(32)).save_pretrained(tmp_path / "sd" / "vae")
    small = record(tmp_path / "small", 160, n_images=40)
    folder = training_decoder.main(["--data", small, "--output-dir", str(tmp_path / "out"), "--model", "ridge",
                                    "--vae", str(tmp_path / "sd")])
    lowlevel = json.loads((folder / "lowlevel" / "config.json").read_text())
    assert lowlevel["kind"] == "vae" and lowlevel["shape"] == [4, 4, 4]
    assert lowlevel["config"]["scaling_factor"] == pytest.approx(0.18215)
    model = EmbeddingModel.load(folder)
    low = model.lowlevel(CalibrationPairs(small, "test", 8, 112).eeg[0])
    assert low.latent.shape == (4, 4, 4) and low.latent.dtype == np.float32 and np.isfinite(low.latent).all()
    assert low.picture.size == (128, 128)
    with pytest.raises(Exception, match="--vae"):
        training_decoder.main(["--data", small, "--output-dir", str(tmp_path / "o2"), "--model", "ridge",
                               "--vae", str(tmp_path / "missing")])


def test_the_dreamdiffusion_decoder_starts_from_a_pretrained_encoder(session, tmp_path, one_torch_thread):
    """``--init-encoder demo``: the packaged demo model's encoder (16 ch x 128) with a channel
    map from the session's 8 channels; windows take the encoder's length."""
    from dd_live.assets import demo_model_dir
    from dd_live.decoders.dreamdiffusion import DreamDiffusionDecoder
    from dd_live.model import load

    folder = training_decoder.main(["--data", session, "--output-dir", str(tmp_path / "out"), "--model",
                                    "dreamdiffusion", "--init-encoder", "demo", "--epochs", "1"])
    decoder = DreamDiffusionDecoder.load(folder / "decoder")
    demo = load(demo_model_dir() / "conditioner").encoder
    assert decoder.encoder_config == demo.config and decoder.alignment.in_features == 8
    assert json.loads((folder / "dd_live.json").read_text())["n_times"] == demo.config.n_times == 128
    model = EmbeddingModel.load(folder)
    assert model.encode(np.zeros((8, 128), np.float32)).shape == (768,)
