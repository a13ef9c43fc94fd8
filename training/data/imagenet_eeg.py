"""The reference's paired EEG-image data set (ImageNet-EEG, ``docs/reference.md``).

Files:

- the data file (e.g. ``eeg_5_95_std.pth``): a ``torch.save``d dict ``{"dataset": [{"eeg":
  tensor[128, T], "image": int, "label": int, "subject": int}, ...], "labels": [synset, ...],
  "images": [name, ...]}``;
- the split file (e.g. ``block_splits_by_image_single.pth``): ``{"splits": [{"train": [...],
  "val": [...], "test": [...]}, ...]}``, indices into ``dataset`` (after the subject filter);
- images at ``<image_root>/<synset>/<name>.JPEG`` with ``synset = name.split("_")[0]``.

Each item's time samples ``crop[0]:crop[1]`` (20..460) are kept and linearly interpolated to
``n_times`` (512), as the reference does. Unlike the reference, images are required (never
random noise) whenever ``image_root`` is given, and a missing one is an error naming the file.
"""

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from dd_live.errors import ConfigError, FileFormatError
from training.data.images import image_to_tensor

logger = logging.getLogger(__name__)

#: Time samples kept from each 1 kHz trial (stimulus onset at 0): 440 ms.
REFERENCE_CROP = (20, 460)
#: Samples per EEG window the encoder sees.
REFERENCE_N_TIMES = 512
SPLITS = ("train", "val", "test")


