"""What the live session decodes, published as LSL streams for other programs.

With ``[output] lsl = true`` (``--lsl-out``) a :class:`~dd_live.session.LiveSession` opens two
LSL outlets named after the EEG stream (``[output] lsl_name`` overrides the name):

- ``<name>-decoded`` (type ``Embedding``): float32, irregular rate, one sample per decoded
  window: the decoded vector (the embedding-route model's image embedding, else the
  DreamDiffusion CLIP-space vector), one channel per dimension; its time stamp is the LSL time
  of the window's last sample.
- ``<name>-images`` (type ``Markers``): one string per image, a JSON object with the window's
  sample range and LSL times, the seed, the renderer, the nearest gallery names with their
  scores and the file written if recording; stamped like the ``-decoded`` sample it belongs to.

Both carry ``desc`` metadata as LSL's XDF meta-data conventions lay it out
(``desc/channels/channel`` with ``label``, ``unit``, ``type``) plus a ``dd-live`` element naming
the model, the decoder, the embedder, the EEG stream and the channel map. Their source ids
(``dd-live:<EEG stream's source id or name>:decoded`` / ``:images``) stay the same from one
session to the next, so a recorder that lost them (LabRecorder) finds them again.

Time stamps: an LSL source's timestamps are already on the local LSL clock and are used as they
are. Any other source's clock (the monotonic clock of the synthetic headset and of file replays,
a board's clock) is mapped to ``pylsl.local_clock()`` by one offset measured when the first
image is published (the LSL clock minus the newest sample's timestamp then), so the stamps keep
the source's spacing exactly and lag the true sample time by at most the age of the newest
sample (one chunk). A replay faster than real time therefore stamps ahead of the LSL clock.

pylsl is imported when the outlets are opened (liblsl reads ``LSLAPICFG`` then).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from dd_live import __version__

logger = logging.getLogger(__name__)

DECODED_SUFFIX = "-decoded"
IMAGES_SUFFIX = "-images"
DECODED_TYPE = "Embedding"
IMAGES_TYPE = "Markers"
CHUNK_SIZE = 1  # samples per network chunk: each decoded window goes out at once
# s an outlet stays open after its last push when a consumer is connected: liblsl drops what
# an inlet has received but not pulled yet once the outlet goes, so the last image would be lost
CLOSE_GRACE = 0.5


def _pylsl():
    import pylsl  # lazily: liblsl reads LSLAPICFG when pylsl is imported

    return pylsl


def decoded_vector(decoded: Any) -> tuple[np.ndarray | None, str]:
    """The vector a window decoded to and what it is: the embedding route's ``embedding``
    ``[dim]``, else the CLIP-space vector ``clip`` ``[clip_dim]``, else the pooled
    ``context`` ``[77, 768] -> [768]``; ``(None, "")`` when the decoder gave none."""
    for attr, kind in (("embedding", "embedding"), ("clip", "clip")):
        vector = getattr(decoded, attr, None)
        if vector is not None:
            return np.asarray(vector, dtype=np.float32).reshape(-1), kind
    context = getattr(decoded, "context", None)
    if context is not None:
        return np.asarray(context, dtype=np.float32).reshape(-1, np.shape(context)[-1]).mean(0), \
            "pooled-context"
    return None, ""


def _embedder(decoder: Any) -> Any:
    """The embedding-route model's embedder spec (``.id``, ``.dim``), or None."""
    for owner in (decoder, getattr(decoder, "model", None)):
        embedder = getattr(owner, "embedder", None)
        if getattr(embedder, "id", None):
            return embedder
    return None


def vector_dim(decoder: Any) -> int | None:
    """The length of the decoded vector a decoder gives, when it says (None: known only once
    the first window is decoded)."""
    dim = getattr(_embedder(decoder), "dim", None)
    if isinstance(dim, int) and dim > 0:
        return dim
    try:
        return int(decoder.conditioner.config.conditioning.clip_dim)
    except AttributeError:
        return None


def embedder_id(decoder: Any) -> str:
    """The embedding space the decoded vector lives in, as far as the decoder tells."""
    embedder = _embedder(decoder)
    if embedder is not None:
        return str(embedder.id)
    retriever = getattr(decoder, "retriever", None)
    if getattr(retriever, "model_id", None):
        return str(retriever.model_id)
    if getattr(decoder, "conditioner", None) is not None:
        return "DreamDiffusion CLIP space (CLIP ViT-L/14 image embeddings)"
    return ""


