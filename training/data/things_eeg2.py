"""THINGS-EEG2 (Gifford et al. 2022), its preprocessed per-subject arrays, as paired data.

Layout read (the data set's own, as published)::

    ROOT/preprocessed_data/sub-01/preprocessed_eeg_training.npy   # dict, see below
    ROOT/preprocessed_data/sub-01/preprocessed_eeg_test.npy
    ROOT/image_set/image_metadata.npy      # train/test_img_concepts, train/test_img_files
    ROOT/image_set/training_images/<concept>/<file>
    ROOT/image_set/test_images/<concept>/<file>

Each EEG file is a NumPy-saved dict: ``preprocessed_eeg_data`` ``[n_images, n_repetitions, 17,
100]`` (1654 training concepts x 10 images x 4 repetitions; 200 test concepts x 80
repetitions), ``ch_names`` (17 posterior channels) and ``times`` (100 Hz, -0.2..0.79 s). The
dicts are pickled; they are read with an unpickler that only rebuilds NumPy arrays, lists,
strings and numbers (anything else is refused), never with ``allow_pickle=True``.

Each epoch becomes a model input the way the live app cuts a window: ``[window] offset`` to
``offset + length`` seconds after the onset, resampled and standardised by the live
preprocessing's own :func:`~dd_live.stream.resample_window` and
:func:`~dd_live.stream.standardize`. The test split averages the repetitions (the data set's
200-way zero-shot protocol) unless ``average_repeats`` is off.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dd_live.config import WindowConfig
from dd_live.errors import ConfigError, FileFormatError
from dd_live.stream import resample_window, standardize
from training.data.images import image_to_tensor

PREFIX = "things-eeg2:"
SPLIT_FILES = {"train": "preprocessed_eeg_training.npy", "test": "preprocessed_eeg_test.npy"}
IMAGE_FOLDERS = {"train": "training_images", "test": "test_images"}
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("builtins", "list"), ("builtins", "dict"),
    ("collections", "OrderedDict"),
}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise FileFormatError(f"refusing to unpickle {module}.{name}: only NumPy arrays, lists, "
                                  "dicts, strings and numbers are read from THINGS-EEG2 files")
        return super().find_class(module, name)


def load_npy_dict(path: Path) -> dict:
    """A dict saved with ``np.save`` (an object array holding it), unpickled safely."""
    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                       else np.lib.format.read_array_header_2_0)
        _shape, _fortran, dtype = read_header(file)
        if dtype.hasobject:
            data = _ArrayUnpickler(io.BytesIO(file.read())).load()
        else:
            raise FileFormatError(f"{path} holds a plain array, not the THINGS-EEG2 dict")
    data = data.item() if isinstance(data, np.ndarray) and data.shape == () else data
    if not isinstance(data, dict):
        raise FileFormatError(f"{path} does not hold a dict (got {type(data).__name__})")
    return data


def parse_things_spec(data: str) -> Path:
    """``things-eeg2:ROOT`` -> ROOT."""
    return Path(data[len(PREFIX):]).expanduser()


class ThingsEEG2(torch.utils.data.Dataset):
    """One subject's split of THINGS-EEG2 as paired items (see the module docstring).

    Items: ``{"eeg": [n_channels, n_times] float32, "image": [3, S, S], "label": concept index,
    "image_id": int}``; ``load_image(image_id)`` returns the PIL image.
    """

    def __init__(self, root: str | Path, subject: int, split: str = "train", n_times: int = 512,
                 image_size: int = 512, *, window: WindowConfig | None = None,
                 average_repeats: bool | None = None, augment: bool = False, seed: int = 0) -> None:
        if split not in SPLIT_FILES:
            raise ConfigError(f"THINGS-EEG2 split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
        root = Path(root)
        eeg_path = root / "preprocessed_data" / f"sub-{int(subject):02d}" / SPLIT_FILES[split]
        meta_path = root / "image_set" / "image_metadata.npy"
        for path in (eeg_path, meta_path):
            if not path.is_file():
                raise ConfigError(f"THINGS-EEG2: {path} does not exist; ROOT must hold "
                                  "preprocessed_data/sub-XX/ and image_set/ as published (--subject N)")
        eeg = load_npy_dict(eeg_path)
        meta = load_npy_dict(meta_path)
        key = "train" if split == "train" else "test"
        data = np.asarray(eeg["preprocessed_eeg_data"], dtype=np.float64)  # [n_img, n_rep, C, T]
        times = np.asarray(eeg["times"], dtype=np.float64)
        self.ch_names = [str(name) for name in eeg["ch_names"]]
        files = [str(f) for f in meta[f"{key}_img_files"]]
        concepts = [str(c) for c in meta[f"{key}_img_concepts"]]
        if len(files) != data.shape[0]:
            raise FileFormatError(f"{eeg_path}: {data.shape[0]} images but {len(files)} in the metadata")
        window = window or WindowConfig()
        sfreq = 1.0 / float(np.median(np.diff(times)))
        first = int(np.searchsorted(times, window.offset - 0.5 / sfreq))
        stop = first + int(round(window.length * sfreq))
        if stop > len(times):
            raise ConfigError(f"THINGS-EEG2 epochs end at {times[-1]:.2f} s; a {window.length} s window "
                              f"from {window.offset} s does not fit")
        average = split == "test" if average_repeats is None else average_repeats
        epochs = data.mean(axis=1, keepdims=True) if average else data
        n_images, n_reps = epochs.shape[:2]
        self.eeg = np.stack([standardize(resample_window(epochs[i, r, :, first:stop], n_times))
                             for i in range(n_images) for r in range(n_reps)])  # [N, C, n_times]
        self.labels = [i for i in range(n_images) for _ in range(n_reps)]
        self.paths = [root / "image_set" / IMAGE_FOLDERS[split] / concepts[i] / files[i]
                      for i in range(n_images)]
        self.concepts = concepts
        self.n_channels, self.n_times = len(self.ch_names), n_times
        self.image_size, self.augment, self.seed = image_size, augment, seed

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def image_ids(self) -> list[int]:
        return sorted(set(self.labels))

    def load_image(self, image_id: int) -> Image.Image:
        with Image.open(self.paths[image_id]) as image:
            return image.convert("RGB")

    def eeg_item(self, index: int) -> dict:
        return {"eeg": torch.from_numpy(self.eeg[index]), "image_id": self.labels[index]}

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng([self.seed, index, torch.randint(2**31, ()).item()])
        image_id = self.labels[index]
        return {"eeg": torch.from_numpy(self.eeg[index]),
                "image": image_to_tensor(self.load_image(image_id), self.image_size, self.augment, rng),
                "label": image_id, "image_id": image_id}

    def __repr__(self) -> str:
        return (f"<ThingsEEG2: {len(self)} epochs of {len(self.image_ids)} images, "
                f"{self.n_channels} x {self.n_times}>")
