"""The DreamDiffusion release live: its generation checkpoint as `--model`, the ImageNet-EEG file
replayed as a source, the seen image beside each generated one.

Both files are written here in the release's layouts at tiny sizes (128 EEG channels, a few
items of ~500 samples; an EEG encoder of width 32 and a two-level UNet/VAE), then go through
the real command line, LiveSession, recorder and window. Nothing is mocked.
"""

import csv
import dataclasses
import json
import os
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dd_live import cli
from dd_live.config import AppConfig
from dd_live.decoding import EEGDecoder, conditioner_dtype, place_conditioner
from dd_live.generate import ImageGenerator
from dd_live.model import import_reference
from dd_live.recording import read_events
from dd_live.session import GeneratedImage, LiveSession
from dd_live.sources import ReplaySource
from dd_live.sources.readers import read_recording
from dd_live.stream.preprocess import resample_window, standardize
from tests.test_generate_loading import generation_state, write_configs
from tests.test_model_reference import write_release_file

N_CHANNELS, PATCH, N_TOKENS, DIM, DEPTH = 128, 4, 8, 32, 1
N_TIMES = N_TOKENS * PATCH  # the tiny encoder's window: 440 samples are resampled to 32
IMAGE_SIZE = 32
COND = "cond_stage_model."
SYNSETS = ["n02389026", "n03773504"]
IMAGES = ["n02389026_3070", "n03773504_1234", "n02389026_11", "n03773504_77", "n02389026_5"]
# (image, label, subject, n_times) per item, as in the release's file
ITEMS = [(0, 0, 4, 500), (1, 1, 4, 480), (2, 0, 1, 500), (3, 1, 4, 520), (4, 0, 4, 440),
         (0, 0, 4, 610), (1, 1, 4, 500)]
COLOURS = {name: (40 * k % 256, 200 - 30 * k, 60 + 35 * k) for k, name in enumerate(IMAGES)}


