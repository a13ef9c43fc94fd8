"""Calibration sessions (``dd-live calibrate``) as paired (EEG epoch, image) training data.

Every epoch comes out of :func:`dd_live.calibration.session_epochs`, the live app's own
preprocessing (its filter, marker windows, channel mapping, resampling, standardisation) with
the settings the session was recorded with (its ``config.toml``), so a model trained here sees
exactly what it will see live. Windows holding NaN/Inf samples (a dropout of the device,
recorded as it came) are skipped with a count logged, as the live app rejects them.

Sessions are read with :func:`dd_live.sources.readers.read_recording` (what ``dd-live replay``
streams) and replayed through the live acquisition code by ``session_epochs``. A ``bids:ROOT?...``
spec stands for the calibration runs of a BIDS data set that ``dd-live export-bids`` wrote: each is
read through mne-bids, its stimulus table restored from ``events.tsv`` and ``stimuli/``, its
settings from what the export kept, so it gives the epochs of the session folder it came from.

The split is by image, as the session recorded it: a ``test`` image is never in ``train``.
``average_repeats`` averages the repetitions of each image (the usual evaluation of test
images, which a calibration shows several times).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dd_live.calibration import STIMULI_FILE, CalibrationSession, session_epochs
from dd_live.config import AppConfig
from dd_live.errors import ConfigError
from dd_live.recording import CONFIG_FILE
from dd_live.sources.bids import BidsRun, is_bids_spec
from dd_live.sources.readers import Recording, read_recording
from training.data.images import image_to_tensor

logger = logging.getLogger(__name__)

SPLITS = ("train", "test", "all")


def find_sessions(paths: str | Path | Sequence[str | Path]) -> list[Path | BidsRun]:
    """Calibration sessions: each path is a session folder, a folder holding some (any depth),
    or a ``bids:ROOT[?subject=..&task=..]`` spec (its runs that show images)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path | BidsRun] = []
    for path in paths:
        if is_bids_spec(path):
            from dd_live.bids import calibration_runs

            found.extend(calibration_runs(str(path)))
            continue
        path = Path(path)
        if (path / STIMULI_FILE).is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(sorted(p.parent for p in path.rglob(STIMULI_FILE)))
        else:
            raise ConfigError(f"--data {path} does not exist: give a calibration session folder "
                              "(dd-live calibrate --out ...) or a folder of them")
    if not found:
        raise ConfigError(f"--data {', '.join(map(str, paths))}: no calibration session found "
                          f"(a session folder holds {STIMULI_FILE}); record one with dd-live calibrate")
    return found


def is_calibration_data(path: str | Path) -> bool:
    if is_bids_spec(path):
        return True
    path = Path(path)
    return (path / STIMULI_FILE).is_file() or (path.is_dir() and any(path.rglob(STIMULI_FILE)))


def eeg_channel_count(folder: str | Path) -> int:
    """EEG channels of the first session under ``folder``."""
    recording = read_session(find_sessions(folder)[0])
    return sum(kind.lower() == "eeg" for kind in recording.ch_types)


def read_session(session: Path | BidsRun) -> Recording:
    """The recording of a session folder or of a BIDS run, as ``dd-live replay`` streams it."""
    return session.read() if isinstance(session, BidsRun) else read_recording(session)


def recorded_settings(session: Path | BidsRun) -> AppConfig:
    """The settings a session was recorded with (its ``config.toml``; defaults without)."""
    if isinstance(session, BidsRun):
        from dd_live.bids import recorded_settings as bids_settings

        return bids_settings(session)
    path = Path(session) / CONFIG_FILE
    return AppConfig.from_toml(path) if path.is_file() else AppConfig()


