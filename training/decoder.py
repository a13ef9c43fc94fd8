"""A personal embedding-route model from calibration data, on a CPU. ``python -m training.decoder --help``.

EEG windows (exactly the live app's, through :class:`~training.data.calibration.CalibrationPairs`)
are paired with the frozen image embeddings of the images they show (OpenCLIP ViT-H/14 by
default, the space IP-Adapter SD 1.5 is conditioned on; the tiny embedder when its weights are
not on this machine). The images are split three ways: the session's ``test`` images (never
used for choosing anything), and its ``train`` images, of which ``--val-fraction`` are held out
for validation. Each decoder asked for (``--model ridge|conv|dreamdiffusion|all``) is trained on
the training images; the one with the best validation 2-way identification is kept. A ridge
low-level head (thumbnail; a coarse VAE latent with ``--vae``) is fitted beside it.

Output: ``OUT/model/`` (see :mod:`dd_live.decoders.model`): ``dd_live.json``, ``decoder/``,
``lowlevel/``, ``gallery/`` (the session's images and their embeddings), ``image_embedder.json``
and ``README.md`` (the model card with every decoder's figures); ``OUT/results.json`` holds the
same figures, and ``OUT/decoders/NAME/`` every decoder tried. ``dd-live run --model OUT/model``
runs it.

Several people (ENIGMA's protocol): ``--data A B C`` (one path per person: a session folder or a
folder of that person's sessions) or ``--data things-eeg2:ROOT --subject 1,2,3`` trains one conv
backbone with an alignment layer per person; ``--init MODEL`` then fits only a new person's
alignment layer and projector, the backbone of ``MODEL`` frozen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dd_live.decoders import EmbedderSpec, Gallery, LowLevelHead, RidgeDecoder
from dd_live.decoders.base import auto_pool, read_meta
from dd_live.decoders.conv import MAX_PARAMETERS, ConvConfig, ConvDecoder
from dd_live.decoders.dreamdiffusion import DreamDiffusionDecoder
from dd_live.decoders.gallery import centred_unit
from dd_live.decoders.lowlevel import PICTURE_SIZE, thumbnail
from dd_live.decoders.model import (
    DECODER_FOLDER,
    DECODER_KINDS,
    GALLERY_FOLDER,
    LOWLEVEL_FOLDER,
    ROUTE,
    SETTINGS_FILE,
    load_decoder,
)
from dd_live.decoders.ridge import fit_ridge
from dd_live.errors import ConfigError
from training.metrics import grey, identification, pixcorr, ssim
from training.models import IMAGE_EMBEDDER_FILE, IMAGE_EMBEDDER_WEIGHTS, ClipAlignLoss, build_clip

logger = logging.getLogger(__name__)

MODEL = "model"
RESULTS = "results.json"
EMBEDDING_CACHE = "image_embeddings.npz"
TRIED = "decoders"
MODEL_CHOICES = ("ridge", "conv", "dreamdiffusion", "all")
#: The default target space: IP-Adapter SD 1.5's image encoder.
DEFAULT_EMBEDDER = ("ViT-H-14", "laion2b_s32b_b79k")
HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
TINY_EMBEDDER = "dd-live-tiny-clip"
#: Features the ridge decoder and the low-level head take at most (time bins are widened to fit).
RIDGE_MAX_FEATURES = 1024
#: Side of the low-level thumbnail target, and of the coarse latent (VAE images are encoded at
#: ``LATENT_IMAGE_SIZE`` px, i.e. a 16 x 16 SD latent, then pooled).
THUMBNAIL_SIZE = 8
LATENT_SIZE = 4
LATENT_IMAGE_SIZE = 128
#: Input samples are a multiple of this (the DreamDiffusion encoder's patch size divides it).
TIME_MULTIPLE = 8
EMBED_BATCH = 16


@dataclass
class Person:
    """One person's windows. ``eeg [n, C, T]``, ``image [n]`` (global image index)."""

    name: str
    eeg: np.ndarray
    image: np.ndarray
    ch_names: tuple[str, ...] = ()

    def rows(self, split: np.ndarray, which: str) -> np.ndarray:
        """Indices of this person's trials whose image is in split ``which``."""
        return np.flatnonzero(split[self.image] == which)


@dataclass
class DecoderData:
    """Everything training needs. ``split [n_images]``: "train" / "val" / "test" per image."""

    people: list[Person]
    image_paths: list[Path]
    image_keys: list[str]
    split: np.ndarray
    sfreq: float
    gallery_images: list[int] = field(default_factory=list)  # indices copied into gallery/

    @property
    def n_channels(self) -> int:
        return int(self.people[0].eeg.shape[1])

    @property
    def n_times(self) -> int:
        return int(self.people[0].eeg.shape[2])


# ----------------------------------------------------------------------------- data


def native_n_times(folder: Path, n_times: int | None = None) -> tuple[int, float]:
    """``(n_times, sfreq)``: the session's window length in samples at its own rate, rounded to a
    multiple of :data:`TIME_MULTIPLE` (or ``n_times`` when given); and the rate of those samples."""
    from dd_live.calibration import CALIBRATION_FILE
    from dd_live.config import AppConfig
    from dd_live.recording import CONFIG_FILE

    config = AppConfig.from_toml(folder / CONFIG_FILE) if (folder / CONFIG_FILE).is_file() else AppConfig()
    meta = json.loads((folder / CALIBRATION_FILE).read_text()) if (folder / CALIBRATION_FILE).is_file() else {}
    sfreq = float(meta.get("source", {}).get("sfreq") or 0.0)
    if not sfreq:
        from dd_live.sources.readers import read_recording

        sfreq = float(read_recording(folder).sfreq)
    if n_times is None:
        n_times = max(TIME_MULTIPLE, int(round(config.window.length * sfreq / TIME_MULTIPLE)) * TIME_MULTIPLE)
    return n_times, n_times / config.window.length


