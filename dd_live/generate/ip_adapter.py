"""IPAdapterRenderer: a decoded image embedding [dim] -> images, with a stock SD 1.5 + IP-Adapter.

The embedding route's renderer. An EEG decoder maps a window into an image-embedding space (by
default OpenCLIP ViT-H/14's, the space ``ip-adapter_sd15`` is conditioned on); this renders the
vector with a frozen Stable Diffusion 1.5 whose cross-attentions carry IP-Adapter weights,
loaded through diffusers' own ``load_ip_adapter``. No image encoder runs: the vector is handed
to the UNet as diffusers' ``ip_adapter_image_embeds`` (``added_cond_kwargs["image_embeds"]``)
and projected there by the adapter's ``image_proj`` to 4 extra context tokens. The text context
is the empty prompt's embedding (computed once with the base's text encoder; zeros when the
base has none), so the picture comes from the embedding alone; with guidance the negative is
the empty prompt with a zero (or a given learned) "null" image embedding::

    renderer = IPAdapterRenderer.from_pretrained("models/sd15", "models/ip-adapter").prepare()
    result = renderer(embedding, seed=2022)              # embedding: [1024] float32
    result = renderer(embedding, seed=2022, init_latent=latent, strength=0.4)  # latent [4, h, w]

The sampling itself is :class:`ImageGenerator`'s fixed-shape loop (schedulers, few-step LoRAs,
TAESD, the static / CUDA-graph path, fp16/bf16, interrupt between UNet steps), so an image is
diffusers' ``StableDiffusionPipeline(prompt="", ip_adapter_image_embeds=[...])`` image.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline
from huggingface_hub.constants import is_offline_mode
from PIL import Image
from safetensors import SafetensorError

from dd_live.assets import sd15_config_dir
from dd_live.config import IP_ADAPTER_EMBEDDER, IP_ADAPTER_MAX_SCALE
from dd_live.errors import CheckpointError, ConfigError, GenerationError
from dd_live.generate.generator import WARMUP_GUIDANCE, GenerationResult, ImageGenerator
from dd_live.generate.loading import HUB_ID
from dd_live.generate.tiny import CLIP_TOKEN_COUNT, IP_ADAPTER_TOKENS
from dd_live.model.safe_load import load_torch_file

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDER_ID = IP_ADAPTER_EMBEDDER  # OpenCLIP ViT-H/14: what ip-adapter_sd15 is conditioned on
MAX_SCALE = IP_ADAPTER_MAX_SCALE
IP_ADAPTER_REPO_ID = "h94/IP-Adapter"
IP_ADAPTER_SUBFOLDER = "models"  # where the SD 1.5 adapters live in that repository
IP_ADAPTER_WEIGHT_NAMES = ("ip-adapter_sd15.safetensors", "ip-adapter_sd15.bin")  # safetensors first
IP_ADAPTER_SUFFIXES = (".safetensors", ".bin")
IP_ADAPTER_DOWNLOAD = (f"huggingface-cli download {IP_ADAPTER_REPO_ID} "
                       f"{IP_ADAPTER_SUBFOLDER}/{IP_ADAPTER_WEIGHT_NAMES[0]} --local-dir models/ip-adapter")
IP_PARTS = ("image_proj", "ip_adapter")
TEXT_ENCODER_PREFIX = "cond_stage_model.transformer."  # an SD 1.5 single file's text encoder
CLIP_START_TOKEN, CLIP_END_TOKEN = 49406, 49407  # CLIP's tokenizer: "" is start, then end (= pad)
HUB_FILE = re.compile(r"^([A-Za-z0-9][\w.-]*/[\w.-]+)/(.+\.(?:safetensors|bin))$")  # owner/name/path/file


# -- reading the weights ---------------------------------------------------------------------------

def find_ip_adapter_file(path_or_id: str | Path) -> Path:
    """The IP-Adapter weights file named by ``path_or_id``, offline-capable.

    A file (``.safetensors`` preferred, ``.bin``); a folder holding ``ip-adapter_sd15.*`` (also
    under ``models/``, the hub repository's layout) or exactly one weights file; a hub id
    (``h94/IP-Adapter``: its ``models/ip-adapter_sd15.safetensors``) or a file in a hub
    repository (``h94/IP-Adapter/models/ip-adapter_sd15.bin``), from the cache when
    ``HF_HUB_OFFLINE=1``.
    """
    path = Path(path_or_id).expanduser()
    if path.is_file():
        if path.suffix not in IP_ADAPTER_SUFFIXES:
            raise ConfigError(f"IP-Adapter weights {path} are neither .safetensors nor .bin")
        return path
    if path.is_dir():
        for folder in (path, path / IP_ADAPTER_SUBFOLDER):
            for name in IP_ADAPTER_WEIGHT_NAMES:
                if (folder / name).is_file():
                    return folder / name
        found = sorted(p for p in path.iterdir() if p.suffix in IP_ADAPTER_SUFFIXES and p.is_file())
        if len(found) == 1:
            return found[0]
        what = f"{len(found)} weights files ({', '.join(p.name for p in found)})" if found else "no weights file"
        raise ConfigError(
            f"IP-Adapter folder {path} holds {what}; name the file itself, e.g. "
            f"{path / IP_ADAPTER_WEIGHT_NAMES[0]}")
    text = str(path_or_id)
    if text.startswith((".", "/", "~")) or not (HUB_ID.match(text) or HUB_FILE.match(text)):
        raise ConfigError(
            f"no IP-Adapter weights at {path.resolve()} (not a file, a folder or a hub id). "
            f"Get ip-adapter_sd15 once with: {IP_ADAPTER_DOWNLOAD}")
    return _from_hub(text)


def _from_hub(text: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    match = HUB_FILE.match(text)
    if match:
        repo_id, inside = match.groups()
        candidates = [inside]
    else:
        repo_id = text
        candidates = [f"{IP_ADAPTER_SUBFOLDER}/{name}" for name in IP_ADAPTER_WEIGHT_NAMES]
    offline = is_offline_mode()
    errors = []
    for filename in candidates:
        try:
            return Path(hf_hub_download(repo_id, filename, local_files_only=offline))
        except (OSError, EntryNotFoundError) as exc:
            errors.append(f"{filename}: {type(exc).__name__}")
    where = " (HF_HUB_OFFLINE=1: only the local cache was searched)" if offline else ""
    raise ConfigError(
        f"could not get IP-Adapter weights from the hub repository {repo_id!r}{where} "
        f"({'; '.join(errors)}). Download them once: {IP_ADAPTER_DOWNLOAD}")


def read_ip_adapter(path_or_id: str | Path | Mapping[str, Any]) -> tuple[dict[str, dict[str, torch.Tensor]], str]:
    """(``{"image_proj": {...}, "ip_adapter": {...}}`` of tensors on the CPU, where it came from).

    A ``.safetensors`` file is read as tensors (flat ``image_proj.*`` / ``ip_adapter.*`` keys, as
    diffusers splits them); a ``.bin`` file with the project's weights-only reader, which never
    runs pickled code. A state dict (the same nested layout) is taken as it is. A file that
    cannot be read or is not an IP-Adapter raises CheckpointError naming it.
    """
    if isinstance(path_or_id, Mapping):
        return _nested_state(dict(path_or_id), "the given state dict"), "state dict"
    path = find_ip_adapter_file(path_or_id)
    if path.suffix == ".safetensors":
        try:
            flat = safetensors.torch.load_file(path)
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(
                f"IP-Adapter weights {path} are not a readable safetensors file "
                f"({type(exc).__name__}: {exc}); the file may be truncated or still downloading") from None
        state: dict[str, Any] = {part: {} for part in IP_PARTS}
        for key, value in flat.items():
            part, _, rest = key.partition(".")
            if part in state:
                state[part][rest] = value
    else:
        state = load_torch_file(path)  # CheckpointError naming the file when refused or unreadable
    return _nested_state(state, str(path)), str(path)


def _nested_state(state: Any, where: str) -> dict[str, dict[str, torch.Tensor]]:
    if not isinstance(state, dict) or any(not isinstance(state.get(part), dict) or not state[part]
                                          for part in IP_PARTS):
        raise CheckpointError(
            f"{where} is not an IP-Adapter: it needs 'image_proj' and 'ip_adapter' weights (the layout "
            f"of {IP_ADAPTER_WEIGHT_NAMES[0]}: {IP_ADAPTER_DOWNLOAD})")
    for part in IP_PARTS:
        bad = [key for key, value in state[part].items() if not isinstance(value, torch.Tensor)]
        if bad:
            raise CheckpointError(f"{where}: {part}.{bad[0]} is not a tensor; the file is not IP-Adapter weights")
    return {part: dict(state[part]) for part in IP_PARTS}


def check_ip_adapter_state(state: Mapping[str, Mapping[str, torch.Tensor]], unet, where: str) -> int:
    """The image-embedding width D of plain IP-Adapter weights that fit ``unet``; else
    CheckpointError naming ``where`` and what does not fit (another kind of adapter, an adapter
    for another UNet). Checks the shapes diffusers' loader will use, before it runs."""
    proj = state["image_proj"]
    if "proj.weight" not in proj or "norm.weight" not in proj:
        kind = ("IP-Adapter Full" if "proj.3.weight" in proj else "IP-Adapter Plus" if "latents" in proj
                else "IP-Adapter FaceID" if "norm.weight" in proj or "perceiver_resampler.proj_in.weight" in proj
                else "unknown")
        raise CheckpointError(
            f"{where} holds {kind} weights; dd-live renders a global image embedding with the plain "
            f"IP-Adapter (image_proj.proj + norm), e.g. {IP_ADAPTER_WEIGHT_NAMES[0]}")
    cross = unet.config.cross_attention_dim
    weight = proj["proj.weight"]
    if weight.ndim != 2 or weight.shape[0] != IP_ADAPTER_TOKENS * cross:
        raise CheckpointError(
            f"{where} projects to {weight.shape[0] // IP_ADAPTER_TOKENS if weight.ndim == 2 else '?'}-wide "
            f"tokens, the UNet's cross-attention is {cross} wide; give IP-Adapter weights made for SD 1.5")
    expected = ip_adapter_shapes(unet)
    given = {key: tuple(value.shape) for key, value in state["ip_adapter"].items()}
    missing = sorted(set(expected) - set(given))
    wrong = sorted(key for key in set(expected) & set(given) if expected[key] != given[key])
    if missing or wrong:
        detail = (f"missing {missing[:4]}" if missing else
                  f"{wrong[0]} is {list(given[wrong[0]])}, the UNet needs {list(expected[wrong[0]])}")
        raise CheckpointError(
            f"{where} does not fit this UNet's {len(expected) // 2} cross-attentions ({detail}); "
            "give IP-Adapter weights made for SD 1.5")
    return int(weight.shape[1])


def ip_adapter_shapes(unet: Any) -> dict[str, tuple[int, int]]:
    """The ``ip_adapter`` part's keys and shapes for ``unet``, as diffusers' loader reads them:
    ``{"1.to_k_ip.weight": (H, C), "1.to_v_ip.weight": (H, C), "3.to_k_ip.weight": ...}``, C
    the cross-attention width and H each cross-attention's width (the keys count every
    attention processor; cross-attentions are the odd ones, in ``unet.attn_processors`` order).
    """
    cross = unet.config.cross_attention_dim
    blocks = list(unet.config.block_out_channels)
    shapes, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = blocks[-1]
        elif name.startswith("up_blocks"):
            hidden = blocks[::-1][int(name[len("up_blocks.")])]
        else:
            hidden = blocks[int(name[len("down_blocks.")])]
        for kv in ("k", "v"):
            shapes[f"{key_id}.to_{kv}_ip.weight"] = (hidden, cross)
        key_id += 2
    return shapes


def empty_prompt_embedding(base: str | Path, config: str | Path | None = None) -> torch.Tensor | None:
    """[77, C] float32: the base's text encoder's embedding of the empty prompt, computed once
    (as StableDiffusionPipeline encodes ``prompt=""``); None when the base carries no text
    encoder (a folder without ``text_encoder/`` and ``tokenizer/``, a checkpoint file without
    ``cond_stage_model.transformer.*`` weights, such as the DreamDiffusion release's).

    A single-file checkpoint's text encoder is built from ``config``'s ``text_encoder/``
    config (default: the packaged SD 1.5 one) and tokenised by ``config``'s ``tokenizer/``
    when it has one, else as CLIP's tokenizer tokenises "" (start token, then end tokens).
    """
    from transformers import CLIPTextModel, CLIPTokenizer

    path = Path(base).expanduser()
    if path.is_file():
        return _single_file_text_embedding(path, Path(config) if config is not None else sd15_config_dir())
    if path.is_dir():
        if not ((path / "text_encoder").is_dir() and (path / "tokenizer").is_dir()):
            return None
        source, local = str(path), True
    elif path.exists() or not HUB_ID.match(str(base)):
        return None
    else:
        source, local = str(base), is_offline_mode()
    try:
        tokenizer = CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", local_files_only=local)
        text_encoder = CLIPTextModel.from_pretrained(source, subfolder="text_encoder", local_files_only=local,
                                                     dtype=torch.float32)
    except (OSError, ValueError) as exc:
        raise GenerationError(
            f"could not load the text encoder of {base} ({type(exc).__name__}: {exc}); its "
            "text_encoder/ or tokenizer/ may be incomplete") from None
    return _encode_empty_prompt(text_encoder, _empty_prompt_ids(tokenizer))


def _empty_prompt_ids(tokenizer) -> torch.Tensor:
    """[1, 77] token ids of "" padded to the context length (the pipeline's tokenisation)."""
    return tokenizer("", padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                     return_tensors="pt").input_ids


def _encode_empty_prompt(text_encoder, ids: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        mask = None  # SD 1.5's text encoder takes no attention mask (as the pipeline decides)
        if getattr(text_encoder.config, "use_attention_mask", False):
            mask = torch.ones_like(ids)
        embedding = text_encoder(ids, attention_mask=mask)[0][0]
    return embedding.float().clone()


def _single_file_text_embedding(path: Path, config_dir: Path) -> torch.Tensor | None:
    """The empty prompt through a single file's text encoder (LDM layout:
    ``cond_stage_model.transformer.*``), reading only those tensors where the format allows."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if path.suffix == ".safetensors":
        try:
            with safetensors.safe_open(path, framework="pt") as f:
                state = {k[len(TEXT_ENCODER_PREFIX):]: f.get_tensor(k) for k in f.keys()  # noqa: SIM118
                         if k.startswith(TEXT_ENCODER_PREFIX)}
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    else:
        contents = load_torch_file(path)
        contents = contents.get("state_dict", contents) if isinstance(contents, dict) else {}
        state = ({k[len(TEXT_ENCODER_PREFIX):]: v for k, v in contents.items()
                  if isinstance(k, str) and k.startswith(TEXT_ENCODER_PREFIX)} if isinstance(contents, dict) else {})
    if not state:
        logger.info("%s has no text encoder: the IP-Adapter's text context is zeros", path.name)
        return None
    folder = config_dir / "text_encoder" if (config_dir / "text_encoder" / "config.json").is_file() \
        else sd15_config_dir() / "text_encoder"
    text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder)).eval()
    # SD 1.5 files say text_model.embeddings..., older ones embeddings...; transformers' own
    # module names have had either: match the module's
    prefix = "text_model." if any(k.startswith("text_model.") for k in text_encoder.state_dict()) else ""
    state = {prefix + key.removeprefix("text_model."): value for key, value in state.items()
             if not key.endswith("position_ids")}
    missing, unexpected = text_encoder.load_state_dict(state, strict=False)
    missing = [key for key in missing if not key.endswith("position_ids")]
    if missing or unexpected:
        raise CheckpointError(
            f"the text encoder in {path} does not fit the config in {folder}: missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(unexpected)[:4]}; give --model-config a folder with its text_encoder/ config")
    if (config_dir / "tokenizer").is_dir():
        ids = _empty_prompt_ids(CLIPTokenizer.from_pretrained(config_dir, subfolder="tokenizer", local_files_only=True))
    else:
        ids = torch.tensor([[CLIP_START_TOKEN] + [CLIP_END_TOKEN] * (CLIP_TOKEN_COUNT - 1)])
    return _encode_empty_prompt(text_encoder, ids)


class _DropNotes(logging.Filter):
    def __init__(self, starts: tuple[str, ...]):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


@contextlib.contextmanager
def _quiet(*notes: tuple[str, str]):
    """Drop diffusers' log notes (logger name, message start) that do not apply here."""
    filters = []
    for name, start in notes:
        filters.append((logging.getLogger(name), _DropNotes((start,))))
        filters[-1][0].addFilter(filters[-1][1])
    try:
        yield
    finally:
        for target, note_filter in filters:
            target.removeFilter(note_filter)


# diffusers' loader notes that do not apply: no image encoder is wanted (the embedding is given),
# and the UNet has no float32-only modules (the list it prints is empty)
LOADER_NOTES = (("diffusers.loaders.ip_adapter", "image_encoder is not loaded"),
                ("diffusers.models.modeling_utils", "There are modules in"))


# -- the renderer ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class IPAdapterSettings:
    """``scale``: IP-Adapter scale (0: the adapter is off, the plain model's image; 1: as trained).
    ``strength``: img2img share of the start picture kept, 0..1 (0: pure text-free IP-Adapter
    generation from noise, the start unused; 0.4: the last 60 % of the schedule runs from the
    start noised to there)."""

    scale: float = 1.0
    strength: float = 0.0

    def __post_init__(self):
        if not (0.0 <= self.scale <= MAX_SCALE and np.isfinite(self.scale)):
            raise ConfigError(f"ip_adapter_scale must be 0..{MAX_SCALE:g}, got {self.scale}")
        if not (0.0 <= self.strength <= 1.0):
            raise ConfigError(f"img2img_strength must be 0..1, got {self.strength}")


class IPAdapterRenderer:
    """A stock SD 1.5 with IP-Adapter weights, rendering one image embedding [D] per image.

    Build with ``from_pretrained(base, ip_adapter)`` (or ``from_config``), ``prepare()`` once
    (device, dtype, LoRA, attention, then the adapter through diffusers' ``load_ip_adapter``),
    ``warmup()`` to capture the hot path, then call with embeddings and seeds.

    Attributes: ``embedder_id`` (the image-embedding space the adapter is conditioned on, e.g.
    ``"ViT-H-14/laion2b_s32b_b79k"``), ``image_embed_dim`` (D, read from ``image_proj``),
    ``generator`` (the :class:`ImageGenerator` that samples), ``settings``
    (:class:`IPAdapterSettings`), ``device`` / ``dtype`` (after ``prepare()``).
    ``interrupt()`` (any thread) stops the running image before its next UNet step.
    """

    def __init__(
        self,
        generator: ImageGenerator,
        ip_adapter: Mapping[str, Mapping[str, torch.Tensor]],
        *,
        scale: float = 1.0,
        strength: float = 0.0,
        embedder_id: str = DEFAULT_EMBEDDER_ID,
        text_embedding: torch.Tensor | None = None,
        null_image_embedding: torch.Tensor | np.ndarray | None = None,
        source: str = "",
    ):
        if not embedder_id:
            raise ConfigError("ip_adapter_embedder must name the embedder, e.g. " + DEFAULT_EMBEDDER_ID)
        if generator.prepared:  # its null context is fixed at prepare(): it must be the empty prompt
            raise GenerationError("give IPAdapterRenderer a generator that is not prepared yet")
        self.generator = generator
        self.settings = IPAdapterSettings(scale=scale, strength=strength)
        self.embedder_id = embedder_id
        self.source = source or "state dict"
        self.image_embed_dim = check_ip_adapter_state(ip_adapter, generator.unet, self.source)
        self._state: dict[str, dict[str, torch.Tensor]] | None = {p: dict(ip_adapter[p]) for p in IP_PARTS}
        cross = generator.unet.config.cross_attention_dim
        if text_embedding is None:
            text_embedding = torch.zeros(CLIP_TOKEN_COUNT, cross)
        if tuple(text_embedding.shape) != (CLIP_TOKEN_COUNT, cross):
            raise GenerationError(
                f"text_embedding must be [{CLIP_TOKEN_COUNT}, {cross}], got {list(text_embedding.shape)}")
        self.text_embedding = text_embedding.detach().float().cpu()  # [77, C]
        null = (np.zeros(self.image_embed_dim, np.float32) if null_image_embedding is None
                else null_image_embedding)
        self._null_image = self._embeddings(null, "null_image_embedding")[:1]  # [1, 1, D]
        # guidance's negative is the empty prompt too (StableDiffusionPipeline's negative for "")
        generator.null_context = self.text_embedding
        self._loaded = False

    # -- set-up ------------------------------------------------------------------------------

    @property
    def device(self) -> torch.device | None:
        return self.generator.device

    @property
    def dtype(self) -> torch.dtype | None:
        return self.generator.dtype

    @property
    def prepared(self) -> bool:
        return self._loaded

    def prepare(self) -> IPAdapterRenderer:
        """The generator's one-time set-up (device, dtype, LoRA fused, attention processors),
        then the IP-Adapter into its UNet through diffusers' ``load_ip_adapter`` (its
        cross-attention processors become IP-Adapter processors) and the scale."""
        if self._loaded:
            return self
        self.generator.prepare()
        pipe = self._pipeline()
        with _quiet(*LOADER_NOTES):
            pipe.load_ip_adapter(self._state, subfolder=None, weight_name=None, image_encoder_folder=None)
        pipe.set_ip_adapter_scale(self.settings.scale)
        self.generator.drop_captured()  # nothing captured may predate the adapter
        self._state = None  # the weights live in the UNet now
        self._loaded = True
        logger.info("IP-Adapter renderer ready: %r", self)
        return self

    def _pipeline(self) -> StableDiffusionPipeline:
        """diffusers' pipeline around the generator's parts, for its loader and scale setter."""
        gen = self.generator
        return StableDiffusionPipeline(
            vae=gen.vae, text_encoder=None, tokenizer=None, unet=gen.unet, scheduler=gen.scheduler,
            safety_checker=None, feature_extractor=None, image_encoder=None, requires_safety_checker=False)

    def warmup(self, progress: Callable[[str], Any] | None = None) -> IPAdapterRenderer:
        """Run the hot path once per guidance variant the settings can switch between (as
        :meth:`ImageGenerator.warmup`), capturing the CUDA graphs before the first window."""
        self.prepare()
        gen = self.generator
        current = gen.settings
        scales = [current.guidance_scale]
        if gen.use_graphs and gen.unet.config.time_cond_proj_dim is None:
            scales.append(1.0 if current.guidance_scale > 1.0 else WARMUP_GUIDANCE)
        zero = np.zeros(self.image_embed_dim, np.float32)
        try:
            for i, scale in enumerate(scales, 1):
                what = "guidance on" if scale > 1.0 else "guidance off"
                verb = "capturing CUDA graphs" if gen.use_graphs else "warming up"
                if progress is not None:
                    progress(f"{verb} ({what}) {i}/{len(scales)}")
                gen.settings = dataclasses.replace(current, guidance_scale=scale)
                t0 = time.perf_counter()
                self(zero, seed=0, strength=0.0)
                logger.info("IP-Adapter %s (%s) in %.2f s", verb, what, time.perf_counter() - t0)
        finally:
            gen.settings = current
        return self

    def configure(self, *, scale: float | None = None, strength: float | None = None,
                  **generator_changes: Any) -> IPAdapterRenderer:
        """Change the IP-Adapter ``scale``, the img2img ``strength`` and the generator's settings
        (``scheduler``, ``num_inference_steps``, ``guidance_scale``, ``image_size``,
        ``tiny_decoder``); each takes effect at the next call."""
        settings = dataclasses.replace(
            self.settings, **{k: v for k, v in (("scale", scale), ("strength", strength)) if v is not None})
        if generator_changes:
            self.generator.configure(**generator_changes)
        if self._loaded and settings.scale != self.settings.scale:
            self._pipeline().set_ip_adapter_scale(settings.scale)
            self.generator.drop_captured()  # the scale is a constant inside a captured UNet step
        self.settings = settings
        return self

    def set_cuda_graphs(self, enabled: bool | None) -> IPAdapterRenderer:
        self.generator.set_cuda_graphs(enabled)
        return self

    # -- rendering ---------------------------------------------------------------------------

    def interrupt(self) -> None:
        """Stop the image in progress before its next UNet step (any thread); the flag holds
        until :meth:`clear_interrupt`."""
        self.generator.interrupt()

    def clear_interrupt(self) -> None:
        self.generator.clear_interrupt()

    @property
    def interrupted(self) -> bool:
        return self.generator.interrupted

    def __call__(
        self,
        embedding: np.ndarray | torch.Tensor,
        seed: int | list[int],
        *,
        init_latent: np.ndarray | torch.Tensor | None = None,
        init_image: Image.Image | None = None,
        strength: float | None = None,
        on_step: Callable[[int], Any] | None = None,
    ) -> GenerationResult:
        """Images for ``embedding`` [D] (or [B, D]) float32; ``seed`` one int or B ints.

        img2img: ``init_latent`` [4, h, w] (or [B, 4, h, w]; scaled VAE latents, as
        ``vae.encode(x).latent_dist.mean * scaling_factor``; resized bilinearly to the latent
        size when smaller, e.g. a decoded coarse latent) or ``init_image`` (a picture, encoded by
        the VAE) with ``strength`` 0..1 (default: the renderer's setting): 0 = pure text-free
        IP-Adapter generation from noise (the start is not used), s > 0 = diffusers' img2img
        with ``strength=1-s`` (the last 1-s of the schedule runs, at least one step, from the
        start noised with the scheduler's ``add_noise``).
        """
        # 1. check inputs
        self.prepare()
        strength = self.settings.strength if strength is None else strength
        if not 0.0 <= strength <= 1.0:
            raise ConfigError(f"img2img strength must be 0..1, got {strength}")
        image_embeds = self._embeddings(embedding, "embedding")  # [B, 1, D]
        batch = image_embeds.shape[0]
        # 2. the text context: the empty prompt for every image
        context = self.text_embedding[None].expand(batch, -1, -1)
        # 3. the img2img start, when one is given and used
        init_latents = None
        if strength > 0.0 and (init_latent is not None or init_image is not None):
            init_latents = (self._latents(init_latent, batch) if init_latent is not None
                            else self.encode_image(init_image).expand(batch, -1, -1, -1))
        return self.generator(
            context, seed, on_step=on_step, image_embeds=image_embeds, null_image_embeds=self._null_image,
            init_latents=init_latents, denoising_strength=1.0 - strength)

    def _embeddings(self, embedding: np.ndarray | torch.Tensor, name: str) -> torch.Tensor:
        """[D] or [B, D] -> [B, 1, D] float32 on the CPU, checked (width, finiteness)."""
        tensor = torch.as_tensor(np.asarray(embedding, dtype=np.float32) if not isinstance(
            embedding, torch.Tensor) else embedding.detach().float().cpu())
        if tensor.ndim == 1:
            tensor = tensor[None]
        if tensor.ndim != 2 or tensor.shape[0] < 1:
            raise GenerationError(f"{name} must be [{self.image_embed_dim}] or [B, {self.image_embed_dim}], "
                                  f"got {list(tensor.shape)}")
        if tensor.shape[1] != self.image_embed_dim:
            raise ConfigError(
                f"{name} has {tensor.shape[1]} values, the IP-Adapter {self.source} takes "
                f"{self.image_embed_dim} ({self.embedder_id}); decode into the renderer's embedding space")
        if not torch.isfinite(tensor).all():
            raise GenerationError(f"{name} has NaN or infinite values; check the EEG window and the decoder")
        return tensor[:, None, :]

    def _latents(self, latent: np.ndarray | torch.Tensor, batch: int) -> torch.Tensor:
        """[4, h, w] or [B, 4, h, w] -> [B, 4, H, W] at the generation's latent size."""
        tensor = torch.as_tensor(np.asarray(latent, dtype=np.float32) if not isinstance(
            latent, torch.Tensor) else latent.detach().float().cpu())
        if tensor.ndim == 3:
            tensor = tensor[None]
        channels = self.generator.unet.config.in_channels
        if tensor.ndim != 4 or tensor.shape[1] != channels or tensor.shape[0] not in (1, batch):
            raise GenerationError(
                f"init_latent must be [{channels}, h, w] (or one per image), got {list(tensor.shape)}")
        if not torch.isfinite(tensor).all():
            raise GenerationError("init_latent has NaN or infinite values; check the low-level decoder")
        size = self._latent_size()
        if tuple(tensor.shape[-2:]) != (size, size):
            tensor = torch.nn.functional.interpolate(tensor, size=(size, size), mode="bilinear",
                                                     align_corners=False)
        return tensor.expand(batch, -1, -1, -1)

    def _latent_size(self) -> int:
        gen = self.generator
        image_size = gen.settings.image_size or gen.native_image_size
        return image_size // 2 ** (len(gen.vae.config.block_out_channels) - 1)

    @torch.inference_mode()
    def encode_image(self, picture: Image.Image) -> torch.Tensor:
        """[1, 4, h, w] scaled latents of ``picture`` (RGB, resized to the image size) by the
        full VAE (its latent distribution's mean, so a picture always gives the same start)."""
        self.prepare()
        gen = self.generator
        side = gen.settings.image_size or gen.native_image_size
        rgb = np.asarray(picture.convert("RGB").resize((side, side), Image.BICUBIC), np.float32)
        pixels = torch.from_numpy(rgb / 127.5 - 1.0).permute(2, 0, 1)[None]
        pixels = pixels.to(gen.device, gen.vae.dtype)
        latents = gen.vae.encode(pixels).latent_dist.mean * gen.vae.config.scaling_factor
        return latents.float().cpu()

    # -- description -------------------------------------------------------------------------

    @property
    def description(self) -> str:
        """One line for the GUI and the log."""
        s, g = self.settings, self.generator.settings
        img2img = f", img2img {s.strength:g}" if s.strength > 0 else ""
        return (f"IP-Adapter ({self.embedder_id}, scale {s.scale:g}{img2img}) on {self.generator.source} "
                f"({g.scheduler}, {g.num_inference_steps} steps, guidance {g.guidance_scale:g})")

    def __repr__(self) -> str:
        where = (f"{self.device} {self.dtype} {self.generator.attention}" if self._loaded
                 else "not prepared")
        return (f"<IPAdapterRenderer: {Path(self.source).name} ({self.image_embed_dim}-d {self.embedder_id}, "
                f"scale {self.settings.scale:g}) on {self.generator.source} | {where}>")

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        base: str | Path,
        ip_adapter: str | Path | Mapping[str, Any],
        *,
        scale: float = 1.0,
        strength: float = 0.0,
        embedder_id: str = DEFAULT_EMBEDDER_ID,
        null_image_embedding: torch.Tensor | np.ndarray | None = None,
        **generator_kwargs: Any,
    ) -> IPAdapterRenderer:
        """Load a stock SD 1.5 and IP-Adapter SD 1.5 weights, offline-capable.

        ``base``: what :meth:`ImageGenerator.from_pretrained` opens (a diffusers folder, a hub
        id, a single-file checkpoint); its text encoder gives the empty prompt's embedding
        once (zeros without one). ``ip_adapter``: a ``.safetensors`` (preferred) or ``.bin``
        file, a folder holding one, a hub id (``h94/IP-Adapter``) or a state dict.
        ``generator_kwargs`` go to ``ImageGenerator.from_pretrained`` (``scheduler``,
        ``num_inference_steps``, ``guidance_scale``, ``lora``, ``tiny_vae``, ``unet``,
        ``device``, ``dtype``, ``cuda_graphs``, ``image_size``, ``config``, ...).
        """
        if "null_context" in generator_kwargs:
            raise GenerationError("the IP-Adapter renderer's null context is the empty prompt; "
                                  "give null_image_embedding= for guidance's negative")
        settings = IPAdapterSettings(scale=scale, strength=strength)  # bad values fail before loading
        state, source = read_ip_adapter(ip_adapter)
        generator = ImageGenerator.from_pretrained(base, **generator_kwargs)
        return cls(generator, state, scale=settings.scale, strength=settings.strength,
                   embedder_id=embedder_id,
                   text_embedding=empty_prompt_embedding(base, generator_kwargs.get("config")),
                   null_image_embedding=null_image_embedding, source=source)

    @classmethod
    def from_config(cls, config: Any, **overrides: Any) -> IPAdapterRenderer:
        """Build from ``[generator]`` settings (a GeneratorConfig): ``base``, ``ip_adapter``,
        ``ip_adapter_scale``, ``ip_adapter_embedder``, ``img2img_strength`` and the sampler's
        own settings (scheduler, steps, guidance_scale, device, dtype, attention, tiny_vae,
        tiny_decoder, compile, image_size, unet, lora, cuda_graphs, model_config)."""
        if not config.base or not config.ip_adapter:
            raise ConfigError("IP-Adapter rendering needs [generator] base (a stock SD 1.5: --base) and "
                              f"[generator] ip_adapter (--ip-adapter; get it with: {IP_ADAPTER_DOWNLOAD})")
        # the tiny decoder where the base has one (a preset asks for it only there)
        has_tiny = config.tiny_vae is not None or (Path(config.base).expanduser() / "tiny_vae").is_dir()
        kwargs = dict(
            scale=config.ip_adapter_scale, strength=config.img2img_strength,
            embedder_id=config.ip_adapter_embedder, scheduler=config.scheduler,
            num_inference_steps=config.steps, guidance_scale=config.guidance_scale, device=config.device,
            dtype=config.dtype, attention=config.attention, tiny_vae=config.tiny_vae,
            tiny_decoder=has_tiny and (config.tiny_decoder or config.tiny_vae is not None),
            compile=config.compile, image_size=config.image_size, unet=config.unet, lora=config.lora,
            cuda_graphs=None if config.cuda_graphs else False, config=config.model_config,
        )
        kwargs.update(overrides)
        return cls.from_pretrained(config.base, config.ip_adapter, **kwargs)
