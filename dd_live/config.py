"""Every setting of dd-live as frozen dataclasses, loaded from TOML and validated.

Standard library only: this module is imported by the command line before anything heavy.
A setting comes into a module through one of these objects or an argument, never a global.

A config file mirrors the dataclasses (every section and key optional)::

    [source]
    spec = "synthetic"

    [filter]
    l_freq = 5.0
    h_freq = 95.0
    notch = "auto"      # or 50, 60, "off"

    [channels]
    exclude = []        # e.g. ["M1", "M2"]
    bad = "auto"        # or "off"

    [window]
    mode = "latest"     # or "interval", "marker", "recorded"
    length = 0.44
    hop = 0.5

    [generator]
    model = "tiny"
    scheduler = "dpm++"
    steps = 20
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dd_live.errors import ConfigError

SCHEDULER_NAMES = ("dpm++", "ddim", "ddim-trailing", "euler-a", "plms", "lcm", "tcd")
# --preset: what a machine class runs well (each value only where nobody set that key):
# "cpu": 256 px, 4 steps, the tiny decoder where the model has one; "gpu": the model's native
# size, 4 steps, the tiny decoder where the model has one, CUDA graphs (benchmarks/pipeline.py)
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"image_size": 256, "steps": 4, "tiny_decoder": True},
    "gpu": {"image_size": None, "steps": 4, "tiny_decoder": True, "cuda_graphs": True},
    # the DreamDiffusion release's own sampling: PLMS, 250 steps, no guidance, the full VAE
    "release": {"scheduler": "plms", "steps": 250, "guidance_scale": 1.0, "tiny_decoder": False},
}
WINDOW_MODES = ("latest", "interval", "marker", "recorded")  # policies: dd_live/triggers.py
QUALITY_MODES = ("adaptive", "fixed", "off")
GENERATION_MODES = ("generate", "retrieve")
NO_MODEL = "none"  # generator.model: show (and record) the signal, make no images
CHANNEL_METHODS = ("replicate", "spline")
#: [generator] runtime: ONNX Runtime when the model has an export and nothing needs torch
RUNTIMES = ("auto", "torch", "onnx")
BAD_CHANNEL_MODES = ("auto", "off")
RECONNECT_MODES = ("source-id", "name")
LAYOUT_CHANGE_MODES = ("new-segment", "stop")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class SourceConfig:
    """Where samples come from: a source spec (see ``dd_live.sources.open_source``).

    ``reconnect`` (LSL): ``"source-id"`` waits for the lost stream's own source id;
    ``"name"`` also takes a stream of the same name and type with a new source id (apps that
    make up a new id at each start). A ``?reconnect=`` in the spec wins.
    ``on_layout_change``: a stream that comes back with other channels, another rate or format
    ends the recording segment and starts a new one (``"new-segment"``) or stops the session
    (``"stop"``); its samples never go into the old file.
    """

    spec: str = "synthetic"
    reconnect: str = "source-id"
    on_layout_change: str = "new-segment"

    def __post_init__(self) -> None:
        _check(bool(self.spec.strip()), "[source] spec is empty: use e.g. 'synthetic', "
               "'brainflow:-1', 'lsl:MyStream' or 'file:recording.fif'")
        _check(self.reconnect in RECONNECT_MODES,
               f"[source] reconnect must be one of {RECONNECT_MODES}, got {self.reconnect!r}")
        _check(self.on_layout_change in LAYOUT_CHANGE_MODES,
               f"[source] on_layout_change must be one of {LAYOUT_CHANGE_MODES}, "
               f"got {self.on_layout_change!r}")


@dataclass(frozen=True)
class FilterConfig:
    """The online filter: causal Butterworth band-pass plus an optional notch (Hz).

    The defaults are the reference method's 5-95 Hz band; ``h_freq`` is lowered to just
    under Nyquist for boards too slow for it (and the log says so).
    ``notch``: ``"auto"`` (default: measure 50 vs 60 Hz mains hum in the first seconds and keep
    watching; notch the one found), a frequency in Hz (e.g. 50 or 60: a value you set wins),
    or ``"off"`` (None means off too). ``notch_harmonics``: notch its multiples as well.
    """

    enabled: bool = True
    l_freq: float | None = 5.0
    h_freq: float | None = 95.0
    notch: float | str | None = "auto"
    notch_harmonics: bool = False
    order: int = 4

    def __post_init__(self) -> None:
        if self.l_freq is not None:
            _check(self.l_freq > 0, f"[filter] l_freq must be > 0 Hz, got {self.l_freq}")
        if self.l_freq is not None and self.h_freq is not None:
            _check(self.l_freq < self.h_freq,
                   f"[filter] l_freq ({self.l_freq:g} Hz) must be below h_freq ({self.h_freq:g} Hz)")
        notch = self.notch
        if notch is None or (isinstance(notch, str) and notch.strip().lower() in ("off", "none")):
            object.__setattr__(self, "notch", "off")
        elif isinstance(notch, str) and notch.strip().lower() == "auto":
            object.__setattr__(self, "notch", "auto")
        else:
            try:
                value = float(notch)
            except (TypeError, ValueError):
                value = math.nan
            _check(value > 0 and not isinstance(notch, bool),
                   f"[filter] notch must be \"auto\", \"off\" or the mains frequency in Hz "
                   f"(50 or 60), got {notch!r}")
            object.__setattr__(self, "notch", value)
        _check(1 <= self.order <= 10, f"[filter] order must be 1..10, got {self.order}")


@dataclass(frozen=True)
class ChannelsConfig:
    """Which input channels feed the model, and what happens to bad ones.

    ``exclude``: input channel names never used. ``include``: names used even though their
    type or name says non-EEG (EOG, ECG, mastoid, trigger channels are left out otherwise).
    ``bad``: ``"auto"`` marks a channel the model reads bad when it is flat, railed or far
    noisier than the others for ``bad_seconds`` and interpolates it (spherical splines for
    standard 10-20/10-05 names, else the mean of the good channels); ``"off"`` rejects such
    windows instead. ``max_bad``: most channels replaced in one window, a fraction of the
    channels the model reads (< 1) or a count (>= 1); more rejects the window.
    ``model_names``: the model's channel names in order, for models that do not carry them
    (map by name, with T3/T7-style aliases; by count otherwise).
    """

    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    bad: str = "auto"
    max_bad: float = 0.25
    bad_seconds: float = 2.0
    model_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for key in ("exclude", "include", "model_names"):
            value = getattr(self, key)
            _check(isinstance(value, list | tuple) and all(isinstance(v, str) for v in value),
                   f"[channels] {key} must be a list of channel names, got {value!r}")
            object.__setattr__(self, key, tuple(value))
        _check(self.bad in BAD_CHANNEL_MODES,
               f"[channels] bad must be one of {BAD_CHANNEL_MODES}, got {self.bad!r}")
        _check(self.max_bad >= 0 and (self.max_bad < 1 or float(self.max_bad).is_integer()),
               f"[channels] max_bad must be a fraction below 1 or a whole count, "
               f"got {self.max_bad}")
        _check(0 <= self.bad_seconds <= 60,
               f"[channels] bad_seconds must be 0..60 s, got {self.bad_seconds}")


@dataclass(frozen=True)
class WindowConfig:
    """How the stream is cut into windows for the model (seconds).

    ``latest`` (default): whenever the generator is free, the newest complete window of
    ``length``, at least ``min_hop`` after the previous one: images as fast as the machine
    allows, nothing dropped. ``interval``: a window of ``length`` every ``hop``. ``marker``: a
    window of ``length`` starting ``offset`` after each marker whose text matches
    ``marker_match`` (all if empty). ``recorded``: the windows a replayed session folder made
    its images from (``dd-live replay`` uses it). Reference: 0.44 s starting 0.02 s after
    stimulus onset. ``marker_images``: a folder of the images markers ``image:<id>`` name
    (ImageNet layout ``<synset>/<id>.JPEG``, or ``<id>.<ext>`` in the folder): each image made
    from a marker's window is shown beside the image the marker stands for, and its path is
    recorded (``stimulus`` in events.jsonl).
    """

    mode: str = "latest"
    length: float = 0.44
    hop: float = 0.5
    min_hop: float = 0.02
    offset: float = 0.02
    marker_match: str = ""
    marker_images: str | None = None

    def __post_init__(self) -> None:
        _check(self.mode in WINDOW_MODES,
               f"[window] mode must be one of {WINDOW_MODES}, got {self.mode!r}")
        _check(0.05 <= self.length <= 10, f"[window] length must be 0.05..10 s, got {self.length}")
        _check(0.02 <= self.hop <= 60, f"[window] hop must be 0.02..60 s, got {self.hop}")
        _check(0.001 <= self.min_hop <= 60,
               f"[window] min_hop must be 0.001..60 s, got {self.min_hop}")
        _check(0 <= self.offset <= 5, f"[window] offset must be 0..5 s, got {self.offset}")


@dataclass(frozen=True)
class QualityConfig:
    """Per-window quality check; rejected windows are counted and never generated from."""

    mode: str = "adaptive"
    max_ptp: float = 150e-6
    z_threshold: float = 6.0

    def __post_init__(self) -> None:
        _check(self.mode in QUALITY_MODES,
               f"[quality] mode must be one of {QUALITY_MODES}, got {self.mode!r}")
        _check(self.max_ptp > 0, f"[quality] max_ptp must be > 0 V, got {self.max_ptp}")


@dataclass(frozen=True)
class GeneratorConfig:
    """The EEG model and image sampler.

    ``model``: ``"tiny"`` (random tiny models, images carry no meaning), ``"demo"`` (the
    demo model shipped in the package; a broken install without it is an error), a dd-live
    model folder, a diffusers folder or hub id,
    or ``"none"`` (no generation: a viewer and recorder).
    ``threads``: CPU threads for the model (0: automatic, the cores this process may use minus
    one, at least 1: see :func:`resolve_threads`); on a 2-core laptop 1 leaves a
    core to acquisition and the window.
    ``seed`` / ``fixed_seed``: the sampler's noise seed. By default each window gets its own,
    ``seed`` + the window's first sample index (reproducible: a replay makes the same images);
    ``fixed_seed = true`` uses ``seed`` for every image, so the picture changes only when the
    EEG does, but one noise pattern's bias then shows in every image (with the demo model,
    seed 0 drew *motor* as another thought in every image).
    ``preset``: ``"cpu"`` or ``"gpu"`` (see ``PRESETS``; a model folder may recommend one),
    applied by :func:`apply_preset` to the keys nobody set. ``tiny_decoder``: decode with the
    model's tiny autoencoder (its ``tiny_vae/`` folder or ``tiny_vae``). ``unet``: a distilled
    UNet (folder or file, e.g. a one-step DMD2 SD 1.5 UNet; run with ``scheduler = "lcm"``,
    ``steps = 1``); ``lora``: a few-step LoRA (LCM, TCD, Hyper-SD), fused at load.
    ``cuda_graphs``: capture the sampler as CUDA graphs on CUDA (off: eager, for debugging).
    ``runtime``: ``"auto"`` (ONNX Runtime on the CPU for a model folder with an ONNX export
    (``onnx.json`` and the graphs beside the weights), when the settings need nothing only torch has; torch otherwise and with CUDA),
    ``"torch"`` or ``"onnx"`` (see :mod:`dd_live.decoding_onnx`).
    ``model_config``: a folder with ``unet/``, ``vae/`` and ``scheduler/`` configs describing
    the architecture of a single-file ``model`` (a DreamDiffusion release checkpoint, an SD
    checkpoint); default: the packaged SD 1.5 configs.
    ``clip_model`` / ``clip_pretrained``: the image embedder of retrieval mode (an open_clip
    model name, and its weights: an open_clip tag such as ``"openai"`` or a local file).
    Retrieval refuses to start without real weights; a personal model folder (from
    ``training.finetune --data SESSION``) names its own embedder, used when these are unset.
    """

    model: str = "tiny"
    mode: str = "generate"
    scheduler: str = "dpm++"
    steps: int = 20
    guidance_scale: float = 1.0
    seed: int = 0
    fixed_seed: bool = False
    image_size: int | None = None
    tiny_vae: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    attention: str = "auto"
    compile: bool = False
    threads: int = 0
    gallery: str | None = None
    channel_method: str = "replicate"
    preset: str = ""
    tiny_decoder: bool = False
    unet: str | None = None
    lora: str | None = None
    cuda_graphs: bool = True
    model_config: str | None = None
    clip_model: str = "ViT-L-14"
    clip_pretrained: str | None = None
    runtime: str = "auto"

    def __post_init__(self) -> None:
        _check(self.runtime in RUNTIMES,
               f"[generator] runtime must be one of {RUNTIMES}, got {self.runtime!r}")
        _check(self.preset in ("", *PRESETS),
               f"[generator] preset must be one of {tuple(PRESETS)} (or empty), got {self.preset!r}")
        _check(self.mode in GENERATION_MODES,
               f"[generator] mode must be one of {GENERATION_MODES}, got {self.mode!r}")
        _check(self.scheduler in SCHEDULER_NAMES,
               f"[generator] scheduler must be one of {SCHEDULER_NAMES}, got {self.scheduler!r}")
        _check(1 <= self.steps <= 1000, f"[generator] steps must be 1..1000, got {self.steps}")
        _check(0 <= self.guidance_scale <= 30 and math.isfinite(self.guidance_scale),
               f"[generator] guidance_scale must be 0..30, got {self.guidance_scale}")
        _check(0 <= self.threads <= 256,
               f"[generator] threads must be 0 (automatic) or a count, got {self.threads}")
        _check(self.channel_method in CHANNEL_METHODS,
               f"[generator] channel_method must be one of {CHANNEL_METHODS}, "
               f"got {self.channel_method!r}")
        _check(self.mode != "retrieve" or bool(self.gallery),
               "[generator] mode 'retrieve' needs a gallery folder: set [generator] gallery")


def apply_preset(gen: GeneratorConfig, explicit: frozenset[str] | set[str] = frozenset()) -> GeneratorConfig:
    """``gen`` with its preset's values for the keys that are still at their defaults and not in
    ``explicit`` (keys the user gave, e.g. on the command line): the user's choice always wins."""
    if not gen.preset:
        return gen
    defaults = GeneratorConfig()
    changes = {key: value for key, value in PRESETS[gen.preset].items()
               if key not in explicit and getattr(gen, key) == getattr(defaults, key)}
    return dataclasses.replace(gen, **changes) if changes else gen