def eeg_names(folder: Path) -> tuple[str, ...]:
    from dd_live.sources.readers import read_recording

    recording = read_recording(folder)
    return tuple(n for n, k in zip(recording.ch_names, recording.ch_types, strict=True) if k.lower() == "eeg")


def load_calibration(paths: list[str], n_times: int | None, val_fraction: float, seed: int) -> DecoderData:
    """One :class:`Person` per path (a session folder or a folder of one person's sessions)."""
    from dd_live.calibration import CalibrationSession
    from training.data.calibration import CalibrationPairs, find_sessions

    folders = [find_sessions(p) for p in paths]
    n_times, sfreq = native_n_times(folders[0][0], n_times)
    keys: list[str] = []
    image_paths: list[Path] = []
    test_keys: set[str] = set()
    people = []
    for path, sessions in zip(paths, folders, strict=True):
        for folder in sessions:
            test_keys.update(r["sha256"] for r in CalibrationSession.open(folder).rows if r["split"] == "test")
        pairs = CalibrationPairs([str(s) for s in sessions], "all", None, n_times)
        index = []
        for key, image_path in zip(pairs.image_keys, pairs.image_paths, strict=True):
            if key not in keys:
                keys.append(key)
                image_paths.append(image_path)
            index.append(keys.index(key))
        people.append(Person(Path(path).name or str(path), pairs.eeg, np.asarray(index)[pairs.labels],
                             eeg_names(sessions[0])))
    split = np.array(["test" if k in test_keys else "train" for k in keys], dtype=object)
    assign_validation(split, val_fraction, seed)
    return DecoderData(people, image_paths, keys, split, sfreq, list(range(len(keys))))


def load_things(root: str, subjects: list[int], n_times: int | None, val_fraction: float,
                seed: int) -> DecoderData:
    """THINGS-EEG2 subjects (single trials of both splits); the gallery is the test images."""
    from dd_live.config import WindowConfig
    from training.data.things_eeg2 import ThingsEEG2, parse_things_spec

    window = WindowConfig()
    n_times = n_times or 48  # 100 Hz data: a 0.44 s window is 44 samples, rounded up
    keys: list[str] = []
    image_paths: list[Path] = []
    splits: list[str] = []
    people = []
    for subject in subjects:
        eeg, images = [], []
        for part in ("train", "test"):
            data = ThingsEEG2(parse_things_spec(root), subject, part, n_times, window=window,
                              average_repeats=False)
            for image_id in data.image_ids:
                key = str(data.paths[image_id])
                if key not in keys:
                    keys.append(key)
                    image_paths.append(data.paths[image_id])
                    splits.append("test" if part == "test" else "train")
            eeg.append(data.eeg.astype(np.float32))
            images.append(np.array([keys.index(str(data.paths[i])) for i in data.labels]))
        people.append(Person(f"sub-{subject:02d}", np.concatenate(eeg), np.concatenate(images),
                             tuple(data.ch_names)))
    split = np.array(splits, dtype=object)
    assign_validation(split, val_fraction, seed)
    gallery = [i for i, s in enumerate(splits) if s == "test"]
    return DecoderData(people, image_paths, keys, split, n_times / window.length, gallery)


def assign_validation(split: np.ndarray, fraction: float, seed: int) -> None:
    """Mark ``fraction`` of the training images (at least 2) ``"val"``, in place, by image."""
    train = np.flatnonzero(split == "train")
    if len(train) < 4:
        raise ConfigError(f"the data shows {len(train)} training images; a decoder needs at least 4 "
                          "(record a longer calibration, with more images)")
    n_val = min(len(train) - 2, max(2, int(round(fraction * len(train)))))
    chosen = np.random.default_rng(seed).choice(train, n_val, replace=False)
    split[chosen] = "val"


# ----------------------------------------------------------------------------- embedder


def hub_weights(name: str, tag: str) -> Path | None:
    """The open_clip weights ``name``/``tag`` in the local Hugging Face hub cache, or None
    (looked up offline: nothing is downloaded)."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    config = open_clip.get_pretrained_cfg(name, tag) or {}
    repo = str(config.get("hf_hub") or "").strip("/")
    if not repo:
        return None
    for filename in HUB_FILES:
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def hub_repo(name: str, tag: str) -> str:
    import open_clip

    return str((open_clip.get_pretrained_cfg(name, tag) or {}).get("hf_hub") or "").strip("/")


def tag_of_file(name: str, path: Path) -> str:
    """The open_clip tag whose hub repository holds ``path`` (a file in the hub cache), else the
    file's name: the embedder id names what the vectors mean."""
    import open_clip

    for tag in open_clip.list_pretrained_tags_by_model(name):
        repo = hub_repo(name, tag)
        if repo and f"models--{repo.replace('/', '--')}" in str(path.resolve()):
            return tag
    return path.name


@dataclass
class Embedder:
    """The frozen image embedder: open_clip ``name`` with ``weights`` (a file or None: random)."""

    spec: EmbedderSpec
    weights: str | None
    config_file: Path | None = None

    def build(self):
        return build_clip(self.spec.name, self.weights, str(self.config_file) if self.config_file else None)