class DecodedOutlets:
    """The ``<name>-decoded`` and ``<name>-images`` outlets of one live session.

    Args:
        name: the streams' base name (the EEG stream's name unless ``[output] lsl_name``).
        source_id: the EEG stream's source id or name; the outlets' ids derive from it.
        metadata: what the ``dd-live`` element of ``desc`` holds (``model``, ``description``,
            ``decoder``, ``embedder``, ``vector``, ``eeg_stream``...), plain values.
        channel_map: ``(model channel, input channel, how)`` per model channel.
        dim: the decoded vector's length; None opens ``-decoded`` with the first vector.
        lsl_clock: True when the sample timestamps are already on the LSL clock.

    :meth:`publish` is called from the generation thread, once per image, in order.
    """

    def __init__(self, name: str, source_id: str, *, metadata: dict[str, Any],
                 channel_map: list[tuple[str, str, str]], dim: int | None,
                 lsl_clock: bool) -> None:
        self.name = name
        self.source_id = source_id
        self.metadata = dict(metadata)
        self.channel_map = list(channel_map)
        self.lsl_clock = lsl_clock
        self.offset: float | None = 0.0 if lsl_clock else None  # source clock -> LSL clock
        self.n_published = 0
        self._lock = threading.Lock()
        self._warned_dim = False
        self._last_push = -CLOSE_GRACE  # time.monotonic() of the last push
        self._decoded = None
        self.dim: int | None = None
        self._images = self._open_images()
        if dim is not None:
            self._open_decoded(dim)
        logger.info("LSL output: %r and %r (source ids %s:decoded / :images)",
                    name + DECODED_SUFFIX, name + IMAGES_SUFFIX, self._id_base)

    def __repr__(self) -> str:
        return (f"<DecodedOutlets: {self.name}{DECODED_SUFFIX} ({self.dim or '?'} ch), "
                f"{self.name}{IMAGES_SUFFIX} | {self.n_published} published>")

    @property
    def _id_base(self) -> str:
        return f"dd-live:{self.source_id or self.name}"

    # -- opening ---------------------------------------------------------------------------
    def _describe(self, info: Any, labels: list[str], unit: str, kind: str) -> None:
        """``desc``: ``channels/channel`` (label, unit, type) and the ``dd-live`` element."""
        desc = info.desc()
        channels = desc.append_child("channels")
        for label in labels:
            channel = channels.append_child("channel")
            channel.append_child_value("label", label)
            channel.append_child_value("unit", unit)
            channel.append_child_value("type", kind)
        own = desc.append_child("dd-live")
        own.append_child_value("version", __version__)
        for key, value in self.metadata.items():
            if isinstance(value, dict):
                child = own.append_child(key)
                for sub, sub_value in value.items():
                    child.append_child_value(sub, str(sub_value))
            else:
                own.append_child_value(key, str(value))
        mapping = own.append_child("channel_map")
        for model_ch, input_ch, how in self.channel_map:
            entry = mapping.append_child("channel")
            entry.append_child_value("label", str(model_ch))
            entry.append_child_value("input", str(input_ch))
            entry.append_child_value("how", str(how))

    def _open_images(self):
        pylsl = _pylsl()
        info = pylsl.StreamInfo(self.name + IMAGES_SUFFIX, IMAGES_TYPE, 1, pylsl.IRREGULAR_RATE,
                                pylsl.cf_string, f"{self._id_base}:images")
        self._describe(info, ["image"], "json", "Marker")
        return pylsl.StreamOutlet(info, chunk_size=CHUNK_SIZE)

    def _open_decoded(self, dim: int) -> None:
        pylsl = _pylsl()
        info = pylsl.StreamInfo(self.name + DECODED_SUFFIX, DECODED_TYPE, dim,
                                pylsl.IRREGULAR_RATE, pylsl.cf_float32,
                                f"{self._id_base}:decoded")
        width = len(str(dim - 1))
        self._describe(info, [f"{self.metadata.get('vector', 'dim')}{k:0{width}d}"
                              for k in range(dim)], "a.u.", DECODED_TYPE)
        self._decoded = pylsl.StreamOutlet(info, chunk_size=CHUNK_SIZE)
        self.dim = dim

    # -- publishing ------------------------------------------------------------------------
    def to_lsl(self, t: float, newest: float | None) -> float:
        """A source timestamp on the LSL clock. ``newest``: the newest sample's timestamp now
        (fixes the offset of a non-LSL clock, once)."""
        if self.offset is None:
            self.offset = _pylsl().local_clock() - (t if newest is None else newest)
            logger.info("LSL output: the source's clock is mapped to the LSL clock by %+.6f s",
                        self.offset)
        return t + self.offset

    def publish(self, result: Any, decoded: Any, *, renderer: str, file: str | None,
                newest: float | None = None) -> None:
        """Push one image: its window's vector on ``-decoded`` and its JSON on ``-images``.

        Args:
            result: the :class:`~dd_live.session.GeneratedImage`.
            decoded: what the decoder returned for the window (its vector is published).
            renderer: what made the image; file: the image's path in the recording or None.
            newest: the newest sample timestamp now (source clock), for a non-LSL clock.
        """
        pylsl = _pylsl()
        with self._lock:
            t_first = self.to_lsl(result.t_first, newest)
            t_last = self.to_lsl(result.t_last, newest)
            vector, _ = decoded_vector(decoded)
            if vector is not None:
                if self._decoded is None:
                    self._open_decoded(vector.size)
                if vector.size == self.dim:
                    self._decoded.push_sample(vector, t_last)
                elif not self._warned_dim:
                    self._warned_dim = True
                    logger.error("LSL output: a decoded vector of %d values does not fit %r "
                                 "(%d channels); such windows are not published there",
                                 vector.size, self.name + DECODED_SUFFIX, self.dim)
            marker = {
                "index": result.index, "start": result.window_start,
                "stop": result.window_stop, "t_first": t_first, "t_last": t_last,
                "trigger": result.trigger, "seed": result.seed, "renderer": renderer,
                "nearest": [{"name": Path(str(path)).stem, "score": round(float(score), 6)}
                            for path, score in result.matches],
                "file": file, "stimulus": getattr(result, "stimulus", None),
                "latency": round(float(result.timings.get("latency", 0.0)), 6),
                "t_image": pylsl.local_clock(),
            }
            self._images.push_sample([json.dumps(marker)], t_last)
            self.n_published += 1
            self._last_push = time.monotonic()

    def close(self) -> None:
        """Close both outlets (consumers see the streams go), giving a connected consumer
        :data:`CLOSE_GRACE` seconds after the last push to pull it first."""
        with self._lock:
            if self._images is not None and self._images.have_consumers():
                time.sleep(max(0.0, self._last_push + CLOSE_GRACE - time.monotonic()))
            self._decoded = self._images = None


