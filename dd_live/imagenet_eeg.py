"""The ImageNet-EEG data set file (``eeg_5_95_std.pth``) as a dd-live session folder to replay.

The DreamDiffusion release trains and evaluates on this file: a ``torch.save``d dict with
``dataset`` (a list of ``{"eeg": tensor (128, n_times ~ 500), "image": int, "label": int,
"subject": int}``, 1 kHz, band-passed 5-95 Hz and standardised), ``labels`` (the 40 ImageNet
synsets) and ``images`` (image names like ``n02389026_3070``, the file
``<imagenet>/<synset>/<name>.JPEG``). A splits file (``block_splits_by_image_single.pth``) holds
``{"splits": [{"train": [...], "val": [...], "test": [...]}]}``: indices into the list of the
chosen subject's items (every item without a subject).

:func:`convert_imagenet_eeg` lays the epochs end to end at 1 kHz into a session folder written
by the app's own :class:`~dd_live.recording.SessionRecorder`, with a marker ``image:<name>`` at
each epoch's first sample, and a ``config.toml`` that cuts the window the release crops (samples
20-460 of each epoch: ``[window] mode = "marker"``, ``offset = 0.02``, ``length = 0.44``)
without filtering again (the file is already band-passed) or rejecting windows (the release
uses every item). ``dd-live replay FOLDER --model <release checkpoint>`` then shows the paper's
model on the paper's data; with ``--images DIR`` each image appears beside the one it was made
from. The values are standardised (no unit): they are stored at 10 µV per unit, and the app
standardises every window per channel again, so the scale does not reach the model.

The file is read with ``torch.load(weights_only=True)`` (:func:`dd_live.model.safe_load`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.config import AppConfig
from dd_live.errors import ConfigError, FileFormatError
from dd_live.stimuli import MARKER_PREFIX

logger = logging.getLogger(__name__)

SFREQ = 1000.0  # Hz: the data set's rate
WINDOW_OFFSET = 0.02  # s: the release keeps samples 20..460 of each item
WINDOW_LENGTH = 0.44
RELEASE_MIN_TIMES, RELEASE_MAX_TIMES = 450, 600  # the release's splitter keeps items this long
VOLTS_PER_UNIT = 1e-5  # standardised values stored as 10 µV per unit
SPLIT_NAMES = ("train", "val", "test")
INFO_FILE = "imagenet_eeg.json"
CHANNEL_NAME = "EEG {:03d}"  # the file names no channels; the model maps by count


@dataclass(frozen=True)
class Epoch:
    """One item of the data set: ``eeg`` ``(n_channels, n_times)`` (standardised units)."""

    index: int  # in the file's ``dataset`` list
    eeg: np.ndarray
    image: str  # e.g. "n02389026_3070"
    label: str  # the synset, e.g. "n02389026"
    subject: int


def read_imagenet_eeg(path: str | Path, *, subject: int | None = None,
                      split: str | None = None, splits: str | Path | None = None,
                      split_index: int = 0) -> list[Epoch]:
    """The items of an ImageNet-EEG file, as the release selects them.

    Args:
        path: ``eeg_5_95_std.pth`` (or another file of that layout).
        subject: keep this subject's items only (1-6; the release fine-tunes on 4).
        split: ``"train"``, ``"val"`` or ``"test"``: keep the items of that split of
            ``splits`` (indices into the subject's items), and, as the release's splitter
            does, only items of 450-600 samples.
        splits: the splits file (``block_splits_by_image_single.pth`` with ``subject=4``).
        split_index: which of the file's splits.

    Raises:
        FileFormatError: the file is not of that layout (one line saying what is missing).
        ConfigError: options that do not fit the file (no such subject, split indices out of
            range, ``split`` without ``splits``).
    """
    from dd_live.model.safe_load import load_torch_file

    path = Path(path)
    if (split is None) != (splits is None):
        raise ConfigError("--split and --splits go together: --split test --splits "
                          "block_splits_by_image_single.pth")
    if split is not None and split not in SPLIT_NAMES:
        raise ConfigError(f"--split must be one of {SPLIT_NAMES}, got {split!r}")
    contents = load_torch_file(path)
    if not isinstance(contents, dict) or not isinstance(contents.get("dataset"), list):
        found = sorted(map(str, contents)) if isinstance(contents, dict) else type(contents).__name__
        raise FileFormatError(
            f"{path.name} is not an ImageNet-EEG data file: expected a dict with 'dataset' (a "
            f"list of {{'eeg', 'image', 'label', 'subject'}}), 'labels' and 'images'; found {found}")
    items, images, labels = contents["dataset"], contents.get("images"), contents.get("labels")
    if not isinstance(images, list) or not isinstance(labels, list):
        raise FileFormatError(f"{path.name} has no image list ('images') or no class list "
                              "('labels'): the markers could not name the images")
    chosen = list(range(len(items)))
    if subject is not None:
        chosen = [i for i in chosen if _field(items[i], "subject", i, path) == subject]
        if not chosen:
            present = sorted({_field(item, "subject", i, path) for i, item in enumerate(items)})
            raise ConfigError(f"{path.name} has no items of subject {subject}; its subjects: "
                              f"{present}")
    if split is not None:
        chosen = _split_indices(chosen, Path(splits), split, split_index, subject)
        n_before = len(chosen)
        chosen = [i for i in chosen
                  if RELEASE_MIN_TIMES <= _eeg(items[i], i, path).shape[1] <= RELEASE_MAX_TIMES]
        if len(chosen) < n_before:
            logger.info("left out %d items not %d-%d samples long, as the release's splitter "
                        "does", n_before - len(chosen), RELEASE_MIN_TIMES, RELEASE_MAX_TIMES)
    epochs = []
    for i in chosen:
        item = items[i]
        image_index, label_index = _field(item, "image", i, path), _field(item, "label", i, path)
        if not (0 <= image_index < len(images) and 0 <= label_index < len(labels)):
            raise FileFormatError(f"{path.name}: item {i} names image {image_index} / label "
                                  f"{label_index}, beyond the file's {len(images)} images / "
                                  f"{len(labels)} labels")
        epochs.append(Epoch(i, _eeg(item, i, path), str(images[image_index]),
                            str(labels[label_index]), _field(item, "subject", i, path)))
    return epochs


def _field(item: Any, key: str, i: int, path: Path) -> int:
    if not isinstance(item, dict) or key not in item:
        raise FileFormatError(f"{path.name}: item {i} of 'dataset' has no {key!r}")
    return int(item[key])


def _eeg(item: Any, i: int, path: Path) -> np.ndarray:
    if not isinstance(item, dict) or "eeg" not in item or getattr(item["eeg"], "ndim", 0) != 2:
        raise FileFormatError(f"{path.name}: item {i} of 'dataset' has no 'eeg' of shape "
                              "(n_channels, n_times)")
    return item["eeg"].float().numpy()


def _split_indices(chosen: list[int], splits: Path, split: str, split_index: int,
                   subject: int | None) -> list[int]:
    from dd_live.model.safe_load import load_torch_file

    contents = load_torch_file(splits)
    try:
        indices = [int(k) for k in contents["splits"][split_index][split]]
    except (KeyError, IndexError, TypeError, ValueError):
        raise FileFormatError(f"{splits.name} is not a splits file with split {split_index} "
                              f"{split!r}: expected {{'splits': [{{'train': [...], 'val': "
                              "[...], 'test': [...]}]}") from None
    bad = [k for k in indices if not 0 <= k < len(chosen)]
    if bad:
        whose = f"subject {subject}'s {len(chosen)}" if subject is not None else f"{len(chosen)}"
        raise ConfigError(
            f"{splits.name} indexes items up to {max(bad)}, but there are {whose} items; the "
            "single-subject splits index one subject's items: add --subject 4")
    n_indexed = 1 + max((int(k) for part in contents["splits"][split_index].values()
                         for k in part), default=-1)
    if subject is None and n_indexed < len(chosen) // 2:
        logger.warning("%s indexes %d items of the file's %d: a single-subject splits file "
                       "indexes one subject's items (add --subject 4)", splits.name, n_indexed,
                       len(chosen))
    return [chosen[k] for k in indices]


def is_imagenet_eeg(path: str | Path) -> bool:
    """True when ``path`` is a torch file holding an ImageNet-EEG ``dataset`` list."""
    from dd_live.errors import CheckpointError
    from dd_live.model.safe_load import load_torch_file

    try:
        contents = load_torch_file(path)
    except CheckpointError:
        return False
    return isinstance(contents, dict) and isinstance(contents.get("dataset"), list)


def replay_config(images: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The settings a converted folder replays with (its ``config.toml``)."""
    window: dict[str, Any] = {"mode": "marker", "offset": WINDOW_OFFSET, "length": WINDOW_LENGTH,
                              "marker_match": f"{MARKER_PREFIX}.*"}
    if images is not None:
        window["marker_images"] = str(Path(images).expanduser().resolve())
    return {
        "window": window,
        "filter": {"enabled": False},  # band-passed 5-95 Hz already
        "quality": {"mode": "off"},  # the release uses every item
        "channels": {"bad": "off"},
    }


def convert_imagenet_eeg(path: str | Path, out: str | Path, *, subject: int | None = None,
                         split: str | None = None, splits: str | Path | None = None,
                         images: str | Path | None = None) -> Path:
    """Write the chosen items of an ImageNet-EEG file as a session folder ``out`` (see the
    module docstring); returns ``out``. Arguments as :func:`read_imagenet_eeg`; ``images``:
    the ImageNet folder whose images are shown beside the generated ones."""
    import tomli_w

    from dd_live.recording import CONFIG_FILE, SessionRecorder
    from dd_live.sources.base import StreamInfo

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} is not an empty folder; choose a new output folder")
    if images is not None and not Path(images).expanduser().is_dir():
        raise ConfigError(f"--images {images} is not a folder (the ImageNet images, "
                          "<synset>/<name>.JPEG)")
    epochs = read_imagenet_eeg(path, subject=subject, split=split, splits=splits)
    short = [e for e in epochs if e.eeg.shape[1] < round((WINDOW_OFFSET + WINDOW_LENGTH) * SFREQ)]
    if short:
        logger.warning("left out %d items shorter than %d samples (no whole 20-460 ms window)",
                       len(short), round((WINDOW_OFFSET + WINDOW_LENGTH) * SFREQ))
        left_out = {e.index for e in short}
        epochs = [e for e in epochs if e.index not in left_out]
    if not epochs:
        raise ConfigError(f"no items of {Path(path).name} left to convert (subject {subject}, "
                          f"split {split})")
    n_channels = {e.eeg.shape[0] for e in epochs}
    if len(n_channels) != 1:
        raise FileFormatError(f"{Path(path).name}: items have {sorted(n_channels)} channels; "
                              "one count is needed to lay them end to end")
    n = n_channels.pop()
    names = tuple(CHANNEL_NAME.format(k + 1) for k in range(n))
    info = StreamInfo(f"ImageNet-EEG {Path(path).name}", SFREQ, names, ("eeg",) * n,
                      ("V",) * n, source_id=str(path))
    recorder = SessionRecorder(out, info, AppConfig.from_dict(replay_config(images)))
    table, sample = [], 0
    try:
        for epoch in epochs:
            n_times = epoch.eeg.shape[1]
            recorder.add_event({"type": "marker", "sample": sample, "timestamp": sample / SFREQ,
                                "description": MARKER_PREFIX + epoch.image})
            recorder.add_samples(epoch.eeg.astype(np.float64) * VOLTS_PER_UNIT,
                                 (sample + np.arange(n_times)) / SFREQ)
            recorder.step()
            table.append({"item": epoch.index, "image": epoch.image, "label": epoch.label,
                          "subject": epoch.subject, "sample": sample, "n_times": n_times})
            sample += n_times
    finally:
        recorder.close()
    if recorder.failure is not None:
        raise ConfigError(f"could not write {out}: {recorder.failure}")
    # only the settings the data needs: the model and the rest stay the user's choice
    (out / CONFIG_FILE).write_text(tomli_w.dumps(replay_config(images)), encoding="utf-8")
    (out / INFO_FILE).write_text(json.dumps({
        "source": str(Path(path).resolve()), "subject": subject, "split": split,
        "splits": None if splits is None else str(Path(splits).resolve()),
        "sfreq": SFREQ, "volts_per_unit": VOLTS_PER_UNIT, "items": table}, indent=1) + "\n",
        encoding="utf-8")
    logger.info("wrote %d items (%.1f s) of %s to %s", len(table), sample / SFREQ,
                Path(path).name, out)
    return out
