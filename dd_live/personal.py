"""From a calibration session to a personal model, in the app: ``dd-live calibrate --train``
and the window's *Train my model*.

:func:`train_personal_model` runs ``python -m training.decoder`` (the documented command) on a
calibration session folder and returns the model folder ``OUT/model`` that ``dd-live run
--model OUT/model`` loads. CPU only. Progress is reported as ``progress(fraction 0..1,
message)``. dd_live never imports ``training``: the command runs in a child process, from the
checkout dd_live itself runs from.

No Qt here: the window's dialog is :mod:`dd_live.gui.training`.
"""

from __future__ import annotations

import logging
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dd_live.errors import ConfigError, DDLiveError

logger = logging.getLogger(__name__)

TRAINING_MODULE = "training.decoder"  # the documented training command, run as a child
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

    Runs the documented command ``python -m training.decoder --data SESSION --output-dir OUT``
    in a child process of this interpreter (the training code of a dd-live checkout; dd_live
    never imports it), reading its progress bars as it goes.

    Args:
        session: a folder ``dd-live calibrate`` wrote (``stimuli.tsv``, ``eeg.vhdr``...).
        output_dir: OUT (default :func:`default_output_dir`); the model goes to ``OUT/model``.
        decoder: ``"ridge"``, ``"conv"``, ``"dreamdiffusion"`` or ``"all"`` (the best one on
            the validation split is kept).
        progress: called with ``(fraction done, message)`` as training goes.

    Raises:
        ConfigError: the session folder is not a calibration session, or the training code is
            not at hand (one line with the fix).
        DDLiveError: training failed (its last error line).
    """
    from dd_live.calibration import STIMULI_FILE

    session = Path(session).expanduser().resolve()
    if not (session / STIMULI_FILE).is_file():
        raise ConfigError(f"{session} is not a calibration session folder (it has no "
                          f"{STIMULI_FILE}): train on a folder `dd-live calibrate` wrote")
    out = (Path(output_dir).expanduser() if output_dir is not None
           else default_output_dir(session)).resolve()
    root = training_root()
    report = progress or (lambda fraction, message: None)
    t0 = time.perf_counter()
    report(0.0, f"training a personal model on {session.name}")
    command = [sys.executable, "-m", TRAINING_MODULE, "--data", str(session), "--output-dir",
               str(out), "--model", decoder]
    logger.info("training: %s (in %s)", shlex.join(command), root)
    tail = _run_training(command, root, _StageProgress(decoder, report))
    seconds = time.perf_counter() - t0
    folder = out / MODEL_SUBFOLDER
    if tail.returncode != 0 or not (folder / "dd_live.json").is_file():
        reason = tail.last_error or f"exit status {tail.returncode}"
        raise DDLiveError(f"training the personal model failed: {reason}")
    summary = _summary(out)
    report(1.0, f"trained in {seconds:.0f} s: {summary}")
    logger.info("personal model %s trained in %.1f s: %s", folder, seconds, summary)
    return PersonalModel(folder, seconds, summary)


def training_root() -> Path:
    """The dd-live checkout whose ``training/`` package trains decoders.

    Raises:
        ConfigError: dd-live runs from an installed wheel, which has no training code.
    """
    import dd_live

    root = Path(dd_live.__file__).resolve().parents[1]
    if not (root / "training" / "decoder.py").is_file():
        raise ConfigError("training a personal model needs dd-live's training code, which an "
                          "installed wheel does not carry: run from a checkout (git clone ...; "
                          "pip install -e '.[train]') or train there with python -m "
                          "training.decoder --data SESSION --output-dir OUT")
    return root


@dataclass
class _Finished:
    returncode: int
    last_error: str


# tqdm's bars on stderr: "embedding images:  45%|####5     | 9/20 [...]"
_BAR = re.compile(r"^\s*(?P<desc>[^:|]*?):?\s+(?P<pct>\d{1,3})%\|")


class _StageProgress:
    """The child's progress bars -> one overall fraction that never goes back: the stages come
    in a known order (embedding the images, then each torch decoder), each takes its share."""

    def __init__(self, decoder: str, report: Progress) -> None:
        torch_decoders = [d for d in ("conv", "dreamdiffusion") if decoder in (d, "all")]
        self.stages = ["embedding images", *(f"training {d}" for d in torch_decoders)]
        self.report = report
        self.done = 0.0
        self.message = ""

    def line(self, text: str) -> None:
        match = _BAR.match(text)
        if match is None:
            return
        desc, fraction = match.group("desc").strip(), min(int(match.group("pct")), 100) / 100
        if desc not in self.stages:
            self.stages.append(desc)
        share = 1.0 / (len(self.stages) + 1)  # the last share: ridge, the low-level head, writing
        done = max(self.done, (self.stages.index(desc) + fraction) * share)
        message = f"{desc} {fraction:.0%}"
        if done != self.done or message != self.message:  # tqdm redraws a bar unchanged too
            self.done, self.message = done, message
            self.report(done, message)


def _run_training(command: list[str], root: Path, stages: _StageProgress) -> _Finished:
    """Run the child, feeding its stderr (bars end in carriage returns) to ``stages``."""
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    last_error, buffer = "", ""
    with subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stderr is not None
        while True:
            chunk = proc.stderr.read(256)
            if not chunk:
                break
            buffer += chunk
            *lines, buffer = re.split(r"[\r\n]", buffer)
            for text in lines:
                if "error" in text.lower():
                    last_error = text.strip()
                stages.line(text)
    return _Finished(proc.returncode, last_error)


def _summary(out: Path) -> str:
    """One line from ``OUT/results.json``: the kept decoder and its test figures."""
    import json

    try:
        results = json.loads((out / "results.json").read_text(encoding="utf-8"))
        kept = results["kept"]
        test = results["decoders"][kept].get("test", {})
    except (OSError, ValueError, KeyError, TypeError):
        return f"model folder {out / MODEL_SUBFOLDER}"
    figures = ", ".join(f"{key} {test[key]:.2f}" for key in ("top1", "two_way") if key in test)
    n_way = test.get("n_way")
    return (f"kept the {kept} decoder" + (f" ({n_way}-way test: {figures})" if figures and n_way
                                          else ""))


def run_command(model_folder: str | Path, source: str | None = None) -> str:
    """The ``dd-live run`` command line that runs live with ``model_folder`` (``--source``
    only when it is not the default source)."""
    words = ["dd-live", "run", "--model", str(model_folder)]
    if source and source.strip() != DEFAULT_SOURCE:
        words += ["--source", source]
    return shlex.join(words)
