"""Frozen training configs with named presets, and their command-line flags.

Every field becomes a flag (``lr`` -> ``--lr``, ``mixed_precision`` -> ``--mixed-precision``,
bools as ``--flag/--no-flag``); a flag given overrides the chosen ``--preset``. Configs are
saved as JSON beside checkpoints (``asdict``), never pickled.
"""

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from pathlib import Path

from dd_live.errors import ConfigError
from dd_live.model import PRESET_NAMES

MIXED_PRECISION = ("no", "bf16", "fp16")
SCHEDULES = ("cosine", "constant")
CLIP_LOSSES = ("auto", "cosine", "infonce", "infonce+cosine")
UNET_TRAINING = ("auto", "cross_attention", "all")
SYNTHETIC = "synthetic"


def _check_common(config) -> None:
    name = type(config).__name__
    if config.model not in PRESET_NAMES:
        raise ConfigError(f"{name}.model must be one of {PRESET_NAMES}, got {config.model!r}")
    if config.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"{name}.mixed_precision must be one of {MIXED_PRECISION}, got {config.mixed_precision!r}")
    if config.schedule not in SCHEDULES:
        raise ConfigError(f"{name}.schedule must be one of {SCHEDULES}, got {config.schedule!r}")
    for field in ("epochs", "batch_size", "grad_accum", "save_every"):
        if getattr(config, field) < 1:
            raise ConfigError(f"{name}.{field} must be >= 1, got {getattr(config, field)}")
    if not 0 <= config.warmup_epochs <= config.epochs:
        raise ConfigError(f"{name}.warmup_epochs must be in 0..epochs, got {config.warmup_epochs}")
    if not (config.lr > 0 and 0 <= config.min_lr <= config.lr):
        raise ConfigError(f"{name}: need lr > 0 and 0 <= min_lr <= lr, got {config.lr}, {config.min_lr}")
    if config.grad_clip < 0 or config.weight_decay < 0:
        raise ConfigError(f"{name}: grad_clip and weight_decay must be >= 0")
    if len(config.betas) != 2 or not all(0 <= b < 1 for b in config.betas):
        raise ConfigError(f"{name}.betas must be two numbers in [0, 1), got {config.betas}")


