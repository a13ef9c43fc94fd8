"""Data sets for training. Every EEG array is ``(n_channels, n_times)``.

- :class:`ImageNetEEG`: the reference's paired EEG-image data (its ``.pth`` + split file).
- :class:`CalibrationPairs`: ``dd-live calibrate`` sessions, through the live preprocessing.
- :class:`ThingsEEG2`: THINGS-EEG2's preprocessed per-subject arrays (``things-eeg2:ROOT``).
- :class:`EEGCorpus` / :func:`build_corpus`: a pretraining corpus from any EEG files MNE reads
  (and MOABB data sets), cached to disk as one ``.npy`` array opened as a memmap.
- :class:`SyntheticPairs` / :class:`SyntheticCorpus`: class-coded synthetic EEG (and simple
  procedurally drawn images per class) for tests and smoke runs.

Paired items are dicts ``{"eeg": [C, T] float32, "image": [3, S, S] in [-1, 1],
"label": int, "image_id": int}``; ``dataset.load_image(image_id)`` returns the original PIL
image (for CLIP targets). Corpus items are ``{"eeg": [C, T] float32}``.
"""

from training.data.calibration import CalibrationPairs
from training.data.corpus import EEGCorpus, build_corpus, preprocess_raw
from training.data.imagenet_eeg import ImageNetEEG
from training.data.synthetic import SyntheticCorpus, SyntheticPairs, draw_class_image
from training.data.things_eeg2 import ThingsEEG2

__all__ = [
    "CalibrationPairs",
    "EEGCorpus",
    "ImageNetEEG",
    "SyntheticCorpus",
    "SyntheticPairs",
    "ThingsEEG2",
    "build_corpus",
    "draw_class_image",
    "preprocess_raw",
]
