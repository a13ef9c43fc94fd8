"""The embedding route end to end on CPU, with the documented commands in their order.

``dd-live calibrate --headless --speed 0`` with the simulated viewer (``synthetic?viewer=1``: a
synthetic person whose evoked response to each image is a fixed function of its colours and
layout) -> ``python -m training.decoder`` -> ``python -m training.evaluate --metric
retrieval,lowlevel`` -> ``dd-live run --headless --model OUT/model --record``, which shows and
records images with no further flags (retrieval from the model's gallery and the low-level
picture). Everything is real: the real LiveSession, the real synthetic viewer source, the
recorder's files read back, the real Qt window offscreen. The image embedder is the tiny one of
training (random weights, frozen; nothing downloads), so the images are ranked in its space, not
CLIP's: what is checked is that the chain runs and carries what it should, with figures above
chance.

The trial count is the smallest that still beats chance clearly here (the documented >= 300-trial
figure run is done by hand).
"""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from PIL import Image
from test_calibration import VIEWER, draw_images

from dd_live import cli
from dd_live.calibration import CalibrationConfig, calibrate
from dd_live.config import AppConfig
from dd_live.recording import read_events
from training import decoder as train_decoder
from training import evaluate

pytestmark = pytest.mark.usefixtures("one_torch_thread")

N_IMAGES = 40
N_TEST = 20
N_TRIALS = 180  # 20 training images x 5 + 20 test images x 4
LIVE_SECONDS = 3


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """One headless calibration session of the simulated viewer, shared by the tests."""
    tmp = tmp_path_factory.mktemp("calibration")
    images = draw_images(tmp / "img", N_IMAGES)
    config = AppConfig().replace(source={"spec": VIEWER}, record={"root": str(tmp / "runs")})
    run = calibrate(images, CalibrationConfig(test_images=N_TEST, test_repeats=4,
                                              n_trials=N_TRIALS, seed=0),
                    config, headless=True, speed=0)
    assert not run.aborted and len(run.rows) == N_TRIALS
    return run.folder


@pytest.fixture(scope="module")
def model_folder(calibration, tmp_path_factory):
    """``python -m training.decoder --data SESSION --output-dir OUT`` (ridge, for speed)."""
    out = tmp_path_factory.mktemp("personal")
    assert train_decoder.main(["--data", str(calibration), "--output-dir", str(out),
                               "--model", "ridge"]) == out / "model"
    return out / "model"


def image_events(folder):
    return [e for e in read_events(folder) if e["type"] == "image"]


def test_calibrate_train_evaluate_run_records_retrieval_and_lowlevel(calibration, model_folder,
                                                                     tmp_path, capsys):
    settings = json.loads((model_folder / "dd_live.json").read_text())
    assert settings["route"] == "embedding"
    # evaluation: retrieval among the held-out images and the low-level pictures, beside chance
    results = evaluate.main(["--model", str(model_folder), "--data", str(calibration),
                             "--metric", "retrieval,lowlevel", "--output-dir", str(tmp_path / "ev")])
    retrieval, lowlevel = results["retrieval"], results["lowlevel"]
    assert retrieval["n_way"] == N_TEST
    assert retrieval["top1"] > 1 / retrieval["n_way"], retrieval
    assert lowlevel["pixcorr"] > lowlevel["shuffled_pixcorr"], lowlevel

    # live: no further flags; the pictures are the nearest gallery images (retrieval), with the
    # low-level picture beside each, both recorded
    capsys.readouterr()
    assert cli.main(["run", "--headless", "--source", VIEWER, "--model", str(model_folder),
                     "--duration", str(LIVE_SECONDS), "--record", str(tmp_path / "live")]) == 0
    out = capsys.readouterr().out
    (live,) = (tmp_path / "live").iterdir()
    events = image_events(live)
    assert events, out
    assert f"{len(events)} images, " in out and f"images made: {len(events)} by retrieval" in out
    gallery = model_folder / "gallery"
    for event in events:
        assert event["renderer"] == "retrieval"
        assert "decoder" in event["timings"] and event["timings"]["decoder"] > 0
        assert len(event["matches"]) == 4 and event["seed"] is None
        scores = [score for _, score in event["matches"]]
        assert scores == sorted(scores, reverse=True)
        assert all(str(gallery) in path for path, _ in event["matches"])
        # the picture is the nearest gallery image itself
        with Image.open(live / event["images"][0]) as shown, \
                Image.open(event["matches"][0][0]) as nearest:
            np.testing.assert_array_equal(np.asarray(shown.convert("RGB")),
                                          np.asarray(nearest.convert("RGB")))
        # the low-level picture, beside the images (never among them)
        assert event["lowlevel"] == f"images/{event['index']:04d}_lowlevel.png"
        assert event["lowlevel"] not in event["images"]
        with Image.open(live / event["lowlevel"]) as picture:
            assert picture.mode == "RGB" and min(picture.size) >= 4
    # the session folder stays what its readers expect: one PNG per listed image + low-level
    listed = {p for e in events for p in e["images"]} | {e["lowlevel"] for e in events}
    assert {f"images/{p.name}" for p in (live / "images").iterdir()} == listed


