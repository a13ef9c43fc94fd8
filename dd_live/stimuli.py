"""Marker text -> the image the marker stands for (the ground truth beside a generated image).

Markers ``image:<id>`` (what ``dd-live calibrate`` writes, and what ``dd-live convert`` gives the
ImageNet-EEG data set's epochs) name the image a person was looking at. Given the folder of those
images (``[window] marker_images``, ``--images DIR``), :class:`StimulusImages` finds the file:
``<folder>/<synset>/<id>.JPEG`` (ImageNet's layout: ``n02389026_3070`` lives in
``n02389026/``), else ``<folder>/<id>.<ext>`` or ``<folder>/<id>`` for a flat folder. A
``dd-live calibrate`` session folder is an images folder too: its ``calibration.json`` names
each image id's file (the copy in the folder first, then the original).

Standard library only (the session imports it; no torch, no Qt).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from dd_live.errors import ConfigError

logger = logging.getLogger(__name__)

MARKER_PREFIX = "image:"  # as dd_live.calibration writes it
IMAGE_SUFFIXES = (".JPEG", ".jpeg", ".jpg", ".JPG", ".png", ".PNG", ".webp", ".bmp")
CALIBRATION_FILE = "calibration.json"  # as dd_live.calibration writes it


class StimulusImages:
    """The image files of one folder, looked up by marker text.

    Args:
        folder: the images (ImageNet layout ``<synset>/<id>.JPEG`` or flat).

    Raises:
        ConfigError: ``folder`` is not a folder.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ConfigError(
                f"marker images: {self.folder} is not a folder; give the folder of the images "
                "the markers name (ImageNet layout <synset>/<id>.JPEG, or the images themselves) "
                "with --images DIR or [window] marker_images"
            )
        self._found: dict[str, Path | None] = {}
        self._listed = _calibration_images(self.folder)  # id -> candidate files

    def __repr__(self) -> str:
        return f"<StimulusImages: {self.folder} | {len(self._found)} looked up>"

    @staticmethod
    def image_id(marker: str) -> str:
        """``"image:n02389026_3070"`` -> ``"n02389026_3070"`` (text without the prefix as is)."""
        marker = marker.strip()
        return marker[len(MARKER_PREFIX):].strip() if marker.startswith(MARKER_PREFIX) else marker

    def path_for(self, marker: str) -> Path | None:
        """The image file ``marker`` names, or None (no such image, or not an image marker)."""
        image_id = self.image_id(marker)
        if image_id in self._found:
            return self._found[image_id]
        found = None
        # a marker is text from a stream or a file: it never leaves the folder
        if image_id and "/" not in image_id and "\\" not in image_id and image_id not in (".", ".."):
            synset = image_id.split("_", 1)[0]
            candidates = list(self._listed.get(image_id, ()))
            candidates += [self.folder / synset / f"{image_id}{s}" for s in IMAGE_SUFFIXES]
            candidates += [self.folder / f"{image_id}{s}" for s in IMAGE_SUFFIXES]
            candidates.append(self.folder / image_id)
            found = next((p for p in candidates if p.is_file()), None)
        if found is None and image_id:
            logger.warning("no image for the marker %r in %s", marker, self.folder)
        self._found[image_id] = found
        return found


def _calibration_images(folder: Path) -> dict[str, list[Path]]:
    """``image_id -> [copy in the folder, original file]`` of a calibration session folder."""
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return {}
    try:
        images = json.loads(path.read_text(encoding="utf-8")).get("images", [])
    except (json.JSONDecodeError, AttributeError, OSError) as exc:
        logger.warning("%s could not be read (%s): its images are looked up by name only", path,
                       exc)
        return {}
    listed: dict[str, list[Path]] = {}
    for entry in images if isinstance(images, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("image_id"), str):
            files = [folder / entry["copy"]] if isinstance(entry.get("copy"), str) else []
            files += [Path(entry["file"])] if isinstance(entry.get("file"), str) else []
            listed[entry["image_id"]] = files
    return listed