# -- the release's files, tiny -------------------------------------------------------------------
def _eeg_side(seed: int = 7) -> dict[str, torch.Tensor]:
    """``cond_stage_model.*`` of a generation checkpoint: encoder, mappers, CLIP head."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"mae.cls_token": (1, 1, DIM), "mae.mask_token": (1, 1, DIM),
              "mae.pos_embed": (1, N_TOKENS + 1, DIM),
              "mae.patch_embed.proj.weight": (DIM, N_CHANNELS, PATCH),
              "mae.patch_embed.proj.bias": (DIM,), "mae.norm.weight": (DIM,),
              "mae.norm.bias": (DIM,),
              "channel_mapper.0.weight": (N_TOKENS // 2, N_TOKENS, 1),
              "channel_mapper.0.bias": (N_TOKENS // 2,),
              "channel_mapper.1.weight": (77, N_TOKENS // 2, 1), "channel_mapper.1.bias": (77,),
              "dim_mapper.weight": (768, DIM), "dim_mapper.bias": (768,),
              "mapping.maxpool.weight": (1, N_TOKENS, 1), "mapping.maxpool.bias": (1,),
              "mapping.fc.weight": (768, DIM), "mapping.fc.bias": (768,)}
    for i in range(DEPTH):
        for name, shape in {"norm1.weight": (DIM,), "norm1.bias": (DIM,),
                            "attn.qkv.weight": (3 * DIM, DIM), "attn.qkv.bias": (3 * DIM,),
                            "attn.proj.weight": (DIM, DIM), "attn.proj.bias": (DIM,),
                            "norm2.weight": (DIM,), "norm2.bias": (DIM,),
                            "mlp.fc1.weight": (DIM, DIM), "mlp.fc1.bias": (DIM,),
                            "mlp.fc2.weight": (DIM, DIM), "mlp.fc2.bias": (DIM,)}.items():
            shapes[f"mae.blocks.{i}.{name}"] = shape
    return {COND + k: torch.randn(s, generator=g) * 0.3 for k, s in shapes.items()}


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> tuple[Path, Path]:
    """(generation checkpoint, component configs): the release's layout, pickled config class
    included, with a UNet that takes the time-embedding conditioning."""
    folder = tmp_path_factory.mktemp("release")
    gen = ImageGenerator.tiny(seed=3, image_size=IMAGE_SIZE, time_conditioning=True).prepare()
    state = {**_eeg_side(), **generation_state(gen)}
    state.update({f"model.diffusion_model.time_embed_condtion.{k.removeprefix('layers.')}":
                  v.clone() for k, v in gen.time_cond.state_dict().items()})
    state.update({"image_embedder.transformer.post_layernorm.weight": torch.ones(4),
                  "betas": gen.scheduler.betas.clone(),
                  "alphas_cumprod": gen.scheduler.alphas_cumprod.clone()})
    path = write_release_file(folder / "dreamdiffusion.pth",
                              {"model_state_dict": state, "state": torch.get_rng_state()},
                              "Config_Generative_Model", global_pool=False, lr=5.3e-5)
    return path, write_configs(gen, folder / "configs", drop_class_embed=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict:
    """An ImageNet-EEG file (``eeg_5_95_std.pth`` layout), its splits file and image folder."""
    folder = tmp_path_factory.mktemp("imagenet_eeg")
    g = torch.Generator().manual_seed(11)
    dataset = [{"eeg": torch.randn(N_CHANNELS, n, generator=g), "image": image, "label": label,
                "subject": subject} for image, label, subject, n in ITEMS]
    path = folder / "eeg_5_95_std.pth"
    torch.save({"dataset": dataset, "labels": SYNSETS, "images": IMAGES}, path)
    # indices into subject 4's items [0, 1, 3, 4, 5, 6]; "test": items 3 (520), 5 (610), 6
    splits = folder / "block_splits_by_image_single.pth"
    torch.save({"splits": [{"train": [1, 3], "val": [0], "test": [2, 4, 5]}]}, splits)
    images = folder / "imagenet"
    for name in IMAGES:
        (images / name.split("_")[0]).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (48, 40), COLOURS[name]).save(images / name.split("_")[0] / f"{name}.JPEG")
    return {"path": path, "splits": splits, "images": images, "dataset": dataset}


def _convert(data: dict, out: Path, *extra: str) -> int:
    return cli.main(["convert", str(data["path"]), str(out), *extra])


# -- the data set as a session folder ------------------------------------------------------------
def test_convert_lays_the_items_end_to_end_with_an_image_marker_at_each(data, tmp_path):
    out = tmp_path / "subject4"
    assert _convert(data, out, "--subject", "4", "--images", str(data["images"])) == 0
    kept = [i for i, (_, _, subject, n) in enumerate(ITEMS) if subject == 4 and n >= 460]
    assert kept == [0, 1, 3, 5, 6]  # subject 1's item and the 440-sample item are left out
    recording = read_recording(out)
    assert recording.sfreq == 1000.0 and recording.data.shape[0] == N_CHANNELS
    onsets = np.cumsum([0] + [ITEMS[i][3] for i in kept])
    assert recording.n_times == onsets[-1]
    assert [(round(onset * 1000), text) for onset, _, text in recording.annotations] == [
        (int(onsets[k]), f"image:{IMAGES[ITEMS[i][0]]}") for k, i in enumerate(kept)]
    laid = np.concatenate([data["dataset"][i]["eeg"].numpy() for i in kept], axis=1)
    np.testing.assert_allclose(recording.data / 1e-5, laid, rtol=1e-6, atol=1e-5)
    config = AppConfig.from_toml(out / "config.toml")
    assert (config.window.mode, config.window.offset, config.window.length) == ("marker", 0.02, 0.44)
    assert not config.filter.enabled and config.quality.mode == "off"
    assert Path(config.window.marker_images) == data["images"].resolve()
    assert "generator" not in tomllib.loads((out / "config.toml").read_text())  # the user's choice


def test_a_split_keeps_the_release_items_of_that_split(data, tmp_path):
    out = tmp_path / "test_split"
    assert _convert(data, out, "--subject", "4", "--split", "test", "--splits",
                    str(data["splits"])) == 0
    info = json.loads((out / "imagenet_eeg.json").read_text())
    # test indices 2, 4, 5 of subject 4's items -> items 3, 5, 6; item 5 (610 samples) is
    # outside the release splitter's 450-600
    assert [row["item"] for row in info["items"]] == [3, 6]
    assert [text for _, _, text in read_recording(out).annotations] == [
        f"image:{IMAGES[3]}", f"image:{IMAGES[1]}"]


def test_a_legacy_format_file_converts_alike(data, tmp_path):
    """The 2017 data file predates torch's zip format: read weights-only without memory-mapping."""
    legacy = tmp_path / "eeg_5_95_std.pth"
    torch.save({"dataset": data["dataset"], "labels": SYNSETS, "images": IMAGES}, legacy,
               _use_new_zipfile_serialization=False)
    assert cli.main(["convert", str(legacy), str(tmp_path / "out"), "--subject", "1"]) == 0
    recording = read_recording(tmp_path / "out")
    np.testing.assert_allclose(recording.data / 1e-5, data["dataset"][2]["eeg"].numpy(),
                               rtol=1e-6, atol=1e-5)
    assert [text for _, _, text in recording.annotations] == [f"image:{IMAGES[2]}"]