def test_a_gallery_from_another_embedder_is_refused_with_one_line(model_folder, tmp_path, capsys):
    import shutil

    other = tmp_path / "model"
    shutil.copytree(model_folder, other)
    path = other / "gallery" / "embeddings.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    decoder_id = str(arrays["embedder"])
    arrays["embedder"] = np.array("ViT-B-32/openai")
    np.savez(path, **arrays)
    capsys.readouterr()
    assert cli.main(["run", "--headless", "--source", VIEWER, "--model", str(other),
                     "--duration", "1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dd-live: error:")
    assert decoder_id in lines[0] and "ViT-B-32/openai" in lines[0]


def test_calibrate_train_prints_the_command_that_runs_live(tmp_path, capsys):
    images = draw_images(tmp_path / "img", 24)
    capsys.readouterr()
    assert cli.main(["calibrate", "--source", VIEWER, "--images", str(images), "--headless",
                     "--speed", "0", "--trials", "100", "--test-images", "8", "--out",
                     str(tmp_path / "runs"), "--train", "--train-model", "ridge", "--train-out",
                     str(tmp_path / "me")]) == 0
    captured = capsys.readouterr()
    assert "personal model trained in" in captured.out
    assert "100%" in captured.err  # the progress bar reached its end
    command = captured.out.strip().splitlines()[-1].strip()
    assert command == shlex.join(["dd-live", "run", "--model", str(tmp_path / "me" / "model"),
                                  "--source", VIEWER])
    # the printed command runs live with the new model and makes images
    argv = shlex.split(command)[1:] + ["--headless", "--duration", "2", "--record",
                                       str(tmp_path / "live")]
    assert cli.main(argv) == 0
    (live,) = (tmp_path / "live").iterdir()
    assert image_events(live)


# -- rendering with a stock SD 1.5 + IP-Adapter (tiny stand-ins) ------------------------------
@pytest.fixture(scope="module")
def tiny_ip_adapter(model_folder, tmp_path_factory):
    """A tiny SD 1.5-shaped diffusers folder and tiny IP-Adapter weights for its UNet, random,
    sized for the model's embedding width (real weights cannot ship in tests; nothing downloads).
    Returns ``(base folder, IP-Adapter file, the model's embedder id)``."""
    from diffusers import UNet2DConditionModel

    from dd_live.decoders import EmbeddingModel
    from dd_live.generate.tiny import save_ip_adapter_state, save_tiny_sd15, tiny_ip_adapter_state

    tmp = tmp_path_factory.mktemp("sd")
    base = save_tiny_sd15(tmp / "sd15")
    unet = UNet2DConditionModel.from_pretrained(base / "unet")
    embedder = EmbeddingModel.load(model_folder).embedder
    weights = save_ip_adapter_state(tiny_ip_adapter_state(unet, image_embed_dim=embedder.dim),
                                    tmp / "ip-adapter.safetensors")
    return base, weights, embedder.id


def write_config(path, **generator):
    lines = ["[generator]"] + [f"{key} = {json.dumps(value)}" for key, value in generator.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_with_sd_and_ip_adapter_the_pictures_are_generated_from_the_embedding(
        model_folder, tiny_ip_adapter, tmp_path, capsys):
    base, weights, embedder_id = tiny_ip_adapter
    config = write_config(tmp_path / "ip.toml", ip_adapter_embedder=embedder_id)
    capsys.readouterr()
    assert cli.main(["run", "--headless", "--source", VIEWER, "--model", str(model_folder),
                     "--base", str(base), "--ip-adapter", str(weights), "--config", str(config),
                     "--steps", "2", "--duration", str(LIVE_SECONDS),
                     "--record", str(tmp_path / "live")]) == 0
    out = capsys.readouterr().out
    (live,) = (tmp_path / "live").iterdir()
    events = image_events(live)
    assert events and f"{len(events)} images, " in out
    assert f"images made: {len(events)} by ip-adapter" in out
    for event in events:
        assert event["renderer"] == "ip-adapter" and event["seed"] is not None
        assert {"decoder", "sample", "total"} <= set(event["timings"])
        assert len(event["matches"]) == 4  # the nearest gallery images beside the picture
        assert (live / event["lowlevel"]).is_file()
        with Image.open(live / event["images"][0]) as picture, \
                Image.open(event["matches"][0][0]) as nearest:
            assert picture.size != nearest.size or not np.array_equal(
                np.asarray(picture.convert("RGB")), np.asarray(nearest.convert("RGB")))


def test_an_ip_adapter_for_another_embedder_is_refused_with_one_line(
        model_folder, tiny_ip_adapter, tmp_path, capsys):
    base, weights, embedder_id = tiny_ip_adapter
    # default settings: IP-Adapter weights are taken as ip-adapter_sd15's (OpenCLIP ViT-H/14),
    # and the model folder does not override that; the decoder decodes into the tiny embedder:
    # two spaces
    capsys.readouterr()
    assert cli.main(["run", "--headless", "--source", VIEWER, "--model", str(model_folder),
                     "--base", str(base), "--ip-adapter", str(weights), "--steps", "2",
                     "--duration", "1"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("dd-live: error:")
    assert embedder_id in lines[0] and "ViT-H-14/laion2b_s32b_b79k" in lines[0]


def test_img2img_starts_the_renderer_from_the_decoded_low_level_latent(calibration,
                                                                        tiny_ip_adapter, tmp_path):
    """``img2img_strength`` > 0: the renderer starts from the window's decoded coarse VAE latent
    (a model trained with ``--vae``, the tiny SD's VAE standing in for SD 1.5's)."""
    from dd_live.config import GeneratorConfig
    from dd_live.decoding import EEGDecoder

    base, weights, embedder_id = tiny_ip_adapter
    folder = train_decoder.main(["--data", str(calibration), "--output-dir", str(tmp_path / "out"),
                                 "--model", "ridge", "--vae", str(base)])
    settings = dict(model=str(folder), base=str(base), ip_adapter=str(weights), steps=2,
                    ip_adapter_embedder=embedder_id, device="cpu", dtype="float32")
    decoder = EEGDecoder.from_config(GeneratorConfig(**settings, img2img_strength=0.6))
    plain = EEGDecoder.from_config(GeneratorConfig(**settings))
    eeg = np.random.default_rng(0).standard_normal((decoder.n_channels, decoder.n_times),
                                                   dtype=np.float32)
    low = decoder.model.lowlevel(eeg)
    assert low.latent is not None and low.latent.shape[0] == 4
    started = decoder(eeg, seed=5)
    assert started.renderer == "ip-adapter" and started.lowlevel is not None
    # the same as rendering that window's embedding from its latent by hand, and not the same as
    # rendering from noise
    by_hand = decoder.renderer(decoder.model.encode(eeg), 5, init_latent=low.latent, strength=0.6)
    np.testing.assert_array_equal(np.asarray(started.images[0]), np.asarray(by_hand.images[0]))
    from_noise = plain(eeg, seed=5)
    assert not np.array_equal(np.asarray(started.images[0]), np.asarray(from_noise.images[0]))


# -- the window -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])


def test_window_shows_picture_lowlevel_and_nearest_for_an_embedding_model(app, model_folder,
                                                                         tmp_path):
    from PySide6 import QtCore
    from test_gui import close_window, wait_until

    from dd_live.gui import MainWindow

    config = AppConfig().replace(source={"spec": VIEWER},
                                 generator={"model": str(model_folder)})
    settings = QtCore.QSettings(str(tmp_path / "dd-live.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(config, settings=settings)
    try:
        window.show()
        window.start_session()
        assert wait_until(lambda: window.phase != "starting", 60)
        assert window.phase == "running", window.banner.text()
        assert wait_until(lambda: len(window.gallery.results) >= 2, 60), window.banner.text()
        gallery = window.gallery
        newest = gallery.results[-1]
        gallery.select(newest.index)
        assert newest.renderer == "retrieval" and newest.lowlevel is not None
        # side by side: the picture, the low-level picture of the same window, the nearest
        assert gallery.image.pixmap() is not None and not gallery.image.pixmap().isNull()
        assert gallery.lowlevel.isVisible() and not gallery.lowlevel.pixmap().isNull()
        low = gallery.lowlevel.pixmap().toImage()
        centre = low.pixelColor(low.width() // 2, low.height() // 2)
        expected = newest.lowlevel.convert("RGB").getpixel(
            (newest.lowlevel.width // 2, newest.lowlevel.height // 2))
        assert np.abs(np.subtract((centre.red(), centre.green(), centre.blue()),
                                  expected)).max() <= 40
        strip = gallery.nearest
        assert strip.isVisible() and strip.shown == [(str(p), float(s))
                                                     for p, s in newest.matches]
        assert [score.text() for _, score in strip.cells[:4]] == [f"{s:.3f}"
                                                                  for _, s in newest.matches]
        assert "nearest gallery image to the decoded embedding" in gallery.details.text()
        # the latency label shows the decoder stage (window -> vector)
        window.refresh_status()
        assert " · decoder " in window.status.latency.text()
        assert "decoding the EEG" in window.status.latency.toolTip()
        gallery.clear()
        assert gallery.lowlevel.isHidden()
    finally:
        close_window(window)


def test_train_my_model_dialog_trains_off_the_qt_thread_then_runs_live(app, calibration,
                                                                       tmp_path):
    from test_gui import wait_until

    from dd_live.gui.training import PROGRESS_STEPS, TrainingDialog

    # the dialog's default (all decoders), as a person gets it: the torch decoders' epoch bars
    # move the progress bar as they go (ridge alone is done before its one bar is drawn)
    dialog = TrainingDialog(calibration, VIEWER, tmp_path / "me")
    seen = []
    dialog.bar.valueChanged.connect(seen.append)
    dialog.show()
    assert not dialog.run_button.isEnabled()
    dialog.train_button.click()
    assert dialog.training and not dialog.train_button.isEnabled()
    assert wait_until(lambda: dialog.model is not None or dialog.error is not None, 120)
    assert dialog.error is None, dialog.error
    assert dialog.bar.value() == PROGRESS_STEPS and len(set(seen)) >= 2  # it moved as it went
    assert dialog.run_button.isEnabled()
    assert "dd-live run --model" in dialog.message.text()
    dialog.run_button.click()
    assert dialog.chosen == tmp_path / "me" / "model"
    assert json.loads((dialog.chosen / "dd_live.json").read_text())["route"] == "embedding"
