"""The demo's live verdict: which simulated thought a window was meant to show, which one the
shipped state classifier sees in the image made from it, and the running match rate.

The demo model folder carries ``classifier/`` (a tiny CNN naming the state of a demo image,
trained by ``training.demo``) and, in ``dd_live.json``, a ``legend``: thought -> picture
("calm": "red circle", ...). The synthetic source marks every change of its simulated thought
with a marker ``state:<name>`` at the first sample in that state; :class:`ThoughtJudge` reads
those markers and judges each image whose whole window lies in one thought. No Qt here: the
window shows what :meth:`ThoughtJudge.judge` returns.

The classifier runs on ONNX Runtime when the folder carries ``classifier/model.onnx`` (the demo
model does) and on torch otherwise (:class:`StateClassifier`, in :mod:`dd_live.state_classifier`,
imported on first use), so the demo's verdicts need no torch.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dd_live.errors import CheckpointError, ConfigError

logger = logging.getLogger(__name__)

KIND = "state_classifier"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CLASSIFIER_FOLDER = "classifier"
STATE_MARKER = "state:"  # the synthetic source's marker prefix (dd_live.sources.synthetic)
#: Images over which the running match rate is computed.
RATE_WINDOW = 50
#: Seconds after a change of thought before a window counts as showing the new one (the
#: online filter's response to the old state has faded by then).
SETTLE_SECONDS = 0.2


@dataclass(frozen=True)
class StateClassifierConfig:
    """Conv layers of ``widths`` (stride 2 each), global average pool, linear to ``n_classes``."""

    n_classes: int = 8
    image_size: int = 64
    widths: tuple[int, ...] = (16, 32, 64)

    def __post_init__(self) -> None:
        if self.n_classes < 2 or self.image_size < 8 or not self.widths or min(self.widths) < 1:
            raise ConfigError("StateClassifierConfig needs >= 2 classes, image_size >= 8 and "
                              f"widths >= 1, got {self}")


def __getattr__(name: str) -> Any:
    if name == "StateClassifier":  # torch's nn.Module: imported when asked for
        from dd_live.state_classifier import StateClassifier

        return StateClassifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_classifier(folder: str | Path) -> Any:
    """The :class:`StateClassifier` saved in ``folder`` (``config.json`` +
    ``model.safetensors``), in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from dd_live.state_classifier import StateClassifier

    folder = Path(folder)
    try:
        meta = json.loads((folder / CONFIG_FILE).read_text())
        if meta.get("kind") != KIND:
            raise CheckpointError(f"{folder / CONFIG_FILE} holds a {meta.get('kind')!r}, "
                                  f"not a {KIND}")
        config = meta["config"]
        config = StateClassifierConfig(**{**config, "widths": tuple(config["widths"])})
        model = StateClassifier(config, tuple(meta["class_names"]))
        model.load_state_dict(load_file(folder / WEIGHTS_FILE))  # strict: every key checked
    except (OSError, KeyError, TypeError, json.JSONDecodeError, RuntimeError, SafetensorError) as error:
        raise CheckpointError(f"{folder} is not a state classifier folder ({CONFIG_FILE} + "
                              f"{WEIGHTS_FILE}): {error}") from error
    return model.eval()


@dataclass(frozen=True)
class Verdict:
    """One judged image: the ``intended`` thought, the one ``decoded`` from the image, and the
    running ``match_rate`` over the last ``n_judged`` (at most :data:`RATE_WINDOW`) images."""

    intended: str
    decoded: str
    match: bool
    match_rate: float
    n_judged: int

    def __str__(self) -> str:
        mark = "=" if self.match else "≠"
        return (f"intended {self.intended} {mark} decoded {self.decoded} · match "
                f"{100 * self.match_rate:.0f}% of {self.n_judged}")