class CalibrationPairs(torch.utils.data.Dataset):
    """Paired items of one split of one or many calibration sessions.

    Args:
        paths: session folder(s), folders holding them, or ``bids:`` specs.
        split: ``"train"``, ``"test"`` or ``"all"``.
        n_channels, n_times: the model's input shape (None channels: the sessions' EEG count).
        image_size: side of the image tensors.
        average_repeats: one item per image, the mean of its epochs.
        app_config: preprocessing settings; default: each session's own ``config.toml``.

    Items: ``{"eeg": [C, T] float32, "image": [3, S, S] in [-1, 1], "label": int,
    "image_id": int}``; ``image_id`` indexes :attr:`image_keys` (content hashes) over all sessions.
    """

    def __init__(self, paths, split: str = "train", n_channels: int | None = None,
                 n_times: int = 512, image_size: int = 512, *, average_repeats: bool = False,
                 augment: bool = False, app_config: AppConfig | None = None, seed: int = 0) -> None:
        if split not in SPLITS:
            raise ConfigError(f"calibration split must be one of {SPLITS}, got {split!r}")
        self.sessions = find_sessions(paths)
        self.split, self.image_size, self.augment, self.seed = split, image_size, augment, seed
        self.image_keys: list[str] = []
        self.image_paths: list[Path] = []
        epochs, ids = [], []
        for folder in self.sessions:
            session = CalibrationSession.open(folder)
            session.check_images()
            recording = read_session(folder)
            if n_channels is None:
                n_channels = sum(kind.lower() == "eeg" for kind in recording.ch_types)
            config = app_config or recorded_settings(folder)
            rows = [r for r in session.rows if split == "all" or r["split"] == split]
            x, kept = session_epochs(recording, [r["onset_sample"] for r in rows], config,
                                     n_channels, n_times)
            if len(kept) < len(rows):  # session_epochs has logged the windows with NaN/Inf
                logger.info("%s: %d of %d %s epochs are left out (windows past the end of the "
                            "recording, as in an aborted run, or with NaN/Inf samples)", folder,
                            len(rows) - len(kept), len(rows), split)
            for k in kept:
                key = rows[k]["sha256"]
                if key not in self.image_keys:
                    self.image_keys.append(key)
                    self.image_paths.append(session.images[rows[k]["image_id"]])
                ids.append(self.image_keys.index(key))
            epochs.append(x)
        self.eeg = np.concatenate(epochs) if epochs else np.zeros((0, n_channels, n_times), np.float32)
        self.labels = list(ids)
        if average_repeats and len(self.labels):
            groups = sorted(set(self.labels))
            self.eeg = np.stack([self.eeg[[i for i, g in enumerate(self.labels) if g == image]].mean(0)
                                 for image in groups]).astype(np.float32)
            self.labels = groups
        if not len(self.labels):
            raise ConfigError(f"{', '.join(map(str, self.sessions))}: no complete {split} epoch "
                              "(the session is too short, or has no images of this split)")
        self.n_channels, self.n_times = int(n_channels), int(n_times)
        self._cache: dict[int, Image.Image] = {}

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_ids(self) -> list[int]:
        """The images this split shows (indices into :attr:`image_keys`)."""
        return sorted(set(self.labels))

    @property
    def n_images(self) -> int:
        return len(self.image_keys)

    def load_image(self, image_id: int) -> Image.Image:
        if image_id not in self._cache:
            with Image.open(self.image_paths[image_id]) as image:
                self._cache[image_id] = image.convert("RGB")
        return self._cache[image_id]

    def eeg_item(self, index: int) -> dict:
        """An item without its image tensor (training the EEG side alone needs none)."""
        return {"eeg": torch.from_numpy(self.eeg[index]), "image_id": self.labels[index]}

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, torch.randint(2**31, ()).item()])
        image_id = self.labels[index]
        return {
            "eeg": torch.from_numpy(self.eeg[index]),  # [C, T]
            "image": image_to_tensor(self.load_image(image_id), self.image_size, self.augment, rng),
            "label": image_id,
            "image_id": image_id,
        }

    def __repr__(self) -> str:
        return (f"<CalibrationPairs: {self.split} | {len(self)} epochs of {len(self.image_ids)} "
                f"images, {self.n_channels} x {self.n_times} | {len(self.sessions)} session(s)>")