def resolve_threads(threads: int) -> int:
    """Torch intra-op threads for ``[generator] threads``: the number itself, or for 0 the cores
    this process may use minus one (at least 1), leaving a core to acquisition and the window.
    (Letting torch take every core made the demo 5.6 images/s on 2 cores instead of 9.1.)"""
    if threads > 0:
        return threads
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


@dataclass(frozen=True)
class RecordConfig:
    """The session folder: ``<root>/<date>_<time>_<name>/``."""

    enabled: bool = False
    root: str = "runs"
    name: str = "session"

    def __post_init__(self) -> None:
        _check(bool(self.name) and "/" not in self.name,
               f"[record] name must be a plain folder name, got {self.name!r}")


@dataclass(frozen=True)
class BufferConfig:
    """How much signal is kept in memory (seconds) and when a silent stream is 'stalled'."""

    seconds: float = 30.0
    stall_timeout: float = 5.0

    def __post_init__(self) -> None:
        _check(2 <= self.seconds <= 3600, f"[buffer] seconds must be 2..3600, got {self.seconds}")
        _check(self.stall_timeout > 0, "[buffer] stall_timeout must be > 0 s")


@dataclass(frozen=True)
class AppConfig:
    """All settings of one session."""

    source: SourceConfig = field(default_factory=SourceConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)
    channels: ChannelsConfig = field(default_factory=ChannelsConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppConfig:
        """Build from nested dicts; unknown sections or keys are an error naming the valid ones."""
        sections = {f.name: f for f in fields(cls)}
        kwargs = {}
        for name, values in data.items():
            if name not in sections:
                raise ConfigError(f"unknown config section [{name}]; valid sections: "
                                  f"{', '.join(sections)}")
            section_cls = _section_type(name)
            if not isinstance(values, dict):
                raise ConfigError(f"[{name}] must be a table of settings, got {values!r}")
            kwargs[name] = _build(section_cls, name, values)
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> AppConfig:
        return cls.from_dict(read_toml(path))

    @classmethod
    def from_layers(cls, *layers: dict[str, Any]) -> AppConfig:
        """Build from nested dicts where a later layer's key wins over an earlier one's:
        ``from_layers(model_folder_settings, config_file, command_line)``."""
        return cls.from_dict(merge_layers(*layers))

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested dicts without ``None`` values (TOML has no null)."""
        return {
            name: {k: v for k, v in section.items() if v is not None}
            for name, section in dataclasses.asdict(self).items()
        }

    def replace(self, **sections: Any) -> AppConfig:
        """A copy with whole sections, or ``section={"key": value}`` updates, replaced."""
        updates = {}
        for name, value in sections.items():
            if isinstance(value, dict):
                current = dataclasses.asdict(getattr(self, name))
                current.update(value)
                value = _build(_section_type(name), name, current)
            updates[name] = value
        return dataclasses.replace(self, **updates)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The nested dict of a TOML config file (not yet validated: see ``AppConfig.from_dict``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def merge_layers(*layers: dict[str, Any]) -> dict[str, Any]:
    """Section-wise merge of nested settings dicts; a later layer's key wins."""
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, values in layer.items():
            if isinstance(values, dict) and isinstance(merged.get(section), dict):
                merged[section] = {**merged[section], **values}
            else:
                merged[section] = dict(values) if isinstance(values, dict) else values
    return merged


def _section_type(name: str) -> type:
    return {f.name: f.default_factory for f in fields(AppConfig)}[name]  # type: ignore[return-value]


_TYPE_WORDS = {"int": "a whole number", "float": "a number", "bool": "true or false",
               "str": "a text in quotes"}


def _checked_value(section: str, key: str, annotation: str, value: Any) -> Any:
    """``value`` if it fits the field's annotation (``"int"``, ``"float | None"``...): ints stay
    ints, a float field takes an int as a float; anything else is a ConfigError naming the key."""
    kinds = [part.strip() for part in annotation.split("|")]
    if not set(kinds) <= {"int", "float", "bool", "str", "None"}:
        return value  # a richer type: its section checks it
    if value is None:
        if "None" in kinds:
            return None
    elif "bool" in kinds and isinstance(value, bool):
        return value
    elif isinstance(value, bool):
        pass  # true/false is not a number
    elif "int" in kinds and isinstance(value, int):
        return value
    elif "float" in kinds and isinstance(value, (int, float)):
        return float(value)
    elif "str" in kinds and isinstance(value, str):
        return value
    wanted = " or ".join(_TYPE_WORDS.get(kind, "nothing (leave it out)" if kind == "None" else kind)
                         for kind in kinds)
    example = {"int": "e.g. 6", "float": "e.g. 0.5", "bool": "true or false",
               "str": 'e.g. "text"'}.get(kinds[0], "")
    raise ConfigError(f"[{section}] {key} must be {wanted}, got {value!r} "
                      f"({type(value).__name__}){f': write {example}' if example else ''}")


def _build(section_cls: type, section: str, values: dict[str, Any]) -> Any:
    types = {f.name: f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
             for f in fields(section_cls)}
    unknown = sorted(set(values) - set(types))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in [{section}]; valid keys: "
                          f"{', '.join(sorted(types))}")
    values = {key: _checked_value(section, key, types[key], value)
              for key, value in values.items()}
    try:
        return section_cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc
