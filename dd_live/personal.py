"""From a calibration session to a personal model, in the app: ``dd-live calibrate --train``
and the window's *Train my model*.

:func:`train_personal_model` fits the embedding-route decoders of :mod:`dd_live.decoders` on a
calibration session folder (the same fitting ``python -m training.decoder`` runs) and writes a
model folder ``OUT/model`` that ``dd-live run --model OUT/model`` loads. CPU only. Progress is
reported as ``progress(fraction 0..1, message)``.

No Qt here: the window's dialog is :mod:`dd_live.gui.training`.
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dd_live.errors import ConfigError

logger = logging.getLogger(__name__)

MODEL_SUBFOLDER = "model"  # OUT/model: the folder `dd-live run --model` loads
OUT_SUFFIX = "_personal"  # default OUT beside the session folder: <session>_personal/
DEFAULT_SOURCE = "synthetic"  # `dd-live run`'s default source (no --source needed for it)

Progress = Callable[[float, str], object]


@dataclass(frozen=True)
class PersonalModel:
    """A trained personal model.

    Attributes:
        folder: the model folder (``OUT/model``), for ``dd-live run --model``.
        seconds: training time, wall clock.
        summary: one line on what was kept (decoder and its validation figure).
    """

    folder: Path
    seconds: float
    summary: str


def default_output_dir(session: str | Path) -> Path:
    """Where a session's personal model goes by default: ``<session>_personal/`` beside it."""
    session = Path(session)
    return session.parent / f"{session.name}{OUT_SUFFIX}"


def train_personal_model(session: str | Path, output_dir: str | Path | None = None, *,
                         decoder: str = "all", progress: Progress | None = None) -> PersonalModel:
    """Train the embedding-route decoders on a calibration ``session`` folder; CPU only.

    Args:
        session: a folder ``dd-live calibrate`` wrote (``stimuli.tsv``, ``eeg.vhdr``...).
        output_dir: OUT (default :func:`default_output_dir`); the model goes to ``OUT/model``.
        decoder: ``"ridge"``, ``"conv"``, ``"dreamdiffusion"`` or ``"all"`` (the best one on
            the validation split is kept).
        progress: called with ``(fraction done, message)`` as training goes.

    Raises:
        ConfigError: the session folder is not a calibration session (one line with the fix).
    """
    from dd_live.calibration import STIMULI_FILE

    session = Path(session).expanduser()
    if not (session / STIMULI_FILE).is_file():
        raise ConfigError(f"{session} is not a calibration session folder (it has no "
                          f"{STIMULI_FILE}): train on a folder `dd-live calibrate` wrote")
    out = Path(output_dir).expanduser() if output_dir is not None else default_output_dir(session)
    from dd_live.decoders import train_model_folder

    t0 = time.perf_counter()
    report = progress or (lambda fraction, message: None)
    report(0.0, f"training a personal model on {session.name}")
    result = train_model_folder(session, out, decoder=decoder, progress=report)
    seconds = time.perf_counter() - t0
    folder = Path(getattr(result, "folder", out / MODEL_SUBFOLDER))
    summary = str(getattr(result, "summary", "") or f"model folder {folder}")
    report(1.0, f"trained in {seconds:.0f} s: {summary}")
    logger.info("personal model %s trained in %.1f s: %s", folder, seconds, summary)
    return PersonalModel(folder, seconds, summary)


def run_command(model_folder: str | Path, source: str | None = None) -> str:
    """The ``dd-live run`` command line that runs live with ``model_folder`` (``--source``
    only when it is not the default source)."""
    words = ["dd-live", "run", "--model", str(model_folder)]
    if source and source.strip() != DEFAULT_SOURCE:
        words += ["--source", source]
    return shlex.join(words)
