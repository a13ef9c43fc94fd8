"""The EEG side of dd-live: encoder, masked-signal pretraining model, conditioning heads, checkpoints.

Public API (other packages import only these names from ``dd_live.model``)::

    # constants
    CLIP_TOKENS = 77        # context tokens of SD 1.x cross-attention
    CLIP_DIM = 768          # width of a context token and of the CLIP image embedding

    # frozen configs (validated in __post_init__; to_dict() -> JSON-able dict, Cls.from_dict(d))
    EncoderConfig(n_channels=128, n_times=512, patch_size=4, embed_dim=1024, depth=24,
                  num_heads=16, mlp_ratio=1.0, qkv_bias=True, norm_eps=1e-5,
                  global_pool=False, train_pos_embed=False)       # .n_tokens = n_times // patch_size
    DecoderConfig(embed_dim=512, depth=8, num_heads=16, mlp_ratio=1.0)
    MaskedSignalConfig(encoder: EncoderConfig, decoder: DecoderConfig, mask_ratio=0.75)
    ConditioningConfig(context_tokens=77, context_dim=768, hidden_tokens=None, clip_dim=768)
    ConditionerConfig(encoder: EncoderConfig, conditioning: ConditioningConfig)
    PRESET_NAMES = ("reference", "small", "tiny")
    get_preset(name, kind="encoder" | "masked_signal" | "conditioner") -> the config

    # modules (all take eeg as [B, n_channels, n_times] float tensors)
    EEGEncoder(config: EncoderConfig)
        .forward(eeg) -> tokens [B, n_tokens, embed_dim]   ([B, 1, embed_dim] with global_pool)
    MaskedSignalModel(config: MaskedSignalConfig)
        .encoder: EEGEncoder                                 (pretrained weights transfer)
        .forward(eeg, mask_ratio=None) -> {"loss": [], "pred": [B, L, n_channels*patch_size],
                                           "mask": [B, L] (1 = masked)}
        .patchify(eeg) -> [B, L, patch_size*n_channels] (time-major: t_in_token*C + channel)
    ConditioningHead(n_tokens, embed_dim, config: ConditioningConfig)
        .forward(tokens [B, L, D]) -> context [B, 77, 768]
    ClipProjection(n_tokens, embed_dim, clip_dim=768)
        .forward(tokens [B, L, D]) -> [B, clip_dim]
    EEGConditioner(config: ConditionerConfig)
        .encoder, .head, .clip_projection, .null_context (Parameter [1, 77, 768])
        .forward(eeg) -> {"tokens": [B, L, D], "context": [B, 77, 768], "clip": [B, 768]}
        .encode(eeg) -> context, under torch.inference_mode (+ autocast on CUDA)

    # checkpoints
    save(model, folder) -> Path            # folder/model.safetensors + folder/config.json
    load(path) -> nn.Module (eval mode)    # our folder: the model it holds;
                                           # release checkpoint.pth: its EEGEncoder;
                                           # release generation checkpoint: its EEGConditioner
    import_reference(path, kind="auto" | "encoder" | "masked_signal" | "conditioner",
                     num_heads=None, n_times=None) -> nn.Module (eval mode)
                                           # auto: checkpoint.pth -> MaskedSignalModel,
                                           #       generation checkpoint -> EEGConditioner
    load_reference_generator_state(path) -> dict[str, Tensor]   # non-EEG keys, untouched
    convert(src, dst) -> Path              # release file (everything in it) or our folder
                                           # -> our folder; refuses a non-empty dst

Release files are opened only through torch.load(weights_only=True); the release's pickled
config classes (``config.Config_MBM_EEG``, ``config.Config_Generative_Model``, ...) become plain
dicts, any other Python global is refused (CheckpointError) and nothing in the file runs.
Speed: ``.encode()`` runs under torch.inference_mode with bf16 autocast on CUDA;
``model.compile()`` (torch.compile) is optional.

Errors: dd_live.errors.CheckpointError (files, keys, unsafe pickles), ConfigError (settings).
The ``reference`` preset reproduces the DreamDiffusion release (docs/reference.md):
encoder 151.9 M parameters, masked autoencoder 165.4 M.
"""

from dd_live.model.checkpoints import convert, load, save
from dd_live.model.conditioning import ClipProjection, ConditioningHead, EEGConditioner
from dd_live.model.config import (
    CLIP_DIM,
    CLIP_TOKENS,
    PRESET_NAMES,
    ConditionerConfig,
    ConditioningConfig,
    DecoderConfig,
    EncoderConfig,
    MaskedSignalConfig,
    get_preset,
)
from dd_live.model.encoder import EEGEncoder
from dd_live.model.masked import MaskedSignalModel
from dd_live.model.reference import import_reference, load_reference_generator_state
from dd_live.model.safe_load import check_safetensors, read_safetensors

__all__ = [
    "CLIP_DIM",
    "CLIP_TOKENS",
    "PRESET_NAMES",
    "ClipProjection",
    "ConditionerConfig",
    "ConditioningConfig",
    "ConditioningHead",
    "DecoderConfig",
    "EEGConditioner",
    "EEGEncoder",
    "EncoderConfig",
    "MaskedSignalConfig",
    "MaskedSignalModel",
    "check_safetensors",
    "convert",
    "get_preset",
    "import_reference",
    "load",
    "load_reference_generator_state",
    "read_safetensors",
    "save",
]