def test_convert_mistakes_are_one_line_errors(data, tmp_path, capsys):
    # subject 4's splits for subject 1 (one item)
    assert _convert(data, tmp_path / "a", "--subject", "1", "--split", "test", "--splits",
                    str(data["splits"])) in (1, 2)
    assert _convert(data, tmp_path / "b", "--subject", "9") in (1, 2)
    assert _convert(data, tmp_path / "c", "--split", "test") in (1, 2)
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert len(lines) == 3 and all(line.startswith("dd-live: error: ") for line in lines)
    assert "indexes items up to 5, but there are subject 1's 1 items" in lines[0]
    assert "no items of subject 9; its subjects: [1, 4]" in lines[1]
    assert "--split and --splits go together" in lines[2]


# -- the release checkpoint, live ------------------------------------------------------------------
def test_paper_model_on_paper_data_through_the_command_line(release, data, tmp_path, capsys):
    """`dd-live replay FOLDER --model CHECKPOINT`: one image per item, from exactly the window
    the release crops, each recorded with the image the person saw."""
    checkpoint, configs = release
    out = tmp_path / "subject4"
    assert _convert(data, out, "--subject", "4", "--images", str(data["images"])) == 0
    runs = tmp_path / "runs"
    code = cli.main(["replay", str(out), "--model", str(checkpoint), "--model-config",
                     str(configs), "--speed", "0", "--headless", "--record", str(runs),
                     "--scheduler", "ddim", "--steps", "2"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    printed = printed.out
    assert "model: DreamDiffusion release checkpoint dreamdiffusion.pth" in printed
    (session,) = runs.iterdir()
    events = read_events(session)
    markers = [e for e in events if e["type"] == "marker"]
    images = [e for e in events if e["type"] == "image"]
    assert len(markers) == len(images) == 5
    table = json.loads((out / "imagenet_eeg.json").read_text())["items"]
    # the same weights built apart from the app, on the device the app chose (auto)
    generator = ImageGenerator.from_pretrained(checkpoint, config=configs, scheduler="ddim",
                                               num_inference_steps=2).prepare()
    conditioner = place_conditioner(import_reference(checkpoint, kind="conditioner"),
                                    generator.device, conditioner_dtype(generator.device))
    for row, image in zip(table, images, strict=True):
        assert (image["start"], image["stop"]) == (row["sample"] + 20, row["sample"] + 460)
        assert image["trigger"] == "marker"
        seen = data["images"] / row["image"].split("_")[0] / f"{row['image']}.JPEG"
        assert Path(image["stimulus"]) == seen.resolve()
        # the release's crop of the item, resampled and standardised, through the same weights
        crop = data["dataset"][row["item"]]["eeg"].numpy()[:, 20:460]
        window = torch.from_numpy(standardize(resample_window(crop, N_TIMES)))[None].to(
            generator.device, conditioner_dtype(generator.device))
        with torch.inference_mode():
            context = conditioner(window)["context"]
        expected = np.asarray(generator(context, seed=image["seed"]).images[0])
        made = np.asarray(Image.open(session / image["images"][0]))
        assert np.abs(made.astype(int) - expected.astype(int)).max() <= 1


def test_release_preset_samples_as_the_release_does(release, data, tmp_path):
    """--preset release: PLMS, 250 steps, no guidance, the full VAE; the command line wins."""
    checkpoint, configs = release
    parser = cli.build_parser()
    config = cli._config_from_args(parser.parse_args(
        ["run", "--model", str(checkpoint), "--model-config", str(configs), "--preset", "release",
         "--source", "file:nowhere.fif"]))
    g = config.generator
    assert (g.scheduler, g.steps, g.guidance_scale, g.tiny_decoder) == ("plms", 250, 1.0, False)
    mine = cli._config_from_args(parser.parse_args(
        ["run", "--model", str(checkpoint), "--preset", "release", "--steps", "3"]))
    assert (mine.generator.scheduler, mine.generator.steps) == ("plms", 3)
    # one item, replayed through a LiveSession with the preset's settings
    out = tmp_path / "one"
    assert _convert(data, out, "--subject", "4", "--split", "val", "--splits",
                    str(data["splits"])) == 0
    config = AppConfig.from_layers(tomllib.loads((out / "config.toml").read_text()),
                                   {"generator": {**{k: getattr(g, k) for k in (
                                       "model", "model_config", "scheduler", "steps",
                                       "guidance_scale", "tiny_decoder")}}})
    # the app's decoder for that config, at 16 px (the preset leaves the size), not warmed up
    decoder = EEGDecoder.from_config(dataclasses.replace(config.generator, image_size=16))
    session = LiveSession(config, source=ReplaySource(out, speed=0), decoder=decoder,
                          threaded=False)
    results: list[GeneratedImage] = []
    session.callbacks.image.append(results.append)
    session.start()
    try:
        while not session.finished:
            session.step()
    finally:
        session.stop()
    assert len(results) == 1 and results[0].window_start == 20
    generator = session.decoder.generator
    assert generator.time_cond is not None and generator.unet.config.class_embed_type == "identity"
    assert (generator.settings.scheduler, generator.settings.guidance_scale) == ("plms", 1.0)
    # PLMS's 250 steps take 251 UNet calls (its first step two), in diffusers as in the release
    assert results[0].timings["steps"] == 251 and results[0].images[0].size == (16, 16)


def test_files_that_are_not_a_release_generation_checkpoint_are_refused(release, tmp_path, capsys):
    checkpoint, configs = release
    marker = tmp_path / "ran"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"model_state_dict": {}, "config": RunsCode()}, evil)
    encoder = write_release_file(tmp_path / "checkpoint.pth", {"model": {}}, "Config_MBM_EEG")
    sd_file = tmp_path / "sd.safetensors"
    sd_file.write_bytes(b"\0" * 16)
    for path in (evil, encoder, sd_file, tmp_path / "missing.pth"):
        assert cli.main(["run", "--model", str(path), "--model-config", str(configs),
                         "--headless", "--duration", "1"]) != 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("dd-live")]
    assert len(lines) == 4, lines
    assert "refers to the Python global" in lines[0] and "nothing in it was run" in lines[0]
    assert not marker.exists()
    assert "cannot run as a live model" in lines[1] and "pretrained-encoder" in lines[1]
    assert "has no EEG encoder" in lines[2]
    assert "missing.pth does not exist; check the path" in lines[3]


