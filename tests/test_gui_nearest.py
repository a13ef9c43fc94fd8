"""The window shows, under each generated image, the nearest gallery images with their scores.

A real LiveSession (synthetic EEG, the tiny random generator) with ``[generator] gallery`` set:
the decoder ranks the gallery by the EEG's image embedding and each result carries its nearest
images (``GeneratedImage.matches``). The image embedder is a tiny open_clip model whose random
initialisation is saved here as a weights file (no download; real CLIP weights cannot ship in
tests). The gallery images are solid colours, so a thumbnail's pixels tell which file it shows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from PySide6 import QtCore, QtWidgets
from safetensors.torch import save_file
from test_gui import SYNTHETIC_SPEC, close_window, wait_until

from dd_live.config import AppConfig, GeneratorConfig
from dd_live.gui import MainWindow

# an embedder whose image embeddings have the tiny EEG model's CLIP width (768)
TINY_CLIP = {
    "embed_dim": 768,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 230), (240, 220, 20), (200, 40, 210),
           (20, 210, 220)]


@pytest.fixture
def gallery_config(tmp_path) -> AppConfig:
    config = tmp_path / "ddlive-nearest-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)  # registers the model name "ddlive-nearest-clip"
    torch.manual_seed(0)
    weights = tmp_path / "clip.safetensors"
    model = open_clip.create_model("ddlive-nearest-clip")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    folder = tmp_path / "gallery"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, colour in enumerate(COLOURS):  # a solid colour with a few random pixels each
        pixels = np.empty((48, 48, 3), np.uint8)
        pixels[:] = colour
        pixels[:4, :4] = rng.integers(0, 255, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    generator = GeneratorConfig(model="tiny", steps=2, gallery=str(folder),
                                clip_model="ddlive-nearest-clip", clip_pretrained=str(weights))
    return AppConfig().replace(source={"spec": SYNTHETIC_SPEC}, generator=generator)


def shown_colour(label: QtWidgets.QLabel) -> tuple[int, int, int]:
    """The colour at the centre of a thumbnail label's pixmap."""
    image = label.pixmap().toImage()
    colour = image.pixelColor(image.width() // 2, image.height() // 2)
    return colour.red(), colour.green(), colour.blue()


def assert_strip_shows(strip, matches) -> None:
    assert strip.isVisible() and len(matches) == 4
    assert strip.shown == [(str(path), float(score)) for path, score in matches]
    for (thumbnail, score), (path, value) in zip(strip.cells, matches):
        assert thumbnail.isVisible() and score.isVisible()
        assert score.text() == f"{value:.3f}"
        assert thumbnail.toolTip().startswith(str(path))
        expected = COLOURS[int(Path(path).stem)]
        assert np.abs(np.subtract(shown_colour(thumbnail), expected)).max() <= 3, path


def test_window_shows_the_nearest_gallery_images_with_scores(app, gallery_config, tmp_path):
    settings = QtCore.QSettings(str(tmp_path / "dd-live.ini"), QtCore.QSettings.Format.IniFormat)
    window = MainWindow(gallery_config, settings=settings)
    try:
        window.show()
        window.start_session()
        assert wait_until(lambda: window.phase != "starting", 60)
        assert window.phase == "running", window.banner.text()
        assert wait_until(lambda: len(window.gallery.results) >= 2, 60), window.banner.text()
        gallery = window.gallery
        newest = gallery.results[-1]
        gallery.select(newest.index)
        # the strip under the image is the shown result's own matches, best first
        assert newest.matches and [s for _, s in newest.matches] == sorted(
            (s for _, s in newest.matches), reverse=True)
        assert_strip_shows(gallery.nearest, newest.matches)
        # picking an older image shows that window's nearest images
        oldest = gallery.results[0]
        gallery.select(oldest.index)
        assert_strip_shows(gallery.nearest, oldest.matches)
        gallery.clear()
        assert gallery.nearest.isHidden()
    finally:
        close_window(window)


@pytest.fixture(scope="module")
def app():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