def resolve_embedder(name: str | None, weights: str | None, seed: int) -> Embedder:
    """The embedder to decode into: ``--embedder`` / ``--embedder-weights``, else ViT-H/14 when
    its weights are on this machine, else the tiny embedder (with a one-line warning)."""
    from training.models import ASSETS

    if name is None and weights is None:
        found = hub_weights(*DEFAULT_EMBEDDER)
        if found is not None:
            return Embedder(EmbedderSpec(DEFAULT_EMBEDDER[0], DEFAULT_EMBEDDER[1], 1024,
                                         "/".join(DEFAULT_EMBEDDER)), str(found))
        logger.warning(
            "OpenCLIP %s (%s) weights are not on this machine: decoding into the tiny embedder %s "
            "instead: retrieval in the session's gallery and the low-level picture work, real "
            "IP-Adapter images need ViT-H/14 (huggingface-cli download %s open_clip_model.safetensors)",
            *DEFAULT_EMBEDDER, TINY_EMBEDDER, hub_repo(*DEFAULT_EMBEDDER))
        name = TINY_EMBEDDER
    name = name or DEFAULT_EMBEDDER[0]
    config_file = ASSETS / f"{name}.json" if (ASSETS / f"{name}.json").is_file() else None
    if config_file is not None:
        dim = int(json.loads(config_file.read_text())["embed_dim"])
    else:
        import open_clip

        if name not in open_clip.list_models():
            raise ConfigError(f"--embedder {name!r} is not an open_clip model (e.g. ViT-H-14, ViT-B-32)")
        dim = int(open_clip.get_model_config(name)["embed_dim"])
    if weights is None:
        if config_file is None:
            raise ConfigError(f"--embedder {name} needs --embedder-weights (a file or an open_clip tag)")
        return Embedder(EmbedderSpec(name, IMAGE_EMBEDDER_WEIGHTS, dim, f"{name}/random-seed{seed}"), None,
                        config_file)
    path = Path(weights).expanduser()
    if path.is_file():
        tag = tag_of_file(name, path)
        return Embedder(EmbedderSpec(name, tag, dim, f"{name}/{tag}"), str(path.resolve()), config_file)
    found = hub_weights(name, weights)
    if found is None:
        repo = hub_repo(name, weights)
        fetch = f"huggingface-cli download {repo} open_clip_model.safetensors" if repo else "download them"
        raise ConfigError(f"--embedder-weights {weights}: neither a file nor {name}/{weights} weights in "
                          f"the local hub cache (nothing is downloaded); {fetch}, or give the file")
    return Embedder(EmbedderSpec(name, weights, dim, f"{name}/{weights}"), str(found), config_file)


def embedder_of_model(folder: Path) -> Embedder:
    """The embedder a model folder decodes into (``--init``: the new person's model uses it too)."""
    from training.models import ASSETS

    settings = json.loads((folder / SETTINGS_FILE).read_text())
    spec = EmbedderSpec.from_dict(settings["embedder"])
    entry = json.loads((folder / IMAGE_EMBEDDER_FILE).read_text())
    weights = entry.get("clip_pretrained")
    if weights and (folder / weights).is_file():
        weights = str(folder / weights)
    config_file = ASSETS / f"{spec.name}.json"
    return Embedder(spec, weights, config_file if config_file.is_file() else None)


@torch.no_grad()
def embed_images(embedder: Embedder, paths: list[Path], keys: list[str], cache: Path,
                 seed: int) -> tuple[np.ndarray, object]:
    """``[n, dim]`` raw image embeddings (cached in ``cache`` by embedder id and image keys), and
    the built open_clip model (None when everything came from the cache)."""
    from PIL import Image

    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            if str(data["embedder"]) == embedder.spec.id and list(data["keys"]) == keys:
                return data["embeddings"].astype(np.float32), None
    torch.manual_seed(seed)  # a random embedder is the same for one seed
    model, preprocess = embedder.build()
    rows = []
    for start in tqdm(range(0, len(paths), EMBED_BATCH), desc="embedding images", leave=False):
        pixels = []
        for path in paths[start:start + EMBED_BATCH]:
            with Image.open(path) as image:
                pixels.append(preprocess(image.convert("RGB")))
        rows.append(model.encode_image(torch.stack(pixels)).float().numpy())
    embeddings = np.concatenate(rows).astype(np.float32)
    np.savez(cache, embedder=np.array(embedder.spec.id), keys=np.array(keys), embeddings=embeddings)
    return embeddings, model


# ----------------------------------------------------------------------------- training


@dataclass
class Tried:
    """One trained decoder and its figures."""

    name: str
    decoder: object
    train_seconds: float
    figures: dict = field(default_factory=dict)


def predict(decoder, eeg: np.ndarray, subject: int = 0) -> np.ndarray:
    """``[n, C, T]`` -> ``[n, dim]`` raw embeddings, as the model folder's decoder computes them."""
    if isinstance(decoder, RidgeDecoder):
        return decoder.predict(eeg)
    decoder.eval()
    kwargs = {"subject": subject} if isinstance(decoder, ConvDecoder) else {}
    out = []
    with torch.inference_mode():
        for start in range(0, len(eeg), 512):
            out.append(decoder.embed(torch.from_numpy(eeg[start:start + 512]), **kwargs).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, decoder.target.mean.numel()), np.float32)


def score_split(data: DecoderData, embeddings: np.ndarray, center: np.ndarray, decoder, which: str) -> dict:
    """n-way identification of ``which``'s single trials among ``which``'s images (all people)."""
    images = np.flatnonzero(data.split == which)
    if len(images) < 2:
        return {}
    gallery = centred_unit(embeddings[images], center)
    scores, truth = [], []
    lookup = {int(g): j for j, g in enumerate(images)}
    for s, person in enumerate(data.people):
        rows = person.rows(data.split, which)
        if len(rows):
            scores.append(centred_unit(predict(decoder, person.eeg[rows], s), center) @ gallery.T)
            truth.extend(lookup[int(i)] for i in person.image[rows])
    if not scores:
        return {}
    result = identification(np.concatenate(scores), np.asarray(truth))
    return {**result, "n_way": int(len(images)), "n_trials": int(len(truth))}