def load_pth(path: Path, expected: str) -> dict:
    """``torch.load(weights_only=True)`` of a dict file; errors name the file and what was expected."""
    path = Path(path)
    if not path.is_file():
        raise FileFormatError(f"{path} does not exist; expected {expected}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle/zip/runtime errors for bad files
        raise FileFormatError(
            f"{path} could not be read as a torch file with weights_only=True ({error}); "
            f"expected {expected}. Re-save it holding only tensors, lists, dicts and numbers."
        ) from error
    if not isinstance(content, dict):
        raise FileFormatError(f"{path} holds a {type(content).__name__}; expected {expected}")
    return content


def crop_and_resample(eeg: torch.Tensor, crop: tuple[int, int], n_times: int) -> torch.Tensor:
    """``[C, T] -> [C, n_times]``: keep samples ``crop[0]:crop[1]``, stretch linearly (ends aligned)."""
    window = eeg[:, crop[0] : crop[1]].float()  # [C, crop length]
    return F.interpolate(window[None], size=n_times, mode="linear", align_corners=True)[0]


class ImageNetEEG(torch.utils.data.Dataset):
    """Paired EEG windows and images of the reference data set, one split of one split file.

    Parameters: ``data_path`` / ``splits_path`` the two ``.pth`` files; ``split`` one of
    train/val/test; ``split_index`` which entry of ``splits``; ``subject`` keep only this
    subject (the single-subject split files index that filtered list), ``None`` for all;
    ``image_root`` the ImageNet folder (``None``: EEG only, items have no ``"image"``);
    ``image_size`` output side in px; ``augment`` the reference's random crop (train only).
    Items: ``{"eeg": [C, n_times], "image": [3, S, S], "label": int, "image_id": int}``.
    """

    def __init__(
        self,
        data_path: str | Path,
        splits_path: str | Path,
        split: str = "train",
        *,
        split_index: int = 0,
        subject: int | None = None,
        image_root: str | Path | None = None,
        image_size: int = 512,
        augment: bool = False,
        crop: tuple[int, int] = REFERENCE_CROP,
        n_times: int = REFERENCE_N_TIMES,
        seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
        self.data_path, self.splits_path = Path(data_path), Path(splits_path)
        self.split, self.crop, self.n_times = split, tuple(crop), n_times
        self.image_root = None if image_root is None else Path(image_root)
        self.image_size, self.augment, self.seed = image_size, augment, seed
        expected_data = "a dict with 'dataset' (list of {'eeg','image','label','subject'}), 'labels', 'images'"
        content = load_pth(self.data_path, expected_data)
        missing = {"dataset", "labels", "images"} - set(content)
        if missing:
            raise FileFormatError(f"{self.data_path} lacks keys {sorted(missing)}; expected {expected_data}")
        self.synsets, self.image_names = list(content["labels"]), list(content["images"])
        records = list(content["dataset"])
        for position, record in enumerate(records):
            if not isinstance(record, dict) or not {"eeg", "image", "label"} <= set(record):
                raise FileFormatError(
                    f"{self.data_path}: dataset[{position}] is not a dict with 'eeg', 'image', 'label'"
                )
        if subject is not None:
            records = [r for r in records if int(r.get("subject", -1)) == subject]
            if not records:
                raise ConfigError(f"{self.data_path} has no item of subject {subject}")
        indices = self._split_indices(len(records), split_index)
        too_short = [i for i in indices if records[i]["eeg"].shape[-1] < self.crop[1]]
        if too_short:
            logger.warning(
                "%s: %d items shorter than %d samples dropped", self.data_path, len(too_short), self.crop[1]
            )
        self.records = [records[i] for i in indices if records[i]["eeg"].shape[-1] >= self.crop[1]]

    def _split_indices(self, n_records: int, split_index: int) -> list[int]:
        expected = "a dict {'splits': [{'train': [...], 'val': [...], 'test': [...]}, ...]}"
        splits = load_pth(self.splits_path, expected).get("splits")
        if not isinstance(splits, list) or not splits:
            raise FileFormatError(f"{self.splits_path} has no 'splits' list; expected {expected}")
        if not 0 <= split_index < len(splits):
            raise ConfigError(f"split_index {split_index} out of range: {self.splits_path} has {len(splits)} splits")
        if self.split not in splits[split_index]:
            raise FileFormatError(f"{self.splits_path}: splits[{split_index}] lacks {self.split!r}; expected {expected}")
        indices = [int(i) for i in splits[split_index][self.split]]
        bad = [i for i in indices if not 0 <= i < n_records]
        if bad:
            raise FileFormatError(
                f"{self.splits_path}: {len(bad)} {self.split} indices (e.g. {bad[0]}) fall outside the "
                f"{n_records} items of {self.data_path}; pick the split file made for this subject choice"
            )
        return indices

    def __len__(self) -> int:
        return len(self.records)

    @property
    def image_ids(self) -> list[int]:
        """Distinct image indices used by this split (sorted)."""
        return sorted({int(r["image"]) for r in self.records})

    @property
    def n_classes(self) -> int:
        return len(self.synsets)

    def image_path(self, image_id: int) -> Path:
        """``<image_root>/<synset>/<name>.JPEG`` of image ``image_id``."""
        if self.image_root is None:
            raise ConfigError("this ImageNetEEG has no image_root; pass the ImageNet folder to load images")
        name = self.image_names[image_id]
        return self.image_root / name.split("_")[0] / f"{name}.JPEG"

    def load_image(self, image_id: int) -> Image.Image:
        """The original image (RGB PIL); a missing or unreadable file is a :class:`FileFormatError`."""
        path = self.image_path(image_id)
        if not path.is_file():
            raise FileFormatError(f"image {path} does not exist; expected <image_root>/<synset>/<name>.JPEG")
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as error:
            raise FileFormatError(f"image {path} could not be read: {error}") from error

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        item = {
            "eeg": crop_and_resample(record["eeg"], self.crop, self.n_times),  # [C, n_times]
            "label": int(record["label"]),
            "image_id": int(record["image"]),
        }
        if self.image_root is not None:
            rng = np.random.default_rng([self.seed, index, torch.randint(2**31, ()).item()])
            item["image"] = image_to_tensor(self.load_image(item["image_id"]), self.image_size, self.augment, rng)
        return item

    def __repr__(self) -> str:
        return (
            f"<ImageNetEEG | {self.split}: {len(self)} items, {len(self.image_ids)} images, "
            f"{self.n_classes} classes ({self.data_path.name})>"
        )