class ThoughtJudge:
    """Judges live images against the simulated thought of their window.

    Args:
        classifier: a :class:`StateClassifier` (or its ONNX twin) whose ``class_names`` are the thoughts.
        sfreq: the stream's rate (Hz), to place :data:`SETTLE_SECONDS`.
        legend: thought -> what its picture looks like (shown beside the verdict).
        rate_window: images over which the match rate runs.

    Feed it the session's events (:meth:`on_event`, markers ``state:<name>``) and results
    (:meth:`judge`); both are cheap (a 64 px image through a 24 k-parameter CNN).
    """

    def __init__(self, classifier: Any, sfreq: float,
                 legend: dict[str, str] | None = None, rate_window: int = RATE_WINDOW) -> None:
        self.classifier = classifier
        self.legend = dict(legend or {})
        self.n_settle = int(round(SETTLE_SECONDS * sfreq))
        self._changes: list[tuple[int, str | None]] = []  # (first sample, thought), in order
        self._matches: deque[bool] = deque(maxlen=rate_window)
        self.n_judged = 0
        self.n_matched = 0

    @classmethod
    def from_model_folder(cls, folder: str | Path, sfreq: float,
                          runtime: str = "auto") -> ThoughtJudge | None:
        """The judge of a model folder with a ``classifier/`` (the demo model), else None.
        ``runtime`` (``[generator] runtime``): ``"torch"`` uses the torch classifier, else
        its ONNX export when the folder has one."""
        folder = Path(folder)
        if not (folder / CLASSIFIER_FOLDER / CONFIG_FILE).is_file():
            return None
        legend: dict[str, str] = {}
        settings = folder / "dd_live.json"
        if settings.is_file():
            try:
                legend = dict(json.loads(settings.read_text(encoding="utf-8")).get("legend", {}))
            except (json.JSONDecodeError, TypeError, ValueError, AttributeError):
                logger.warning("%s: no readable legend", settings)
        return cls(_classifier(folder, runtime), sfreq, legend)

    def on_event(self, event: Any) -> None:
        """A session event; markers ``state:<name>`` (``state:none``) mark a change of thought."""
        description = str(getattr(event, "description", ""))
        if getattr(event, "kind", "") != "marker" or not description.startswith(STATE_MARKER):
            return
        name = description[len(STATE_MARKER):]
        self.set_thought(int(event.sample_index), None if name == "none" else name)

    def set_thought(self, sample_index: int, name: str | None) -> None:
        """The simulated thought is ``name`` from absolute ``sample_index`` on."""
        self._changes.append((sample_index, name))
        self._changes.sort(key=lambda change: change[0])

    def intended(self, start: int, stop: int) -> str | None:
        """The thought of the window ``[start, stop)``, or None when none was active or it
        changed within the window (or less than :data:`SETTLE_SECONDS` before it)."""
        thought = None
        for first, name in self._changes:
            if first <= start - self.n_settle:
                thought = name
            elif first < stop:
                return None
        return thought

    def judge(self, result: Any) -> Verdict | None:
        """The verdict on a :class:`~dd_live.session.GeneratedImage`, or None when its window
        had no single intended thought (or the image is not one the classifier knows)."""
        intended = self.intended(result.window_start, result.window_stop)
        names = self.classifier.class_names
        if intended is None or intended not in names or not result.images:
            return None
        decoded = names[int(self.classifier.predict(result.images[:1])[0])]
        match = decoded == intended
        self._matches.append(match)
        self.n_judged += 1
        self.n_matched += match
        return Verdict(intended, decoded, match, self.match_rate, len(self._matches))

    @property
    def match_rate(self) -> float:
        """Share of the last judged images (up to ``rate_window``) that showed their thought."""
        return sum(self._matches) / len(self._matches) if self._matches else 0.0

    def legend_lines(self) -> list[str]:
        """``"calm → red circle"``, one per thought, in the classifier's order."""
        return [f"{name} → {self.legend.get(name, '?')}" for name in self.classifier.class_names]

    def __repr__(self) -> str:
        return (f"<ThoughtJudge: {len(self.classifier.class_names)} thoughts | judged "
                f"{self.n_judged}, matched {self.n_matched}>")


def _classifier(folder: Path, runtime: str) -> Any:
    """The folder's state classifier: its ONNX export unless ``runtime`` is "torch" or there
    is none, else the torch module."""
    from dd_live.generate.onnx_runtime import CLASSIFIER_FILE

    path = folder / CLASSIFIER_FILE
    if runtime == "torch" or not path.is_file():
        return load_classifier(folder / CLASSIFIER_FOLDER)
    try:
        meta = json.loads((folder / CLASSIFIER_FOLDER / CONFIG_FILE).read_text())
        names, size = tuple(meta["class_names"]), int(meta["config"]["image_size"])
    except (OSError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{folder / CLASSIFIER_FOLDER / CONFIG_FILE} is not a state "
                              f"classifier config: {error}") from error
    from dd_live.generate.onnx_runtime import OnnxStateClassifier

    return OnnxStateClassifier(path, names, size)
