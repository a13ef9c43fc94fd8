"""The DreamDiffusion release's fine-tuned generation checkpoint as one live model.

The one public file (~5.2 GB, ``model_state_dict`` in the original LDM layout, see
:mod:`dd_live.generate.reference`) holds everything generation needs: the EEG conditioner
(``cond_stage_model.*``: encoder, channel and dim mappers, CLIP head), the UNet with its
time-embedding conditioning (``model.diffusion_model.*``, ``time_embed_condtion``) and the VAE
(``first_stage_model.*``). :func:`load_release` builds all three from it, each strictly (every
key placed or named as ignored), reading the file only with ``torch.load(weights_only=True)``
and the allow-list for the release's pickled config classes (:mod:`dd_live.model.safe_load`);
zip-format files are memory-mapped, so the unused CLIP vision model it also carries costs no
memory.

The release samples with PLMS, 250 steps, no guidance, the full VAE (``--preset release``);
any other sampler of :data:`~dd_live.generate.SCHEDULERS` runs on the same weights.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from dd_live.errors import CheckpointError
from dd_live.generate.generator import ImageGenerator
from dd_live.model import EEGConditioner, import_reference

logger = logging.getLogger(__name__)

RELEASE_SUFFIXES = (".pth", ".ckpt", ".pt")


def load_release(path: str | Path, config: Any, settings: dict[str, Any]
                 ) -> tuple[EEGConditioner, ImageGenerator, str]:
    """(conditioner, generator, description) of a DreamDiffusion generation checkpoint.

    Args:
        path: the release's fine-tuned checkpoint file.
        config: the :class:`~dd_live.config.GeneratorConfig` (``model_config``: the folder of
            component configs, default the packaged SD 1.5 ones; ``tiny_decoder``).
        settings: keyword arguments for :meth:`ImageGenerator.from_pretrained` (sampler,
            steps, guidance, device, dtype, ...), as :class:`~dd_live.decoding.EEGDecoder`
            builds them.

    Raises:
        CheckpointError: the file is not a DreamDiffusion generation checkpoint (e.g. the
            pretrained-encoder ``checkpoint.pth`` or a plain Stable Diffusion checkpoint), or it
            refers to a Python global that is not allowed (nothing from it is run).
        GenerationError: its generator part does not fit the component configs.
    """
    path = Path(path)
    if path.suffix.lower() not in RELEASE_SUFFIXES:
        raise CheckpointError(
            f"{path.name}: a model file must be a DreamDiffusion generation checkpoint "
            f"({', '.join(RELEASE_SUFFIXES)}, with 'model_state_dict'); a Stable Diffusion "
            "checkpoint has no EEG encoder. Give a dd-live model folder otherwise"
        )
    try:
        conditioner = import_reference(path, kind="conditioner")
    except CheckpointError as exc:
        raise CheckpointError(
            f"{path} cannot run as a live model: {exc} (--model takes a dd-live model folder or "
            "the DreamDiffusion release's fine-tuned generation checkpoint)"
        ) from None
    tiny_vae = settings.get("tiny_vae")
    if getattr(config, "tiny_decoder", False) and tiny_vae is None:
        logger.warning("the tiny decoder was asked for but %s carries none and [generator] "
                       "tiny_vae is not set: decoding with the release's full VAE", path.name)
    generator = ImageGenerator.from_pretrained(
        str(path), null_context=conditioner.null_context,
        tiny_decoder=tiny_vae is not None, config=getattr(config, "model_config", None),
        **settings)
    if generator.time_cond is None:
        logger.warning("%s has no time-embedding conditioning (time_embed_condtion): the UNet "
                       "sees the EEG through cross-attention only", path.name)
    description = f"DreamDiffusion release checkpoint {path.name}"
    logger.info("%s: EEG conditioner %d ch x %d, %s", description,
                conditioner.config.encoder.n_channels, conditioner.config.encoder.n_times,
                generator)
    return conditioner, generator, description