def test_the_gallery_shows_the_seen_image_beside_the_generated_one(data):
    from PySide6 import QtWidgets

    from dd_live.gui.gallery import ImageGallery

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    gallery = ImageGallery()
    gallery.resize(800, 600)
    gallery.show()
    seen = data["images"] / "n03773504" / "n03773504_1234.JPEG"

    def result(index: int, stimulus: str | None) -> GeneratedImage:
        return GeneratedImage(index, [Image.new("RGB", (32, 32), (255, 0, 0))], 20, 460, 0.02,
                              0.46, "image:n03773504_1234", 0, {"total": 0.1}, stimulus=stimulus)

    gallery.add(result(0, str(seen)))
    app.processEvents()
    assert gallery.stimulus.isVisible() and gallery.image.isVisible()
    shown = gallery.stimulus.pixmap().toImage()
    centre = shown.pixelColor(shown.width() // 2, shown.height() // 2)
    expected = COLOURS["n03773504_1234"]
    assert max(abs(a - b) for a, b in zip((centre.red(), centre.green(), centre.blue()),
                                          expected, strict=True)) <= 8  # JPEG
    assert gallery.stimulus.geometry().left() >= gallery.image.geometry().right()  # beside it
    assert f"seen (right): {seen}" in gallery.details.text()
    gallery.add(result(1, None))
    app.processEvents()
    assert not gallery.stimulus.isVisible()
    gallery.close()


def test_a_calibration_session_replays_with_the_images_that_were_shown(tmp_path, capsys):
    """`dd-live replay CAL --images CAL`: a calibration folder names its images (by content
    hash) in calibration.json; each image made from a marker's window carries the one shown."""
    shown = tmp_path / "shown"
    shown.mkdir()
    for k in range(4):
        Image.new("RGB", (24, 24), (60 * k, 255 - 60 * k, 90)).save(shown / f"{k}.png")
    assert cli.main(["calibrate", "--source", "synthetic?viewer=1&n_channels=8", "--images",
                     str(shown), "--headless", "--speed", "0", "--trials", "6", "--design",
                     "slow", "--out", str(tmp_path / "cal"), "--copy-images"]) == 0
    (calibration,) = (tmp_path / "cal").iterdir()
    settings = tmp_path / "replay.toml"
    settings.write_text('[window]\nmode = "marker"\nmarker_match = "image:.*"\n'
                        '[quality]\nmode = "off"\n[generator]\nmodel = "tiny"\nsteps = 1\n')
    assert cli.main(["replay", str(calibration), "--config", str(settings), "--images",
                     str(calibration), "--speed", "0", "--headless", "--record",
                     str(tmp_path / "runs")]) == 0
    (replayed,) = (tmp_path / "runs").iterdir()
    events = read_events(replayed)
    images = [e for e in events if e["type"] == "image"]
    with (calibration / "stimuli.tsv").open(newline="") as table:
        shown_at = {int(row["onset_sample"]): row["image_id"]
                    for row in csv.DictReader(table, delimiter="\t")}
    copies = {e["image_id"]: calibration / e["copy"] for e in json.loads(
        (calibration / "calibration.json").read_text())["images"]}
    assert len(images) == len(shown_at) == 6
    for image in images:
        onset = image["start"] - round(0.02 * 250)  # offset 0.02 s at the viewer's 250 Hz
        assert Path(image["stimulus"]) == copies[shown_at[onset]]
