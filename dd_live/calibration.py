"""``dd-live calibrate``: show images in a randomised design and record the EEG they evoke.

A calibration run is a recording (:class:`~dd_live.recording.SessionRecorder`, the same folder
``dd-live record`` writes) plus what was shown when:

- ``stimuli.tsv``: one row per presented image, written as its onset is placed in the EEG:
  ``trial, image_id, file, sha256, onset_sample, onset_time, split`` (``onset_sample`` indexes
  ``eeg.eeg``; ``onset_time`` is the frame flip on the stream's clock);
- ``events.jsonl`` / ``eeg.vmrk``: a marker ``image:<image_id>`` at the same sample;
- ``calibration.json``: the design, the image list and the split.

With a real LSL or BrainFlow source each onset is also pushed as an LSL marker (stream
``dd-live-calibration``, type ``Markers``, stamped at the flip on the LSL clock), so LabRecorder
users get it too.

Everything is written as it happens: an aborted run (Esc, closed window, Ctrl+C, or
``max_trials``) leaves a valid session folder whose rows all point at recorded samples.

:func:`session_epochs` is the one preprocessing path from a recorded session to the model's
input: the session replayed through the live app's acquisition (its filter, gap handling, ring
buffers), marker windows (:class:`~dd_live.stream.MarkerWindower`) and
:class:`~dd_live.stream.WindowPreprocessor`.
Training (``training.data.calibration``) calls it, so training and inference cannot drift.

No Qt here, not even lazily: the module sits below the GUI like the session. What shows the
trials comes in as an argument (:data:`PresentTrials`): the CLI passes the full-screen window
(:func:`dd_live.gui.presenter.present_fullscreen`); :class:`HeadlessPresenter` runs the same
schedule without a screen (tests, the simulated viewer at ``--speed 0``).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import math
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.config import AppConfig
from dd_live.errors import ConfigError
from dd_live.sources.base import Source
from dd_live.sources.readers import Recording

logger = logging.getLogger(__name__)

DESIGNS = ("rsvp", "slow")
SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
STIMULI_FILE = "stimuli.tsv"
CALIBRATION_FILE = "calibration.json"
COPIED_IMAGES = "stimuli"
MARKER_PREFIX = "image:"
MARKER_STREAM = "dd-live-calibration"
TABLE_COLUMNS = ("trial", "image_id", "file", "sha256", "onset_sample", "onset_time", "split")
ONSET_LOOKBACK = 2.0  # s of received samples searched for an onset stamped before they arrived
LEAD_OUT_MARGIN = 0.25  # s recorded after the last window, for samples still in transit
REPLAY_CHUNK = 0.02  # s per chunk when a session is replayed for training (dd-live replay's)
REPLAY_BUFFER = 120.0  # s of samples kept while a replay for training is cut into windows
ID_LENGTH = 12  # hex digits of the content hash that make an image id
#: (on, blank, blank jitter) seconds per design: THINGS-EEG2-like rapid serial presentation, or
#: a slow design with a jittered blank.
DESIGN_TIMING = {"rsvp": (0.1, 0.1, 0.0), "slow": (1.0, 0.6, 0.2)}


# -- the design ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationConfig:
    """How a calibration run presents its images.

    Attributes:
        design: ``"rsvp"`` (100 ms image, 100 ms blank) or ``"slow"`` (1 s image, 0.6 +/- 0.2 s
            blank); ``on``/``blank``/``jitter`` override its timing (seconds).
        n_trials: images shown in all; None shows every training image once and every test
            image ``test_repeats`` times (one block). More trials repeat reshuffled blocks.
        test_images: how many images are held out for testing (never trained on); None: 20 %
            of them, at least 1 (0 when there is only one image).
        test_repeats: presentations of each test image per block (averaged at evaluation).
        break_every: a pause every this many trials (0: none); ``break_duration`` seconds.
        seed: the randomisation (split and order).
        lead_in: seconds of signal recorded before the first image (the online filter settles).
        copy_images: copy the images into the session folder (``stimuli/<sha256>.<ext>``).
    """

    design: str = "rsvp"
    n_trials: int | None = None
    on: float | None = None
    blank: float | None = None
    jitter: float | None = None
    test_images: int | None = None
    test_repeats: int = 4
    break_every: int = 0
    break_duration: float = 10.0
    seed: int = 0
    lead_in: float = 2.0
    copy_images: bool = False

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ConfigError(f"calibration design must be one of {DESIGNS}, got {self.design!r}")
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.n_trials}")
        for name in ("on", "blank", "jitter"):
            value = getattr(self, name)
            if value is not None and not (0 <= value <= 60 and math.isfinite(value)):
                raise ConfigError(f"calibration {name} must be 0..60 s, got {value}")
        if self.on is not None and self.on <= 0:
            raise ConfigError(f"calibration on-time must be > 0 s, got {self.on}")
        if self.test_images is not None and self.test_images < 0:
            raise ConfigError(f"test_images must be >= 0, got {self.test_images}")
        if self.test_repeats < 1 or self.break_every < 0 or self.break_duration < 0:
            raise ConfigError("test_repeats must be >= 1; break_every and break_duration >= 0")
        if not 0 <= self.lead_in <= 600:
            raise ConfigError(f"calibration lead_in must be 0..600 s, got {self.lead_in}")

    @property
    def timing(self) -> tuple[float, float, float]:
        """``(on, blank, jitter)`` seconds."""
        on, blank, jitter = DESIGN_TIMING[self.design]
        return (on if self.on is None else self.on, blank if self.blank is None else self.blank,
                jitter if self.jitter is None else self.jitter)


@dataclass(frozen=True)
class Stimulus:
    """One image of the calibration set."""

    image_id: str
    path: Path
    sha256: str
    split: str


@dataclass(frozen=True)
class Trial:
    """One presentation: ``on`` seconds of ``stimulus``, then ``blank`` seconds of nothing."""

    index: int
    stimulus: Stimulus
    on: float
    blank: float
    pause_before: float = 0.0  # a break (seconds) before this trial


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_images(images: str | Path) -> list[Path]:
    """The images of a folder (sorted), or those a list file names (one path per line, relative
    to the list file)."""
    path = Path(images).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        files = [(path.parent / line).resolve() for line in lines if line and not line.startswith("#")]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise ConfigError(f"--images {path}: {len(missing)} listed file(s) do not exist, "
                              f"e.g. {missing[0]}")
    else:
        raise ConfigError(f"--images {path} does not exist: give a folder of images or a list file")
    if not files:
        raise ConfigError(f"--images {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def make_stimuli(files: Sequence[Path], config: CalibrationConfig) -> list[Stimulus]:
    """Hash the images, drop duplicates (same content), and split them by image."""
    seen: dict[str, Path] = {}
    for file in files:
        digest = file_sha256(file)
        if digest in seen:
            logger.warning("%s has the same content as %s: shown as one image", file, seen[digest])
            continue
        seen[digest] = Path(file).resolve()
    n_images = len(seen)
    n_test = config.test_images
    if n_test is None:
        n_test = 0 if n_images < 2 else max(1, round(0.2 * n_images))
    if n_test >= n_images and n_images > 0 and n_test > 0:
        raise ConfigError(f"{n_test} test images asked but there are only {n_images} images: "
                          "keep at least one for training (lower --test-images)")
    rng = np.random.default_rng([config.seed, 1])
    test = set(rng.permutation(n_images)[:n_test].tolist())
    return [Stimulus(digest[:ID_LENGTH], path, digest, "test" if k in test else "train")
            for k, (digest, path) in enumerate(seen.items())]


def make_schedule(stimuli: Sequence[Stimulus], config: CalibrationConfig) -> list[Trial]:
    """The randomised trial list: blocks of every training image once and every test image
    ``test_repeats`` times, each block shuffled (no image twice in a row across blocks when
    avoidable), cut at ``n_trials``; blanks jittered uniformly by ``+/- jitter``."""
    if not stimuli:
        raise ConfigError("no images to present")
    rng = np.random.default_rng([config.seed, 2])
    block = [s for s in stimuli for _ in range(config.test_repeats if s.split == "test" else 1)]
    n_trials = config.n_trials or len(block)
    order: list[Stimulus] = []
    while len(order) < n_trials:
        shuffled = [block[k] for k in rng.permutation(len(block))]
        if order and len(shuffled) > 1 and shuffled[0] is order[-1]:
            shuffled[0], shuffled[-1] = shuffled[-1], shuffled[0]
        order.extend(shuffled)
    on, blank, jitter = config.timing
    trials = []
    for k, stimulus in enumerate(order[:n_trials]):
        pause = config.break_duration if config.break_every and k and k % config.break_every == 0 else 0.0
        this_blank = max(0.0, blank + (rng.uniform(-jitter, jitter) if jitter else 0.0))
        trials.append(Trial(k, stimulus, on, this_blank, pause))
    return trials


# -- clocks ----------------------------------------------------------------------------------------
def stream_clock(source: Source) -> Callable[[], float]:
    """The clock the source's timestamps are on (an onset must be stamped on it).

    LSL inlets: the LSL clock; BrainFlow boards: the Unix clock; the synthetic source and file
    replays: ``time.monotonic`` (paced) or their sample clock (as fast as possible).
    """
    from dd_live.sources.synthetic import SyntheticSource

    kind = type(source).__name__
    if isinstance(source, SyntheticSource):
        if source.realtime:
            return time.monotonic
        return lambda: source.sample_time(source.n_done)
    if kind == "LSLSource":
        import pylsl

        return pylsl.local_clock
    if kind == "BrainFlowSource":
        return time.time
    return time.monotonic


# -- the run -----------------------------------------------------------------------------------------
@dataclass
class _Pending:
    trial: Trial
    onset_time: float


class CalibrationRun:
    """One calibration: a recording session plus the presented images' onsets.

    Args:
        config: the design.
        stimuli: the images (:func:`make_stimuli`).
        app_config: the app's settings (``[source]``, ``[record]`` root...); recording is on.
        source: the source (default: ``app_config.source.spec``).
        speed: 1 presents in real time; 0 (the synthetic source only) runs in simulated time, as
            fast as the CPU allows: the presenter waits by stepping the source.
        markers: push LSL markers (default: when the source is LSL or BrainFlow).
        name: session folder name suffix.

    ``start()``, then a presenter calls :meth:`flip` at each image onset and :meth:`wait` /
    :meth:`poll` between; ``stop()`` ends it (safe at any moment, and twice).
    """

    def __init__(self, config: CalibrationConfig, stimuli: Sequence[Stimulus],
                 app_config: AppConfig | None = None, *, source: Source | None = None,
                 speed: float = 1.0, markers: bool | None = None,
                 name: str = "calibration") -> None:
        from dd_live.session import LiveSession
        from dd_live.sources import SyntheticSource, open_source

        self.config = config
        app_config = app_config or AppConfig()
        if speed not in (0, 1):
            raise ConfigError(f"--speed must be 1 (real time) or 0 (simulated time, the synthetic "
                              f"source only), got {speed:g}")
        if source is None:
            overrides = {"realtime": False} if speed == 0 and _is_synthetic(app_config.source.spec) else {}
            source = open_source(app_config.source.spec, **overrides)
        self.simulated = speed == 0
        if self.simulated and not (isinstance(source, SyntheticSource) and not source.realtime):
            raise ConfigError("--speed 0 (simulated time) needs the synthetic source, not paced by "
                              "the clock (e.g. 'synthetic?viewer=1'); a real device runs in real "
                              "time: --speed 1")
        self.config = config
        self.stimuli = list(stimuli)
        self.source = source
        record = dataclasses.replace(app_config.record, enabled=True, name=name)
        # windows are cut at the image markers when this session's model runs live
        window = dataclasses.replace(app_config.window, mode="marker",
                                     marker_match=f"{MARKER_PREFIX}.*")
        self.app_config = dataclasses.replace(app_config, record=record, window=window)
        self.session = LiveSession(self.app_config, source=source, generate=False,
                                   threaded=not self.simulated)
        self.clock = stream_clock(source)
        self._use_markers = markers
        self.marker_source_id = f"{MARKER_STREAM}-{uuid.uuid4().hex[:12]}"  # of the LSL outlet
        self._outlet = None
        self._pending: list[_Pending] = []
        self._search_from = 0
        self._last_placed = 0
        self._last_onset: float | None = None
        self._table = None
        self._writer = None
        self.rows: list[dict[str, Any]] = []
        self.n_presented = 0
        self.aborted = False
        self.folder: Path | None = None
        self._stopped = False

    def __repr__(self) -> str:
        return (f"<CalibrationRun: {self.config.design} | {len(self.stimuli)} images | "
                f"{self.n_presented} shown, {len(self.rows)} placed | {self.folder}>")

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> CalibrationRun:
        self.session.start()
        self.folder = self.session.recording_path
        copies = {}
        if self.config.copy_images:
            (self.folder / COPIED_IMAGES).mkdir(exist_ok=True)
            for s in self.stimuli:
                target = self.folder / COPIED_IMAGES / f"{s.sha256}{s.path.suffix.lower()}"
                shutil.copyfile(s.path, target)
                copies[s.image_id] = str(target.relative_to(self.folder))
        info = self.session.info
        (self.folder / CALIBRATION_FILE).write_text(json.dumps({
            "config": dataclasses.asdict(self.config),
            "timing": dict(zip(("on", "blank", "jitter"), self.config.timing)),
            "simulated_time": self.simulated,
            "source": {"name": info.name, "sfreq": info.sfreq, "n_channels": info.n_channels},
            "images": [{"image_id": s.image_id, "file": str(s.path), "sha256": s.sha256,
                        "split": s.split, **({"copy": copies[s.image_id]} if copies else {})}
                       for s in self.stimuli],
        }, indent=1), encoding="utf-8")
        self._table = open(self.folder / STIMULI_FILE, "w", encoding="utf-8", newline="")  # noqa: SIM115
        self._writer = csv.DictWriter(self._table, TABLE_COLUMNS, delimiter="\t")
        self._writer.writeheader()
        self._table.flush()
        kind = type(self.source).__name__
        if self._use_markers or (self._use_markers is None and kind in ("LSLSource", "BrainFlowSource")):
            self._outlet = _marker_outlet(self.marker_source_id)
        logger.info("calibration: %d images (%d test), recording into %s", len(self.stimuli),
                    sum(s.split == "test" for s in self.stimuli), self.folder)
        return self

    def flip(self, trial: Trial, onset_time: float | None = None, pixels: np.ndarray | None = None) -> float:
        """The image of ``trial`` is on screen now (or since ``onset_time``, stream clock).

        The simulated viewer (if the source is one) sees ``pixels`` (or the image file) from
        that moment. Returns the onset time."""
        if onset_time is None:
            onset_time = self.clock()
        viewer = getattr(self.source, "viewer", None)
        if viewer is not None:
            if pixels is None:
                pixels = load_pixels(trial.stimulus.path)
            self.source.present(pixels, onset_time, label=trial.stimulus.image_id)
        if self._outlet is not None:
            import pylsl

            # stamped at the flip, in the LSL clock: the onset's age on the source's clock
            # (LSL, Unix or monotonic) carried over to LSL's own
            age = max(0.0, self.clock() - onset_time)
            self._outlet.push_sample([MARKER_PREFIX + trial.stimulus.image_id],
                                     pylsl.local_clock() - age)
        self._pending.append(_Pending(trial, onset_time))
        self._last_onset = onset_time
        self.n_presented += 1
        return onset_time

    def _wait_for_last_window(self) -> None:
        """Record until the last onset's ``[window] offset + length`` has passed (an rsvp
        trial's 0.2 s is shorter than the 0.46 s its window needs), so a finished run's every
        image has a whole window to train on."""
        if self._last_onset is None:
            return
        w = self.app_config.window
        left = self._last_onset + w.offset + w.length + 1.0 / self.source.info.sfreq - self.clock()
        if left > 0:
            self.wait(left + (0.0 if self.simulated else LEAD_OUT_MARGIN))

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of signal pass (sleeps in real time; steps the source when simulated)."""
        if self.simulated:
            raw = self.session.raw
            target = self.source.n_done + int(round(seconds * self.source.info.sfreq))
            while self.source.n_done < target or raw.n_written < target:
                self.session.step()
            self.poll()
        else:
            deadline = time.monotonic() + seconds
            while (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, 0.01))
            self.poll()

    def poll(self) -> int:
        """Place the onsets whose samples have arrived; returns how many are still waiting."""
        raw = self.session.raw
        if raw is None or not self._pending or raw.n_written == 0:
            return len(self._pending)
        start = max(self._search_from, raw.first_index)
        if start >= raw.n_written:
            return len(self._pending)
        _, stamps = raw.get(start, raw.n_written)
        placed = 0
        for pending in self._pending:
            k = int(np.searchsorted(stamps, pending.onset_time - 1e-9))
            if k >= len(stamps):
                break
            self._place(pending, start + k, float(stamps[k]))
            self._last_placed = start + k
            placed += 1
        del self._pending[:placed]
        # onsets are stamped at the flip, which may precede samples already received: look back
        lookback = int(ONSET_LOOKBACK * self.source.info.sfreq)
        self._search_from = max(self._last_placed, raw.n_written - lookback)
        return len(self._pending)

    def _place(self, pending: _Pending, sample: int, stamp: float) -> None:
        trial, stim = pending.trial, pending.trial.stimulus
        row = {"trial": trial.index, "image_id": stim.image_id, "file": str(stim.path),
               "sha256": stim.sha256, "onset_sample": sample,
               "onset_time": f"{pending.onset_time:.6f}", "split": stim.split}
        self.rows.append(row)
        self._writer.writerow(row)
        self._table.flush()
        recorder = self.session.recorder
        if recorder is not None:
            recorder.add_event({"type": "marker", "sample": sample, "timestamp": stamp,
                                "description": MARKER_PREFIX + stim.image_id, "trial": trial.index,
                                "onset_time": pending.onset_time, "split": stim.split})

    def stop(self, aborted: bool = False) -> Path | None:
        """End the run: place what can be placed, close the recording. Safe to call twice."""
        if self._stopped:
            return self.folder
        self._stopped = True
        self.aborted = self.aborted or aborted
        try:
            if self.session.raw is not None:
                if not self.aborted:  # the last image's window ends after its blank
                    self._wait_for_last_window()
                if self.simulated and self._pending:
                    self.wait(1.0 / self.source.info.sfreq)
                self.poll()
        except Exception:
            logger.exception("calibration: could not place the last onsets")
        if self._pending:
            logger.warning("calibration: %d onset(s) had no recorded sample yet and are left out",
                           len(self._pending))
        self.session.stop()
        if self._table is not None:
            self._table.close()
        if self.folder is not None:
            path = self.folder / CALIBRATION_FILE
            summary = json.loads(path.read_text(encoding="utf-8"))
            summary.update({"n_presented": self.n_presented, "n_placed": len(self.rows),
                            "aborted": self.aborted})
            path.write_text(json.dumps(summary, indent=1), encoding="utf-8")
        logger.info("calibration %s: %d of %d images placed in %s",
                    "aborted" if self.aborted else "done", len(self.rows), self.n_presented,
                    self.folder)
        return self.folder

    def __enter__(self) -> CalibrationRun:
        return self.start()

    def __exit__(self, exc_type, *exc: Any) -> None:
        self.stop(aborted=exc_type is not None)