@dataclass(frozen=True)
class PretrainConfig:
    """Stage 1: masked-signal modelling of the EEG encoder (defaults: the reference's values).

    ``data``: ``("synthetic",)`` or EEG files / folders / ``moabb:NAME`` (cached in
    ``cache_dir``, default ``<output>/corpus``). ``live_preprocessing``: the files are replayed
    through the live app's filter, windows and preprocessor instead of the offline band-pass
    (``l_freq``/``h_freq``/``sfreq`` unused), with the settings of the dd-live config file
    ``live_config`` (default: the app's defaults). ``batch_size`` is per process; the global
    batch is ``batch_size * grad_accum * processes``. ``mixed_precision`` "no"/"bf16"/"fp16".
    """

    model: str = "reference"
    mask_ratio: float = 0.75
    epochs: int = 500
    warmup_epochs: int = 40
    schedule: str = "cosine"
    batch_size: int = 100
    grad_accum: int = 1
    lr: float = 2.5e-4
    min_lr: float = 0.0
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 0.8
    seed: int = 2022
    mixed_precision: str = "bf16"
    data: tuple[str, ...] = (SYNTHETIC,)
    cache_dir: str | None = None
    sfreq: float | None = None
    l_freq: float = 5.0
    h_freq: float = 95.0
    synthetic_windows: int = 2000
    synthetic_background: float = 1.0
    num_workers: int = 0
    save_every: int = 1
    live_preprocessing: bool = False
    live_config: str | None = None

    def __post_init__(self) -> None:
        _check_common(self)
        if not 0 < self.mask_ratio < 1:
            raise ConfigError(f"PretrainConfig.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not self.data:
            raise ConfigError("PretrainConfig.data needs 'synthetic' or at least one EEG file/folder")
        if self.live_preprocessing and self.data == (SYNTHETIC,):
            raise ConfigError("--live-preprocessing replays EEG files through the live app; give "
                              "--data FILES/FOLDERS (the synthetic corpus is made ready to use)")
        if self.live_config is not None and not self.live_preprocessing:
            raise ConfigError("--live-config names the dd-live settings of --live-preprocessing; "
                              "add --live-preprocessing")


@dataclass(frozen=True)
class FinetuneConfig:
    """Stages 2+3: SD conditioned on the EEG encoder, with CLIP alignment (reference values).

    ``encoder``: a stage-1 output (``<output>/encoder``) or a reference ``.pth`` (None: random
    init). ``base``: SD weights as a folder, hub id or single file; None trains a UNet from
    scratch (``unet_config``: "tiny" or a JSON file of UNet2DConditionModel arguments) with a
    random tiny VAE. ``train_unet``: "cross_attention" (``attn2`` + ``norm2``, as the
    reference), "all", or "auto" (all when training from scratch). ``clip_model`` /
    ``clip_pretrained``: open_clip name and a local file or hub tag; ``clip_config`` a JSON
    model config registered under ``clip_model`` (tests: a tiny random CLIP).
    ``vae_epochs``: from scratch, first train the VAE alone for this many epochs, then set its
    latent scale and freeze it (the LDM recipe; 0 keeps the VAE random).
    ``data``: "synthetic", "imagenet-eeg" (``eeg_file``, ``splits_file``, ``image_root``), or
    a ``dd-live calibrate`` session folder (or a folder of them): a personal model, with a
    channel adapter from the person's montage to the encoder folded into the saved encoder;
    or ``things-eeg2:ROOT`` (THINGS-EEG2's preprocessed arrays, subject ``subject``).
    ``clip_loss``: "cosine" (the reference), "infonce", "infonce+cosine" (contrastive plus
    regression), or "auto": "infonce+cosine" for calibration data, else "cosine".
    ``align_epochs``: first train the EEG side alone (adapter, encoder, image-embedding head) on
    the image-embedding loss for this many epochs (None: 20 for calibration data, else 0);
    ``eeg_noise``: Gaussian noise (sd, in standardised units) added to training EEG
    (None: 0.5 for calibration data, else 0).
    ``time_conditioning``: build and train the reference's time-embedding conditioning
    (``time_embed_condtion``: the context squeezed to one vector added to the UNet's time
    embedding, ``class_embed_type="identity"``); saved as ``model/time_cond``.
    """

    model: str = "reference"
    encoder: str | None = None
    base: str | None = None
    unet_config: str = "tiny"
    train_unet: str = "auto"
    image_size: int = 512
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = "openai"
    clip_config: str | None = None
    clip_loss: str = "auto"
    clip_weight: float = 1.0
    clip_temperature: float = 0.07
    uncond_prob: float = 0.0
    time_conditioning: bool = True
    align_epochs: int | None = None
    eeg_noise: float | None = None
    vae_epochs: int = 0
    epochs: int = 300
    warmup_epochs: int = 0
    schedule: str = "constant"
    batch_size: int = 25
    grad_accum: int = 1
    lr: float = 5.3e-5
    min_lr: float = 0.0
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.5
    seed: int = 2022
    mixed_precision: str = "no"
    data: str = "imagenet-eeg"
    eeg_file: str | None = None
    splits_file: str | None = None
    image_root: str | None = None
    subject: int | None = 4
    split_index: int = 0
    augment: bool = True
    synthetic_classes: int = 8
    synthetic_per_class: int = 8
    synthetic_background: float = 1.0
    num_workers: int = 0
    save_every: int = 1

    def __post_init__(self) -> None:
        _check_common(self)
        if self.clip_loss not in CLIP_LOSSES:
            raise ConfigError(f"FinetuneConfig.clip_loss must be one of {CLIP_LOSSES}, got {self.clip_loss!r}")
        if self.train_unet not in UNET_TRAINING:
            raise ConfigError(f"FinetuneConfig.train_unet must be one of {UNET_TRAINING}, got {self.train_unet!r}")
        if (self.align_epochs or 0) < 0 or (self.eeg_noise or 0) < 0:
            raise ConfigError("FinetuneConfig: align_epochs and eeg_noise must be >= 0")
        if self.vae_epochs < 0 or self.clip_weight < 0:
            raise ConfigError("FinetuneConfig: vae_epochs and clip_weight must be >= 0")
        if not 0 <= self.uncond_prob < 1:
            raise ConfigError(f"FinetuneConfig.uncond_prob must be in [0, 1), got {self.uncond_prob}")
        if not self.data.strip():
            raise ConfigError("FinetuneConfig.data must be 'synthetic', 'imagenet-eeg' or a calibration "
                              "session folder (or a folder of them)")


PRETRAIN_PRESETS = {
    "reference": PretrainConfig(),
    "tiny": PretrainConfig(
        model="tiny", epochs=2, warmup_epochs=1, batch_size=8, lr=1e-3, mixed_precision="no",
        synthetic_windows=64,
    ),
}
FINETUNE_PRESETS = {
    "reference": FinetuneConfig(),
    "tiny": FinetuneConfig(
        model="tiny", base=None, image_size=32, clip_model="dd-live-tiny-clip", clip_pretrained=None,
        vae_epochs=1, epochs=2, batch_size=8, lr=1e-3, data=SYNTHETIC, synthetic_per_class=2, augment=False, subject=None,
    ),
}


def _parser_for(annotation):
    """(argparse kwargs) for one field annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _parser_for(inner[0])
    if annotation is bool:
        return {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(annotation) is tuple:
        args = typing.get_args(annotation)
        item = args[0]
        return {"type": item, "nargs": "+" if args[-1] is Ellipsis else len(args)}
    return {"type": annotation}


def add_config_args(parser: argparse.ArgumentParser, cls: type, presets: dict) -> None:
    """``--preset`` plus one flag per field of ``cls`` (default: keep the preset's value)."""
    parser.add_argument("--preset", choices=sorted(presets), default="reference", help="starting values")
    hints = typing.get_type_hints(cls)
    group = parser.add_argument_group(f"{cls.__name__} (override the preset)")
    for field in dataclasses.fields(cls):
        flag = "--" + field.name.replace("_", "-")
        group.add_argument(flag, dest=field.name, default=None, **_parser_for(hints[field.name]))


def config_from_args(args: argparse.Namespace, cls: type, presets: dict):
    """The preset named by ``args.preset`` with every given flag applied (validated)."""
    changes = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if getattr(args, f.name) is not None}
    changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
    return dataclasses.replace(presets[args.preset], **changes)


def parse_run_args(argv: list[str] | None, prog: str, doc: str, cls: type, presets: dict,
                   *, output_help: str, resume_help: str) -> tuple[argparse.Namespace, object]:
    """The command line every entry point shares: ``--output-dir``, ``--resume``, ``--preset``
    and one flag per config field. Returns the parsed arguments and the validated config."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    parser.add_argument("--output-dir", type=Path, required=True, help=output_help)
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=False,
                        help=resume_help)
    add_config_args(parser, cls, presets)
    args = parser.parse_args(argv)
    return args, config_from_args(args, cls, presets)


def save_config(config, path: Path) -> None:
    Path(path).write_text(json.dumps(dataclasses.asdict(config), indent=1))


def load_config(cls: type, path: Path):
    """A config saved by :func:`save_config`; unknown keys are an error naming the file."""
    try:
        data = json.loads(Path(path).read_text())
        hints = typing.get_type_hints(cls)
        data = {k: tuple(v) if typing.get_origin(hints.get(k)) is tuple else v for k, v in data.items()}
        return cls(**data)
    except (OSError, ValueError, TypeError) as error:
        raise ConfigError(f"{path} is not a valid {cls.__name__} JSON file: {error}") from error
