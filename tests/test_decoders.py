"""The embedding-route runtime (dd_live.decoders) on its own: sizes, folders written and read
back, the gallery's ranking, refusals. Weights are random (what is checked is the plumbing)."""

import json

import numpy as np
import pytest
import torch

from dd_live.decoders import (
    EmbedderSpec,
    EmbeddingModel,
    Gallery,
    LowLevelHead,
    RidgeDecoder,
    is_embedding_model,
    pooled_features,
)
from dd_live.decoders.conv import MAX_PARAMETERS, ConvConfig, ConvDecoder
from dd_live.decoders.dreamdiffusion import DreamDiffusionDecoder
from dd_live.errors import CheckpointError, ConfigError
from dd_live.model import get_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("n_channels", "dim"), [(8, 768), (64, 1024), (128, 1024)])
def test_the_conv_decoder_stays_small(n_channels, dim):
    """At most ~2 M parameters, for ViT-H/14's 1024-d space and up to 128 channels."""
    decoder = ConvDecoder(ConvConfig(subject_channels=(n_channels,), n_channels=n_channels, n_times=224,
                                     dim=dim))
    assert decoder.n_parameters <= MAX_PARAMETERS
    assert decoder(torch.randn(3, n_channels, 224)).shape == (3, dim)


def test_torch_decoders_round_trip_through_their_folders(tmp_path):
    torch.manual_seed(0)
    conv = ConvDecoder(ConvConfig(subject_channels=(8, 5), subjects=("a", "b"), n_times=112, dim=32)).eval()
    conv.target.set(torch.randn(10, 32))
    conv.save(tmp_path / "conv")
    back = ConvDecoder.load(tmp_path / "conv")
    window = np.random.default_rng(0).standard_normal((8, 112)).astype(np.float32)
    assert np.array_equal(back.encode(window), conv.encode(window))
    assert back.config.subjects == ("a", "b") and back.n_channels == 8
    with torch.no_grad():  # the vector is in the embedder's space: z * scale + mean
        z = conv(torch.from_numpy(window)[None])[0]
    np.testing.assert_allclose(conv.encode(window), (z * conv.target.scale + conv.target.mean).numpy(), rtol=1e-6)
    encoder = get_preset("tiny", "encoder")
    dream = DreamDiffusionDecoder(encoder, 6, 16).eval()  # 6 channels mapped to the encoder's 8
    dream.save(tmp_path / "dd")
    again = DreamDiffusionDecoder.load(tmp_path / "dd")
    eeg = np.zeros((6, encoder.n_times), np.float32)
    assert np.array_equal(again.encode(eeg), dream.encode(eeg)) and again.encode(eeg).shape == (16,)
    with pytest.raises(ConfigError, match=r"\[6, 64\]"):
        again.encode(np.zeros((8, 64), np.float32))


def test_a_garbled_decoder_weights_file_is_refused_naming_it(tmp_path):
    """A decoder folder whose model.safetensors was cut short (a half-copied model folder) is
    the project's one-line CheckpointError naming the file, on the torch and NumPy loaders."""
    conv = ConvDecoder(ConvConfig(subject_channels=(8,), subjects=("a",), n_times=112, dim=32))
    weights = conv.save(tmp_path / "conv") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{weights} is not a readable safetensors file"):
        ConvDecoder.load(tmp_path / "conv")


def test_pooled_features_are_channel_major_bin_means():
    eeg = np.arange(2 * 7, dtype=np.float32).reshape(2, 7)
    assert pooled_features(eeg, 3).tolist() == [1.0, 4.0, 8.0, 11.0]  # the 7th sample dropped
    assert pooled_features(np.stack([eeg, eeg]), 1).shape == (2, 14)


def test_the_gallery_ranks_by_centred_cosine_and_reads_back(tmp_path):
    rng = np.random.default_rng(0)
    center = np.full(8, 5.0, np.float32)
    embeddings = center + rng.standard_normal((5, 8)).astype(np.float32)
    for i in range(5):
        (tmp_path / f"{i}.png").write_bytes(b"png")
    gallery = Gallery([tmp_path / f"{i}.png" for i in range(5)], embeddings, "tiny/x", center)
    gallery.save(tmp_path)
    back = Gallery.load(tmp_path)
    assert back.embedder_id == "tiny/x" and len(back) == 5
    (path, score), *rest = back.nearest(embeddings[3], 3)
    assert path == tmp_path / "3.png" and score == pytest.approx(1.0, abs=1e-6) and len(rest) == 2
    # without the centring every image would look alike (all near the common part)
    raw = Gallery(gallery.paths, embeddings, "tiny/x")
    assert raw.scores(embeddings[3]).min() > back.scores(embeddings[3]).min()
    with pytest.raises(ConfigError, match="4-d vector"):
        back.nearest(np.zeros(4), 1)
    (tmp_path / "2.png").unlink()
    with pytest.raises(CheckpointError, match="gone"):
        Gallery.load(tmp_path)


def write_folder(folder, dim=6, embedder_dim=None, latent=False):
    rng = np.random.default_rng(0)
    decoder = RidgeDecoder(rng.standard_normal((4 * 5, dim)), np.zeros(dim),
                           {"n_channels": 4, "n_times": 10, "pool": 2, "dim": dim, "alpha": 1.0})
    decoder.save(folder / "decoder")
    arrays = {"rgb_weight": rng.standard_normal((20, 48)) * 0.01, "rgb_bias": np.full(48, 0.5)}
    config = {"n_channels": 4, "n_times": 10, "pool": 2, "rgb_shape": [4, 4, 3], "latent_shape": None}
    if latent:
        arrays.update(latent_weight=rng.standard_normal((20, 16)), latent_bias=np.zeros(16))
        config["latent_shape"] = [4, 2, 2]
    LowLevelHead(arrays, config).save(folder / "lowlevel")
    spec = EmbedderSpec("tiny", "t", embedder_dim or dim, "tiny/t")
    (folder / "dd_live.json").write_text(json.dumps({"route": "embedding", "embedder": spec.to_dict(),
                                                     "channels": ["a", "b", "c", "d"]}))
    return decoder


def test_a_model_folder_loads_and_its_parts_must_agree(tmp_path):
    decoder = write_folder(tmp_path / "m", latent=True)
    assert is_embedding_model(tmp_path / "m") and not is_embedding_model(tmp_path)
    model = EmbeddingModel.load(tmp_path / "m")
    window = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    assert np.array_equal(model.encode(window), decoder.predict(window))
    low = model.lowlevel(window)
    assert low.latent.shape == (4, 2, 2) and low.picture.size == (128, 128)
    assert model.gallery is None and model.ch_names == ("a", "b", "c", "d")
    assert model.lowlevel_head.kind == "vae"
    with pytest.raises(ConfigError, match=r"\[4, 10\]"):
        model.encode(np.zeros((10, 4), np.float32))
    write_folder(tmp_path / "bad", dim=6, embedder_dim=8)
    with pytest.raises(CheckpointError, match="6-d vectors"):
        EmbeddingModel.load(tmp_path / "bad")
    (tmp_path / "m" / "dd_live.json").write_text(json.dumps({"description": "a DreamDiffusion folder"}))
    with pytest.raises(CheckpointError, match="not an embedding-route model folder"):
        EmbeddingModel.load(tmp_path / "m")