def open_outlets(session: Any) -> DecodedOutlets:
    """The outlets ``[output]`` asks for, for a started session's source, decoder and map."""
    from dd_live.sources.lsl import LSLSource

    cfg = session.config
    info = session.info
    decoder = session.decoder
    dim = vector_dim(decoder)
    metadata = {
        "model": cfg.generator.model,
        "description": getattr(decoder, "description", "") or "",
        "decoder": (getattr(decoder, "decoder_name", None)
                    or getattr(getattr(decoder, "model", None), "decoder_name", None)
                    or type(decoder).__name__),
        "embedder": embedder_id(decoder),
        "vector": "embedding" if _embedder(decoder) is not None else "clip",
        "eeg_stream": {"name": info.name, "source_id": info.source_id or "",
                       "sfreq": info.sfreq, "n_channels": info.n_channels},
        "window": {"mode": cfg.window.mode, "length": cfg.window.length},
    }
    return DecodedOutlets(cfg.output.lsl_name or info.name, info.source_id or info.name,
                          metadata=metadata, channel_map=session.channel_map, dim=dim,
                          lsl_clock=isinstance(session.source, LSLSource))


def image_file(recorder: Any, result: Any) -> str | None:
    """The first image file the recorder writes for ``result`` (None: not recording)."""
    if recorder is None or not result.images:
        return None
    from dd_live.recording import IMAGES_FOLDER

    return str(Path(recorder.folder) / IMAGES_FOLDER / f"{result.index:04d}.png")
