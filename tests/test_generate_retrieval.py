"""ImageRetriever with a tiny open_clip model (random weights, custom config) and PNGs written here."""

import json
import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from dd_live.errors import GenerationError
from dd_live.generate import ImageRetriever

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}


@pytest.fixture
def gallery(tmp_path):
    config = tmp_path / "ddlive-tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)  # registers the model name "ddlive-tiny-clip"
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_query_finds_each_image_by_its_own_embedding_and_caches(gallery):
    retriever = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip")
    assert retriever.n_embedded == 4 and (gallery / "embeddings.npz").is_file()
    hits = retriever.query(torch.from_numpy(retriever.embeddings[[2, 0]] * 3.0), k=3)
    assert [row[0][0].name for row in hits] == ["2.png", "0.png"]
    assert hits[0][0][1] == pytest.approx(1.0, abs=1e-5) and len(hits[0]) == 3
    assert hits[0][0][1] >= hits[0][1][1] >= hits[0][2][1]

    again = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip")
    assert again.n_embedded == 0
    np.testing.assert_array_equal(again.embeddings, retriever.embeddings)
    os.utime(gallery / "1.png", (1, 1))  # a changed file is embedded again, the others come from the cache
    assert ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip").n_embedded == 1


def test_bad_queries_and_folders_are_clear_errors(gallery, tmp_path):
    retriever = ImageRetriever.from_folder(gallery, clip_model="ddlive-tiny-clip")
    with pytest.raises(GenerationError, match=r"clip_vec must be \[B, 32\]"):
        retriever.query(np.zeros((1, 768)))
    with pytest.raises(GenerationError, match="NaN or infinite"):
        retriever.query(np.full((1, 32), np.nan))
    (tmp_path / "empty").mkdir()
    with pytest.raises(GenerationError, match="holds no images"):
        ImageRetriever.from_folder(tmp_path / "empty")
    with pytest.raises(GenerationError, match="does not exist"):
        ImageRetriever.from_folder(tmp_path / "missing")