class HeadlessPresenter:
    """Runs a schedule without a screen: each onset is "flipped" when its time comes.

    In simulated time (``--speed 0``) the run's clock is the source's sample clock, so onsets
    fall exactly where the schedule puts them; in real time it sleeps in between.
    """

    def __init__(self, run: CalibrationRun) -> None:
        self.run = run
        self._pixels: dict[str, np.ndarray] = {}

    def present(self, trials: Sequence[Trial], max_trials: int | None = None,
                should_stop: Callable[[], bool] | None = None) -> int:
        """Show ``trials`` (the first ``max_trials``); returns how many were shown."""
        run = self.run
        n_shown = 0
        if run.config.lead_in:
            run.wait(run.config.lead_in)
        for trial in trials:
            if max_trials is not None and n_shown >= max_trials:
                run.aborted = True
                break
            if should_stop is not None and should_stop():
                run.aborted = True
                break
            if trial.pause_before:
                run.wait(trial.pause_before)
            stim = trial.stimulus
            pixels = self._pixels.get(stim.image_id)
            if pixels is None and getattr(run.source, "viewer", None) is not None:
                pixels = self._pixels.setdefault(stim.image_id, load_pixels(stim.path))
            run.flip(trial, pixels=pixels)
            run.wait(trial.on + trial.blank)
            n_shown += 1
        return n_shown