def train_ridge(data: DecoderData, targets: np.ndarray, alphas=None) -> RidgeDecoder:
    if len({p.eeg.shape[1:] for p in data.people}) > 1:
        raise ConfigError("ridge pools every person's trials, so they need one montage; use --model conv")
    eeg = np.concatenate([p.eeg[p.rows(data.split, "train")] for p in data.people])
    images = np.concatenate([p.image[p.rows(data.split, "train")] for p in data.people])
    pool = auto_pool(eeg.shape[1], eeg.shape[2], RIDGE_MAX_FEATURES)
    kwargs = {} if alphas is None else {"alphas": alphas}
    return RidgeDecoder.fit(eeg, targets[images], images, pool, **kwargs)


@dataclass(frozen=True)
class TorchSettings:
    """The small torch decoders' training (AdamW, InfoNCE + MSE to the target space, early stop)."""

    epochs: int = 30
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 6
    temperature: float = 0.07
    mse_weight: float = 1.0
    eeg_noise: float = 0.1
    seed: int = 0
    budget: float = 30.0  # s: no epoch starts after this (a 15-minute calibration in ~2 min)


def train_torch(decoder: torch.nn.Module, data: DecoderData, embeddings: np.ndarray, center: np.ndarray,
                settings: TorchSettings, name: str) -> torch.nn.Module:
    """Train ``decoder``'s trainable parameters; keep the state of the best validation epoch
    (2-way identification among the validation images)."""
    torch.manual_seed(settings.seed)
    train_images = np.flatnonzero(data.split == "train")
    decoder.target.set(torch.from_numpy(embeddings[train_images]))
    z = decoder.target.to_z(torch.from_numpy(embeddings))  # [n_images, dim]
    params = [p for p in decoder.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    loss_fn = ClipAlignLoss("infonce", settings.temperature)
    frozen = [m for m in decoder.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
              and not any(p.requires_grad for p in m.parameters())]
    rows = [(s, p.rows(data.split, "train")) for s, p in enumerate(data.people)]
    rng = np.random.default_rng(settings.seed)
    tensors = [torch.from_numpy(p.eeg) for p in data.people]
    best, best_state, waited = -1.0, None, 0
    is_conv = isinstance(decoder, ConvDecoder)
    bar = tqdm(range(settings.epochs), desc=f"training {name}", leave=False)
    n_epochs, started = 0, time.perf_counter()
    for epoch in bar:
        if time.perf_counter() - started > settings.budget:
            logger.info("%s: stopped after %d epochs, its %.0f s budget spent (--budget)", name, n_epochs,
                        settings.budget)
            break
        n_epochs = epoch + 1
        decoder.train()
        for module in frozen:  # a frozen backbone keeps its normalisation statistics too
            module.eval()
        batches = [(s, chunk) for s, r in rows
                   for chunk in np.array_split(rng.permutation(r), max(1, len(r) // settings.batch_size))]
        for b in rng.permutation(len(batches)):
            s, chunk = batches[b]
            if len(chunk) < 2:
                continue
            eeg = tensors[s][chunk]
            if settings.eeg_noise:
                eeg = eeg + settings.eeg_noise * torch.randn_like(eeg)
            target = z[data.people[s].image[chunk]]
            out = decoder(eeg, subject=s) if is_conv else decoder(eeg)
            loss = loss_fn(out, target)["loss_clip"] + settings.mse_weight * F.mse_loss(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        val = score_split(data, embeddings, center, decoder, "val")
        score = val.get("two_way", 0.0) + 1e-3 * val.get("top1", 0.0)
        bar.set_postfix(loss=f"{loss.item():.3f}", val_2way=f"{val.get('two_way', 0):.3f}")
        if score > best:
            best, waited = score, 0
            best_state = {k: v.detach().clone() for k, v in decoder.state_dict().items()}
        else:
            waited += 1
            if waited >= settings.patience:
                break
    decoder.load_state_dict(best_state)
    logger.info("%s: best validation 2-way %.3f after %d epochs", name, best, n_epochs)
    return decoder.eval()


def build_conv(data: DecoderData, dim: int, init: Path | None) -> ConvDecoder:
    """A new conv decoder, or (``init``) a new person's on ``init``'s frozen backbone."""
    names = tuple(p.name for p in data.people)
    channels = tuple(int(p.eeg.shape[1]) for p in data.people)
    if init is None:
        return ConvDecoder(ConvConfig(subject_channels=channels, subjects=names, n_channels=max(channels),
                                      n_times=data.n_times, dim=dim))
    base = load_decoder(init / DECODER_FOLDER)
    if not isinstance(base, ConvDecoder):
        raise ConfigError(f"--init {init}: its decoder is {base.kind!r}; a new person is fitted on a conv "
                          "decoder's backbone (train the group with --model conv)")
    c = base.config
    if c.n_times != data.n_times or c.dim != dim:
        raise ConfigError(f"--init {init} takes windows of {c.n_times} samples into {c.dim}-d vectors; "
                          f"this data has {data.n_times} samples and the embedder {dim}-d (use --n-times "
                          f"{c.n_times} and the same embedder)")
    config = ConvConfig(subject_channels=channels, subjects=names, n_channels=c.n_channels, n_times=c.n_times,
                        dim=c.dim, n_filters=c.n_filters, kernel=c.kernel, n_bins=c.n_bins, dropout=c.dropout)
    decoder = ConvDecoder(config)
    decoder.backbone.load_state_dict(base.backbone.state_dict())
    decoder.projector.load_state_dict(base.projector.state_dict())  # a start; trained again
    decoder.backbone.requires_grad_(False)
    return decoder


def build_dreamdiffusion(data: DecoderData, dim: int, preset: str, init_encoder: str | None):
    """The DreamDiffusion encoder + projection; ``init_encoder`` (a checkpoint, or ``demo``)
    gives its architecture and weights."""
    from dd_live.model import get_preset
    from training.models import pretrained_encoder

    if init_encoder:
        if init_encoder == "demo":
            from dd_live.assets import demo_model_dir

            init_encoder = str(demo_model_dir() / "conditioner")
        encoder = pretrained_encoder(init_encoder)  # its own channels, length and size
        decoder = DreamDiffusionDecoder(encoder.config, data.n_channels, dim)
        decoder.encoder.load_state_dict(encoder.state_dict())
        return decoder
    import dataclasses

    config = dataclasses.replace(get_preset(preset, "encoder"), n_channels=data.n_channels,
                                 n_times=data.n_times)
    return DreamDiffusionDecoder(config, data.n_channels, dim)


def encoder_n_times(init_encoder: str) -> int:
    """Samples per window the pretrained encoder ``init_encoder`` (or ``demo``) takes."""
    from training.models import pretrained_encoder

    if init_encoder == "demo":
        from dd_live.assets import demo_model_dir

        init_encoder = str(demo_model_dir() / "conditioner")
    return int(pretrained_encoder(init_encoder).config.n_times)


def fit_lowlevel(data: DecoderData, pool: int, vae_path: str | None) -> LowLevelHead:
    """The ridge low-level head on the training images' thumbnails (and coarse VAE latents)."""
    from PIL import Image

    train = np.flatnonzero(data.split == "train")
    thumbs = np.zeros((len(data.image_paths), THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3), np.float32)
    for i in train:
        with Image.open(data.image_paths[i]) as image:
            thumbs[i] = thumbnail(image, THUMBNAIL_SIZE)
    people = [p for p in data.people if p.eeg.shape[1] == data.n_channels]
    eeg = np.concatenate([p.eeg[p.rows(data.split, "train")] for p in people])
    images = np.concatenate([p.image[p.rows(data.split, "train")] for p in people])
    from dd_live.decoders import pooled_features

    features = pooled_features(eeg, pool)
    weight, bias, alpha = fit_ridge(features, thumbs[images].reshape(len(images), -1), images)
    arrays = {"rgb_weight": weight, "rgb_bias": bias}
    config = {"n_channels": data.n_channels, "n_times": data.n_times, "pool": pool,
              "rgb_shape": [THUMBNAIL_SIZE, THUMBNAIL_SIZE, 3], "latent_shape": None, "alpha": alpha,
              "picture_size": PICTURE_SIZE}
    if vae_path:
        latents, scaling = coarse_latents(vae_path, [data.image_paths[i] for i in train])
        table = np.zeros((len(data.image_paths), *latents.shape[1:]), np.float32)
        table[train] = latents
        weight, bias, latent_alpha = fit_ridge(features, table[images].reshape(len(images), -1), images)
        arrays.update(latent_weight=weight, latent_bias=bias)
        config.update(latent_shape=list(latents.shape[1:]), latent_alpha=latent_alpha, scaling_factor=scaling,
                      vae=str(vae_path))
    return LowLevelHead(arrays, config)


@torch.no_grad()
def coarse_latents(vae_path: str, paths: list[Path]) -> tuple[np.ndarray, float]:
    """``[n, 4, LATENT_SIZE, LATENT_SIZE]`` SD VAE latents (mean, scaled) of the images, pooled."""
    from diffusers import AutoencoderKL
    from PIL import Image

    folder = Path(vae_path)
    if (folder / "vae").is_dir():
        folder = folder / "vae"
    try:
        vae = AutoencoderKL.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--vae {vae_path}: not a diffusers VAE folder (or an SD folder with vae/): "
                          f"{exc}") from None
    scaling = float(vae.config.scaling_factor)
    out = []
    for start in tqdm(range(0, len(paths), EMBED_BATCH), desc="VAE latents", leave=False):
        batch = []
        for path in paths[start:start + EMBED_BATCH]:
            with Image.open(path) as image:
                pixels = image.convert("RGB").resize((LATENT_IMAGE_SIZE,) * 2, Image.Resampling.BICUBIC)
            batch.append(torch.from_numpy(np.asarray(pixels, np.float32) / 127.5 - 1).permute(2, 0, 1))
        latent = vae.encode(torch.stack(batch)).latent_dist.mean * scaling
        out.append(F.adaptive_avg_pool2d(latent, LATENT_SIZE).numpy())
    return np.concatenate(out).astype(np.float32), scaling


def lowlevel_figures(head: LowLevelHead, data: DecoderData, which: str = "test", seed: int = 0) -> dict:
    """PixCorr and SSIM of the low-level pictures of ``which``'s trials, beside shuffled pairs."""
    from PIL import Image

    person = data.people[0]
    rows = person.rows(data.split, which)
    if not len(rows) or person.eeg.shape[1] != head.n_channels:
        return {}
    pictures = np.stack([np.asarray(head(person.eeg[r]).picture, np.float32) / 255 for r in rows])
    truths = {}
    for i in set(person.image[rows].tolist()):
        with Image.open(data.image_paths[i]) as image:
            truths[i] = np.asarray(image.convert("RGB").resize(pictures.shape[1:3], Image.Resampling.BICUBIC),
                                   np.float32) / 255
    truth = np.stack([truths[i] for i in person.image[rows]])
    shuffled = truth[np.random.default_rng(seed).permutation(len(truth))]
    return {"pixcorr": pixcorr(pictures, truth), "ssim": ssim(grey(pictures), grey(truth)),
            "shuffled_pixcorr": pixcorr(pictures, shuffled), "shuffled_ssim": ssim(grey(pictures), grey(shuffled))}


# ----------------------------------------------------------------------------- output


def gallery_name(key_or_path: str, path: Path) -> str:
    """A gallery file name: the first 16 hex digits of the image's content hash + its suffix."""
    digest = key_or_path if len(key_or_path) == 64 and all(c in "0123456789abcdef" for c in key_or_path) \
        else hashlib.sha256(path.read_bytes()).hexdigest()
    return f"{digest[:16]}{path.suffix.lower()}"


def write_model(out: Path, data: DecoderData, embedder: Embedder, clip_model, embeddings: np.ndarray,
                center: np.ndarray, kept: Tried, head: LowLevelHead, tried: list[Tried], lowlevel: dict,
                seed: int) -> Path:
    """``out/model/`` whole or not at all (written beside it, then moved)."""
    from training.common import replace_folder
    from training.models import save_image_embedder

    final = out / MODEL
    tmp = out / (MODEL + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    kept.decoder.save(tmp / DECODER_FOLDER)
    if isinstance(kept.decoder, torch.nn.Module):
        export_decoder(kept.decoder, tmp / DECODER_FOLDER, final)
    head.save(tmp / LOWLEVEL_FOLDER)
    paths = []
    (tmp / GALLERY_FOLDER).mkdir()
    for i in data.gallery_images:
        name = gallery_name(data.image_keys[i], data.image_paths[i])
        shutil.copyfile(data.image_paths[i], tmp / GALLERY_FOLDER / name)
        paths.append(tmp / GALLERY_FOLDER / name)
    Gallery(paths, embeddings[data.gallery_images], embedder.spec.id, center).save(tmp / GALLERY_FOLDER)
    if clip_model is None and embedder.weights is None:  # random tiny embedder, cached: rebuild it
        torch.manual_seed(seed)
        clip_model, _ = embedder.build()
    if clip_model is not None or embedder.weights is not None:
        save_image_embedder(tmp, clip_model, embedder.spec.name, embedder.weights,
                            str(embedder.config_file) if embedder.config_file else None)
    person = data.people[0]
    settings = {
        "route": ROUTE,
        "description": f"personal model: {kept.name} decoder into {embedder.spec.id}, "
                       f"{sum(len(p.eeg) for p in data.people)} trials of {len(data.image_keys)} images",
        "channels": list(person.ch_names) if len(person.ch_names) == data.n_channels else [],
        "sfreq": float(data.sfreq),
        "n_times": data.n_times,
        "embedder": embedder.spec.to_dict(),
        "decoder": kept.name,
        "subjects": [p.name for p in data.people],
        # no [generator] ip_adapter_embedder here: the renderer's space is the IP-Adapter
        # weights' (ViT-H-14 for ip-adapter_sd15), checked against this folder's at start
        "generator": {},
    }
    (tmp / SETTINGS_FILE).write_text(json.dumps(settings, indent=1) + "\n")
    (tmp / "README.md").write_text(model_card(settings, data, kept, tried, lowlevel, head))
    replace_folder(tmp, final)
    return final


class _Embedding(torch.nn.Module):
    """A torch decoder's ``embed`` as the module exported: ``eeg [1, C, T] -> [1, dim]``."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, eeg: torch.Tensor) -> torch.Tensor:
        return self.decoder.embed(eeg)


def export_decoder(decoder: torch.nn.Module, folder: Path, model: Path | None = None) -> Path | None:
    """``folder/model.onnx`` beside the decoder's saved weights (``folder/model.safetensors``,
    which the graph reads in place), for ONNX Runtime at run time (:mod:`dd_live.decoders.onnx_decoder`).

    An export that fails (no ``onnx`` / ``onnxscript``, an operator the exporter cannot take, a
    graph that differs from the module) is logged and left out: the decoder still runs on torch,
    and ``python -m training.decoder --export-onnx MODEL`` tries again. Returns the file or None.
    """
    from dd_live.decoders.onnx_decoder import INPUT, ONNX_FILE, OUTPUT, export_command

    path = folder / ONNX_FILE
    t0 = time.perf_counter()
    try:
        from training.onnx_export import export_graph

        export_graph(_Embedding(decoder.eval()), (torch.zeros(1, decoder.n_channels, decoder.n_times),),
                     path, [INPUT], [OUTPUT], folder / "model.safetensors")
    except Exception as exc:  # noqa: BLE001 - the model stays usable on torch
        path.unlink(missing_ok=True)
        logger.warning("the %s decoder was not exported to ONNX (%s: %s); it runs on torch; retry "
                       "with %s", decoder.kind, type(exc).__name__, exc,
                       export_command(model or folder.parent))
        return None
    logger.info("exported the %s decoder to %s in %.1f s", decoder.kind, path, time.perf_counter() - t0)
    return path


def export_model_folder(model: Path) -> Path:
    """``--export-onnx MODEL``: write ``MODEL/decoder/model.onnx`` for a model folder's torch decoder."""
    from dd_live.decoders.onnx_decoder import TORCH_KINDS

    folder = Path(model) / DECODER_FOLDER
    kind, _ = read_meta(folder, DECODER_KINDS)
    if kind not in TORCH_KINDS:
        raise ConfigError(f"{model}: its decoder is {kind!r}, which runs with NumPy; there is "
                          f"nothing to export (only {' and '.join(TORCH_KINDS)} decoders have a graph)")
    path = export_decoder(load_decoder(folder, "torch"), folder, model)
    if path is None:
        raise ConfigError(f"{model}: the {kind} decoder could not be exported to ONNX (see the log "
                          "above); it runs on torch")
    return path


def figures_row(t: Tried) -> str:
    f = t.figures
    cells = [t.name, f"{f['parameters']:,}", f"{t.train_seconds:.1f}"]
    for which in ("val", "test"):
        s = f.get(which, {})
        cells += [f"{s[k]:.3f}" if k in s else "-" for k in ("top1", "top5", "two_way")]
    return "| " + " | ".join(cells) + " |"


def model_card(settings: dict, data: DecoderData, kept: Tried, tried: list[Tried], lowlevel: dict,
               head: LowLevelHead) -> str:
    n = {w: int((data.split == w).sum()) for w in ("train", "val", "test")}
    lines = [
        "# Personal embedding-route model", "",
        settings["description"] + ".", "",
        f"- embedder (target space): `{settings['embedder']['id']}` ({settings['embedder']['dim']}-d)",
        f"- input: {data.n_channels} channels x {data.n_times} samples ({data.sfreq:g} Hz)",
        f"- people: {', '.join(settings['subjects'])}",
        f"- images: {n['train']} training, {n['val']} validation (choose the decoder), "
        f"{n['test']} test (never used for choosing)",
        f"- kept decoder: **{kept.name}** (best validation 2-way identification)", "",
        "## Decoders tried", "",
        "Single-trial n-way identification among the split's images (chance top-1 = 1/n, 2-way = 0.5).",
        "",
        "| decoder | parameters | train s | val top-1 | val top-5 | val 2-way | test top-1 | test top-5 "
        "| test 2-way |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        *[figures_row(t) for t in tried], "",
        f"n-way: val {tried[0].figures.get('val', {}).get('n_way', '-')}, "
        f"test {tried[0].figures.get('test', {}).get('n_way', '-')}.", "",
        "## Low-level head", "",
        f"Ridge to a {head.rgb_shape[0]} x {head.rgb_shape[1]} RGB thumbnail"
        + (f" and a {list(head.latent_shape)} VAE latent" if head.latent_shape else "")
        + f" ({head.n_parameters:,} parameters).", "",
    ]
    if lowlevel:
        lines += ["| test, single trial | PixCorr | SSIM |", "| --- | --- | --- |",
                  f"| low-level picture | {lowlevel['pixcorr']:.3f} | {lowlevel['ssim']:.3f} |",
                  f"| shuffled pairs | {lowlevel['shuffled_pixcorr']:.3f} | {lowlevel['shuffled_ssim']:.3f} |",
                  ""]
    lines += ["Evaluate again with `python -m training.evaluate --model MODEL --data SESSION "
              "--metric retrieval,lowlevel`; run live with `dd-live run --model MODEL`.", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def parse_subjects(text: str | None) -> list[int]:
    if text is None:
        return []
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--subject {text!r}: give subject numbers, e.g. 1 or 1,2,3") from None


def main(argv: list[str] | None = None) -> Path:
    """Train, choose, write ``OUT/model``; return that folder."""
    parser = argparse.ArgumentParser(prog="python -m training.decoder", description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+",
                        help="calibration session folder(s): one path per person (a session or a folder "
                        "of that person's sessions); or things-eeg2:ROOT with --subject")
    parser.add_argument("--output-dir", type=Path)
    parser.add_argument("--model", choices=MODEL_CHOICES, default="all", help="which decoders to train")
    parser.add_argument("--embedder", default=None, help="open_clip model of the target space (default "
                        f"{DEFAULT_EMBEDDER[0]} when its weights are found offline, else {TINY_EMBEDDER})")
    parser.add_argument("--embedder-weights", default=None, help="a weights file or an open_clip tag found "
                        f"in the hub cache (default {DEFAULT_EMBEDDER[1]})")
    parser.add_argument("--init", type=Path, default=None, help="a model folder with a conv decoder: fit only "
                        "the new person's alignment layer and projector on its frozen backbone")
    parser.add_argument("--init-encoder", default=None, help="dreamdiffusion: a pretrained EEG encoder "
                        "(checkpoint folder or release file) or 'demo'")
    parser.add_argument("--dd-preset", default="tiny", choices=("tiny", "small", "reference"),
                        help="dreamdiffusion without --init-encoder: the encoder's size")
    parser.add_argument("--subject", default=None, help="THINGS-EEG2 subjects, e.g. 1 or 1,2,3")
    parser.add_argument("--n-times", type=int, default=None, help="samples per window (default: the "
                        "session's window at its own rate)")
    parser.add_argument("--vae", default=None, help="an SD VAE (diffusers folder, or an SD folder with vae/): "
                        "the low-level head also predicts a coarse latent, the img2img start")
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--epochs", type=int, default=TorchSettings.epochs)
    parser.add_argument("--budget", type=float, default=TorchSettings.budget,
                        help="seconds each torch decoder may train (no epoch starts after them)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export-onnx", type=Path, default=None, metavar="MODEL",
                        help="only export the torch decoder of an existing model folder to ONNX "
                        "(MODEL/decoder/model.onnx, for ONNX Runtime at run time)")
    args = parser.parse_args(argv)
    if args.export_onnx is not None:
        export_model_folder(args.export_onnx)
        return args.export_onnx
    if not args.data or args.output_dir is None:
        parser.error("the following arguments are required: --data, --output-dir (or --export-onnx MODEL)")
    if not 0 < args.val_fraction < 0.5:
        raise ConfigError(f"--val-fraction must be in (0, 0.5), got {args.val_fraction}")
    if args.epochs < 1:
        raise ConfigError(f"--epochs must be >= 1, got {args.epochs}")
    if args.budget <= 0:
        raise ConfigError(f"--budget must be > 0 seconds, got {args.budget}")
    if args.init is not None and not (args.init / DECODER_FOLDER).is_dir():
        raise ConfigError(f"--init {args.init} is not a model folder written by python -m training.decoder")

    if args.init_encoder and args.n_times is None and args.model in ("dreamdiffusion", "all"):
        args.n_times = encoder_n_times(args.init_encoder)  # the pretrained encoder's input length
    started, cpu_started = time.perf_counter(), time.process_time()
    things = [d for d in args.data if d.startswith("things-eeg2:")]
    if things:
        subjects = parse_subjects(args.subject)
        if len(args.data) > 1 or not subjects:
            raise ConfigError("--data things-eeg2:ROOT goes alone, with --subject N (or 1,2,3)")
        data = load_things(things[0], subjects, args.n_times, args.val_fraction, args.seed)
    else:
        data = load_calibration(args.data, args.n_times, args.val_fraction, args.seed)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    embedder = embedder_of_model(args.init) if args.init is not None else \
        resolve_embedder(args.embedder, args.embedder_weights, args.seed)
    embeddings, clip_model = embed_images(embedder, data.image_paths, data.image_keys,
                                          args.output_dir / EMBEDDING_CACHE, args.seed)
    center = embeddings[data.split == "train"].mean(0)
    logger.info("%d trials of %d images (%d people), embedded into %s in %.1f s",
                sum(len(p.eeg) for p in data.people), len(data.image_keys), len(data.people),
                embedder.spec.id, time.perf_counter() - started)

    names = ("ridge", "conv", "dreamdiffusion") if args.model == "all" else (args.model,)
    if args.init is not None:  # a new person on a group's backbone: the conv decoder alone
        if args.model not in ("conv", "all"):
            raise ConfigError(f"--init fits a conv decoder's alignment layer and projector; --model "
                              f"{args.model} cannot start from it (use --model conv)")
        names = ("conv",)
    if args.model == "all" and len({p.eeg.shape[1] for p in data.people}) > 1:
        names = ("conv", "dreamdiffusion")
    if args.model == "all" and len(data.people) > 1:
        names = tuple(n for n in names if n != "dreamdiffusion")  # one alignment per person: conv
    settings = TorchSettings(epochs=args.epochs, seed=args.seed, budget=args.budget)
    tried = []
    for name in names:
        t0 = time.perf_counter()
        if name == "ridge":
            decoder = train_ridge(data, embeddings)
        elif name == "conv":
            decoder = build_conv(data, embedder.spec.dim, args.init)
            decoder = train_torch(decoder, data, embeddings, center, settings, name)
        else:
            if len(data.people) > 1:
                raise ConfigError("the dreamdiffusion decoder is one person's; several people train --model conv")
            decoder = build_dreamdiffusion(data, embedder.spec.dim, args.dd_preset, args.init_encoder)
            if decoder.n_times != data.n_times:
                raise ConfigError(f"--init-encoder takes windows of {decoder.n_times} samples; give "
                                  f"--n-times {decoder.n_times}")
            decoder = train_torch(decoder, data, embeddings, center, settings, name)
        seconds = time.perf_counter() - t0
        if name == "conv" and decoder.n_parameters > MAX_PARAMETERS:
            logger.warning("the conv decoder has %d parameters, more than a small decoder's %d",
                           decoder.n_parameters, MAX_PARAMETERS)
        figures = {"parameters": int(decoder.n_parameters),
                   "val": score_split(data, embeddings, center, decoder, "val"),
                   "test": score_split(data, embeddings, center, decoder, "test")}
        tried.append(Tried(name, decoder, seconds, figures))
        logger.info("%s: %d parameters, %.1f s; validation %s", name, decoder.n_parameters, seconds,
                    figures["val"])
    kept = max(tried, key=lambda t: (t.figures["val"].get("two_way", 0), t.figures["val"].get("top1", 0)))
    t0 = time.perf_counter()
    pool = getattr(kept.decoder, "pool", None) or auto_pool(data.n_channels, data.n_times, RIDGE_MAX_FEATURES)
    head = fit_lowlevel(data, pool, args.vae)
    lowlevel_seconds = time.perf_counter() - t0
    lowlevel = lowlevel_figures(head, data, "test", args.seed)
    final = write_model(args.output_dir, data, embedder, clip_model, embeddings, center, kept, head, tried,
                        lowlevel, args.seed)
    results = {"kept": kept.name, "embedder": embedder.spec.to_dict(), "seconds_total": time.perf_counter() - started,
               "cpu_seconds_total": time.process_time() - cpu_started,
               "decoders": {t.name: {"train_seconds": t.train_seconds, **t.figures} for t in tried},
               "lowlevel": {"train_seconds": lowlevel_seconds, "parameters": head.n_parameters, **lowlevel}}
    (args.output_dir / RESULTS).write_text(json.dumps(results, indent=1))
    for t in tried:  # every decoder tried, for comparison (the model folder holds the kept one)
        t.decoder.save(args.output_dir / TRIED / t.name)
    logger.info("kept %s; wrote %s in %.1f s", kept.name, final, time.perf_counter() - started)
    return final


if __name__ == "__main__":
    from training.common import run_command

    run_command(main)
