"""ImageRetriever with a tiny open_clip model (random weights, custom config) and PNGs written here."""

import json
import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from dd_live.config import AppConfig, GeneratorConfig
from dd_live.decoding import EEGDecoder
from dd_live.errors import ConfigError, GenerationError
from dd_live.generate import ImageRetriever

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def weights(tmp_path):
    """A weights file of the tiny CLIP (its random initialisation, saved as real weights are)."""
    config = tmp_path / "ddlive-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)  # registers the model name "ddlive-tiny-clip"
    torch.manual_seed(0)
    model = open_clip.create_model("ddlive-tiny-clip")
    path = tmp_path / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


@pytest.fixture
def gallery(tmp_path, weights):
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_query_finds_each_image_by_its_own_embedding_and_caches(gallery, weights):
    retriever = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip", pretrained=weights)
    assert retriever.n_embedded == 4 and (gallery / "embeddings.npz").is_file()
    hits = retriever.query(torch.from_numpy(retriever.embeddings[[2, 0]] * 3.0), k=3)
    assert [row[0][0].name for row in hits] == ["2.png", "0.png"]
    assert hits[0][0][1] == pytest.approx(1.0, abs=1e-5) and len(hits[0]) == 3
    assert hits[0][0][1] >= hits[0][1][1] >= hits[0][2][1]

    again = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip", pretrained=weights)
    assert again.n_embedded == 0
    np.testing.assert_array_equal(again.embeddings, retriever.embeddings)
    os.utime(gallery / "1.png", (1, 1))  # a changed file is embedded again, the others come from the cache
    assert ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip", pretrained=weights).n_embedded == 1
    # other weights written to the same file (a model trained again): every image is embedded anew
    torch.manual_seed(1)
    model = open_clip.create_model("ddlive-tiny-clip")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, weights)
    os.utime(weights, ns=(os.stat(weights).st_atime_ns, os.stat(weights).st_mtime_ns + 10**9))
    fresh = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip", pretrained=weights)
    assert fresh.n_embedded == 4 and not np.allclose(fresh.embeddings, retriever.embeddings)


def test_bad_queries_and_folders_are_clear_errors(gallery, weights, tmp_path):
    retriever = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip", pretrained=weights)
    with pytest.raises(GenerationError, match=r"clip_vec must be \[B, 32\]"):
        retriever.query(np.zeros((1, 768)))
    with pytest.raises(GenerationError, match="NaN or infinite"):
        retriever.query(np.full((1, 32), np.nan))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenerationError, match="holds no images"):
        ImageRetriever.from_folder(tmp_path / "empty", clip_model="ddlive-tiny-clip", pretrained=weights)
    with pytest.raises(GenerationError, match="does not exist"):
        ImageRetriever.from_folder(tmp_path / "missing", clip_model="ddlive-tiny-clip", pretrained=weights)


def test_retrieval_refuses_random_weights(gallery, weights, tmp_path):
    """Today's silent failure: a random CLIP ranks the gallery by noise. Now it is an error."""
    with pytest.raises(ConfigError, match="needs real image-embedding weights"):
        ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip")
    with pytest.raises(ConfigError, match="neither a file nor an open_clip tag"):
        ImageRetriever.from_folder(gallery, clip_model="ViT-L-14", pretrained=str(tmp_path / "gone.pt"))
    # the app's path: [generator] mode = "retrieve" without clip_pretrained stops at start
    config = GeneratorConfig(model="tiny", mode="retrieve", gallery=str(gallery), steps=1)
    with pytest.raises(ConfigError, match="clip_pretrained"):
        EEGDecoder.from_config(config)
    assert AppConfig().generator.clip_pretrained is None
    # with a weights file named in the settings it starts
    ok = EEGDecoder.from_config(GeneratorConfig(model="tiny", mode="retrieve", gallery=str(gallery),
                                                steps=1, clip_model="ddlive-tiny-clip",
                                                clip_pretrained=weights))
    assert ok.retriever is not None and len(ok.retriever.paths) == 4