#: What shows a started run's trials on a screen: ``present(run, trials, max_trials=N)`` calls
#: ``run.flip`` at each image onset and ``run.wait`` in between, and returns when the trials are
#: done or the run was aborted (Esc, a closed window, ``max_trials``).
PresentTrials = Callable[..., object]


def load_pixels(path: str | Path) -> np.ndarray:
    """``(height, width, 3)`` uint8 RGB of an image file."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _is_synthetic(spec: str) -> bool:
    return spec.strip().lower().split("?")[0].split(":")[0] == "synthetic"


def _marker_outlet(source_id: str):
    import pylsl

    info = pylsl.StreamInfo(MARKER_STREAM, "Markers", 1, pylsl.IRREGULAR_RATE, pylsl.cf_string,
                            source_id)
    return pylsl.StreamOutlet(info)


# -- reading a calibration session back ---------------------------------------------------------------
@dataclass(frozen=True)
class CalibrationSession:
    """A recorded calibration session: its stimulus table and the image files.

    Attributes:
        folder: the session folder.
        rows: the stimulus table, one dict per placed onset (``onset_sample`` as int).
        images: ``{image_id: path}`` (the copy in the folder when there is one).
    """

    folder: Path
    rows: tuple[dict[str, Any], ...]
    images: dict[str, Path]

    @classmethod
    def open(cls, folder: str | Path) -> CalibrationSession:
        from dd_live.sources.bids import is_bids_spec

        if is_bids_spec(folder):  # a run of a BIDS data set that dd-live export-bids wrote
            from dd_live.bids import calibration_session

            return calibration_session(folder)
        folder = Path(folder)
        table = folder / STIMULI_FILE
        if not table.is_file():
            raise ConfigError(f"{folder} is not a calibration session: it has no {STIMULI_FILE} "
                              "(record one with dd-live calibrate)")
        rows = []
        with table.open(encoding="utf-8", newline="") as file:
            for row in csv.DictReader(file, delimiter="\t"):
                if row.get("onset_sample") in (None, "") or row.get("split") is None:
                    logger.warning("%s: skipped a truncated row", table)
                    continue
                row["onset_sample"] = int(row["onset_sample"])
                row["trial"] = int(row["trial"])
                rows.append(row)
        images = {}
        meta = folder / CALIBRATION_FILE
        copies = {}
        if meta.is_file():
            for image in json.loads(meta.read_text(encoding="utf-8")).get("images", []):
                if "copy" in image:
                    copies[image["image_id"]] = folder / image["copy"]
        for row in rows:
            images.setdefault(row["image_id"], copies.get(row["image_id"], Path(row["file"])))
        return cls(folder, tuple(rows), images)

    def check_images(self) -> None:
        """Every image exists and still has the content the session recorded."""
        hashes = {row["image_id"]: row["sha256"] for row in self.rows}
        for image_id, path in self.images.items():
            if not path.is_file():
                raise ConfigError(f"{self.folder}: image {image_id} ({path}) is gone; put it back "
                                  "or record with --copy-images")
            if file_sha256(path) != hashes[image_id]:
                raise ConfigError(f"{self.folder}: {path} changed since the session was recorded "
                                  f"(its content no longer matches {hashes[image_id][:12]}...)")


def session_epochs(recording: Recording, onsets: Sequence[int], app_config: AppConfig,
                   n_channels: int, n_times: int, *, target_names: Sequence[str] | None = None,
                   chunk_duration: float = REPLAY_CHUNK) -> tuple[np.ndarray, np.ndarray]:
    """The model inputs of the windows after ``onsets``, made by the live app's own code.

    The recording is replayed (:class:`~dd_live.sources.ReplaySource`, as fast as possible,
    ``chunk_duration`` chunks as ``dd-live replay``) through an
    :class:`~dd_live.stream.AcquisitionThread` stepped on this thread, with the online filter of
    :func:`dd_live.session.make_filter` (gaps restart it as they do live; an automatic mains
    notch decides as it does live), into ring buffers; the windows are cut by a
    :class:`~dd_live.stream.MarkerWindower` with ``[window] length/offset`` and made into model
    inputs by a :class:`~dd_live.stream.WindowPreprocessor` with ``[generator] channel_method``.

    Args:
        recording: the raw samples as received (a session folder read by
            :func:`dd_live.sources.readers.read_recording`).
        onsets: sample indices of the stimulus onsets in ``recording``.
        n_channels, n_times: the model's input shape.

    Returns:
        ``(epochs, kept)``: ``(n_kept, n_channels, n_times)`` float32 and the indices into
        ``onsets`` whose window lies inside the recording.
    """
    from dd_live.session import make_filter
    from dd_live.sources.replay import ReplaySource
    from dd_live.stream import AcquisitionThread, MarkerWindower, RingBuffer, WindowPreprocessor

    source = ReplaySource(recording, speed=0, chunk_duration=chunk_duration)
    info = source.info
    w = app_config.window
    windower = MarkerWindower(info.sfreq, w.length, w.offset)
    for k, onset in enumerate(onsets):
        windower.add_marker(int(onset), str(k))
    # windows are cut while the replay runs, so a long file needs no buffer of its whole length
    span = windower.n_offset + windower.n_length
    capacity = max(min(recording.n_times, span + round(REPLAY_BUFFER * info.sfreq)), 1)
    raw, filtered = RingBuffer(info.n_channels, capacity), RingBuffer(info.n_channels, capacity)
    eeg_rows = [k for k, kind in enumerate(info.ch_types) if kind == "eeg"]
    filt = make_filter(app_config.filter, info.sfreq, info.n_channels, rows=eeg_rows)
    if filt is None:
        filtered = None
    acquisition = AcquisitionThread(source, raw, filtered, filt,
                                    stall_timeout=app_config.buffer.stall_timeout)
    preprocessor = WindowPreprocessor(info, n_channels=n_channels, n_times=n_times,
                                      target_names=target_names,
                                      channel_method=app_config.generator.channel_method,
                                      exclude=app_config.channels.exclude,
                                      include=app_config.channels.include)
    epochs, kept, n_nonfinite = [], [], 0
    source.start()
    try:
        while True:
            finished = source.finished
            acquisition.step()
            for window in windower.poll(filtered if filtered is not None else raw):
                if preprocessor.nonfinite_samples(window):  # a dropout: rejected live, skipped
                    n_nonfinite += 1
                    continue
                epochs.append(preprocessor(window))
                kept.append(int(window.description))
            if finished:
                break
    finally:
        source.stop()
    if windower.n_missed:
        logger.warning("%s: %d windows were lost in a gap longer than %g s", info.name,
                       windower.n_missed, REPLAY_BUFFER)
    if n_nonfinite:
        logger.warning("%s: %d of %d windows hold NaN/Inf samples (a dropout of the device: the "
                       "live app rejects such windows) and are skipped", info.name, n_nonfinite,
                       n_nonfinite + len(kept))
    if not epochs:
        return np.zeros((0, n_channels, n_times), np.float32), np.zeros(0, np.intp)
    return np.stack(epochs), np.asarray(kept, dtype=np.intp)


def calibrate(images: str | Path, config: CalibrationConfig | None = None,
              app_config: AppConfig | None = None, *, headless: bool = False,
              present: PresentTrials | None = None, speed: float = 1.0,
              max_trials: int | None = None, source: Source | None = None) -> CalibrationRun:
    """The whole of ``dd-live calibrate``: images -> schedule -> run -> a session folder.

    ``headless``: the trials run without a screen (:class:`HeadlessPresenter`); else
    ``present`` shows them (:data:`PresentTrials`; the CLI passes the full-screen window with
    its screen, photodiode and attention-task options bound). ``max_trials`` stops early (as a
    user's Esc would: the folder stays valid). A Ctrl+C ends the run the same way. Returns the
    stopped run (``run.folder``, ``run.rows``).
    """
    if not headless and present is None:
        raise ConfigError("calibrate: give present= (what shows the trials on a screen, e.g. "
                          "dd_live.gui.presenter.present_fullscreen) or headless=True")
    config = config or CalibrationConfig()
    stimuli = make_stimuli(find_images(images), config)
    trials = make_schedule(stimuli, config)
    run = CalibrationRun(config, stimuli, app_config, source=source, speed=speed)
    if not headless and run.simulated:
        raise ConfigError("--speed 0 runs in simulated time, which has no screen: add --headless")
    run.start()
    try:
        if headless:
            HeadlessPresenter(run).present(trials, max_trials=max_trials)
        else:
            present(run, trials, max_trials=max_trials)
    except KeyboardInterrupt:
        run.aborted = True
        logger.warning("calibration interrupted: keeping everything recorded so far")
    finally:
        run.stop()
    return run
