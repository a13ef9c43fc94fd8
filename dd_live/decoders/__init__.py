"""Embedding-route decoders: one EEG window -> one vector in a frozen image-embedding space.

The route (see docs/decoders.md): a small decoder maps the live window ``[n_channels,
n_times]`` into the space of an image embedder (OpenCLIP ViT-H/14 by default, the space
IP-Adapter SD 1.5 is conditioned on); a frozen generator renders the vector; a low-level head
gives a coarse picture of the seen image; a gallery of embedded images gives the nearest ones.

Public API::

    EmbeddingModel.load(folder) -> EmbeddingModel
        .embedder: EmbedderSpec(name, pretrained, dim, id)
        .n_channels, .n_times, .ch_names, .description, .decoder_name
        .encode(eeg [n_channels, n_times] float32) -> [dim] float32
        .lowlevel(eeg) -> LowLevel(picture: PIL RGB, latent: [4, h, w] | None) | None
        .gallery: Gallery | None        .nearest(vector [dim], k) -> [(path, score)]
        .lowlevel_head: LowLevelHead | None
    is_embedding_model(folder) -> bool

Decoders: :class:`RidgeDecoder` (NumPy at run time), :class:`~dd_live.decoders.conv.ConvDecoder`
and :class:`~dd_live.decoders.dreamdiffusion.DreamDiffusionDecoder` (torch, imported when used).
"""

from dd_live.decoders.base import EmbedderSpec, pooled_features
from dd_live.decoders.gallery import Gallery
from dd_live.decoders.lowlevel import LowLevel, LowLevelHead
from dd_live.decoders.model import (
    DECODER_FOLDER,
    DECODER_KINDS,
    GALLERY_FOLDER,
    LOWLEVEL_FOLDER,
    ROUTE,
    SETTINGS_FILE,
    EmbeddingModel,
    is_embedding_model,
    load_decoder,
)
from dd_live.decoders.ridge import RidgeDecoder

__all__ = [
    "DECODER_FOLDER",
    "DECODER_KINDS",
    "GALLERY_FOLDER",
    "LOWLEVEL_FOLDER",
    "ROUTE",
    "SETTINGS_FILE",
    "EmbedderSpec",
    "EmbeddingModel",
    "Gallery",
    "LowLevel",
    "LowLevelHead",
    "RidgeDecoder",
    "is_embedding_model",
    "load_decoder",
    "pooled_features",
]
