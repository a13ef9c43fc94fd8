"""The newest image, large, above a strip of the previous ones.

Clicking a thumbnail shows that image large and tells which window it came from: the
absolute sample range, the timestamps, the trigger, the seed and the stage timings. When the
window's marker names an image (``GeneratedImage.stimulus``: what the person saw), that image is
shown beside the generated one. When the model has a gallery (a personal model's calibration
images, or ``[generator] gallery``), the gallery images nearest to the window's EEG
(``GeneratedImage.matches``) are shown under it as thumbnails with their scores.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from PySide6 import QtCore, QtGui, QtWidgets

from dd_live.gui.status import stage_time

HISTORY_LENGTH = 48  # thumbnails kept in the strip
THUMBNAIL_SIZE = 72  # px
IMAGE_MIN_SIZE = 256  # px
NEAREST_SIZE = 80  # px, thumbnails of the nearest gallery images
NEAREST_CACHE = 256  # gallery thumbnails kept (the same gallery images come back often)
DETAIL_LINES = 6  # lines of text kept free under the image for its window and timings
TIMING_STAGES = ("encode", "sample", "decode", "total", "latency")
logger = logging.getLogger(__name__)


def pil_to_qimage(image) -> QtGui.QImage:
    """A deep copy of a PIL image as an RGBA QImage."""
    rgba = image.convert("RGBA")
    data = rgba.tobytes("raw", "RGBA")
    qimage = QtGui.QImage(data, rgba.width, rgba.height, 4 * rgba.width,
                          QtGui.QImage.Format.Format_RGBA8888)
    return qimage.copy()  # own the pixels: ``data`` goes away


def describe_result(result) -> str:
    """One paragraph about a GeneratedImage: window, trigger, seed, timings."""
    n = result.window_stop - result.window_start
    seconds = {stage: stage_time(result.timings, stage) for stage in TIMING_STAGES}
    timings = ", ".join(f"{stage} {value * 1e3:.0f} ms" for stage, value in seconds.items()
                        if value is not None)
    seed = "retrieval" if result.seed is None else f"seed {result.seed}"
    lines = [
        f"image #{result.index} · trigger {result.trigger} · {seed}",
        f"window: samples {result.window_start}–{result.window_stop} ({n} samples), "
        f"t {result.t_first:.3f}–{result.t_last:.3f} s",
        f"timings: {timings}",
    ]
    for path, score in result.matches[:1]:
        lines.append(f"nearest gallery image: {path} (score {score:.3f})")
    if getattr(result, "stimulus", None):
        lines.append(f"seen (right): {result.stimulus}")
    return "\n".join(lines)


class ImageView(QtWidgets.QLabel):
    """The large image, scaled smoothly to the space it has; a double-click asks for full
    screen (``double_clicked``)."""

    double_clicked = QtCore.Signal()

    def mouseDoubleClickEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.double_clicked.emit()
        event.accept()


class NearestStrip(QtWidgets.QWidget):
    """The gallery images nearest to one window's EEG: a thumbnail of each with its score
    (cosine similarity in the image-embedding space), best first; hidden when there are none
    (a model without a gallery)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.shown: list[tuple[str, float]] = []  # the (path, score) pairs on screen
        self.cells: list[tuple[QtWidgets.QLabel, QtWidgets.QLabel]] = []  # (thumbnail, score)
        self._thumbnails: dict[str, QtGui.QPixmap | None] = {}
        self._row = QtWidgets.QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        title = QtWidgets.QLabel("nearest\ngallery\nimages")
        title.setToolTip("the gallery images nearest to this window's EEG, with their scores "
                         "(cosine similarity of the image embeddings)")
        self._row.addWidget(title)
        self._row.addStretch(1)
        self.setLayout(self._row)
        self.hide()

    def show_matches(self, matches) -> None:
        """Show ``matches``: ``(path, score)`` pairs, best first (``GeneratedImage.matches``)."""
        self.shown = [(str(path), float(score)) for path, score in matches]
        while len(self.cells) < len(self.shown):
            thumbnail = QtWidgets.QLabel()
            thumbnail.setFixedSize(NEAREST_SIZE, NEAREST_SIZE)
            thumbnail.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            thumbnail.setStyleSheet("background: #0c0e14; border: 1px solid #333;")
            score = QtWidgets.QLabel()
            score.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            cell = QtWidgets.QVBoxLayout()
            cell.addWidget(thumbnail)
            cell.addWidget(score)
            self._row.insertLayout(self._row.count() - 1, cell)
            self.cells.append((thumbnail, score))
        for i, (thumbnail, score) in enumerate(self.cells):
            visible = i < len(self.shown)
            thumbnail.setVisible(visible)
            score.setVisible(visible)
            if not visible:
                continue
            path, value = self.shown[i]
            pixmap = self._thumbnail(path)
            if pixmap is None:
                thumbnail.clear()
                thumbnail.setText("?")
            else:
                thumbnail.setPixmap(pixmap)
            thumbnail.setToolTip(f"{path}\nscore {value:.3f}")
            score.setText(f"{value:.3f}")
        self.setVisible(bool(self.shown))

    def _thumbnail(self, path: str) -> QtGui.QPixmap | None:
        if path not in self._thumbnails:
            if len(self._thumbnails) >= NEAREST_CACHE:
                self._thumbnails.pop(next(iter(self._thumbnails)))
            pixmap = _load_pixmap(path)
            self._thumbnails[path] = None if pixmap is None else pixmap.scaled(
                NEAREST_SIZE, NEAREST_SIZE, QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                QtCore.Qt.TransformationMode.SmoothTransformation)
        return self._thumbnails[path]


class ImageGallery(QtWidgets.QWidget):
    """Large newest image + history strip + details of the selected one.

    ``on_select(result)`` is called when the user picks a thumbnail (the main window uses it
    to shade that window on the traces).
    """

    def __init__(self, parent=None, on_select: Callable[[object], None] | None = None) -> None:
        super().__init__(parent)
        self.on_select = on_select
        self.results: list = []  # GeneratedImage, oldest first, at most HISTORY_LENGTH
        self.note = QtWidgets.QLabel()
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #ffcc66; font-weight: bold;")
        self.note.hide()
        self.image = ImageView("no image yet")
        self.image.setToolTip("double-click or F11: full screen")
        self.image.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(IMAGE_MIN_SIZE, IMAGE_MIN_SIZE)
        # Ignored: the scaled pixmap must never make the label ask for more room than it has
        self.image.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                 QtWidgets.QSizePolicy.Policy.Ignored)
        self.image.setStyleSheet("background: #0c0e14; color: #777; border: 1px solid #333;")
        self.details = QtWidgets.QLabel("")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMinimumHeight(DETAIL_LINES * self.details.fontMetrics().lineSpacing())
        self.details.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop)
        self.strip = QtWidgets.QListWidget()
        self.strip.setViewMode(QtWidgets.QListView.ViewMode.IconMode)
        self.strip.setFlow(QtWidgets.QListView.Flow.LeftToRight)
        self.strip.setWrapping(False)
        self.strip.setMovement(QtWidgets.QListView.Movement.Static)
        self.strip.setIconSize(QtCore.QSize(THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        self.strip.setFixedHeight(THUMBNAIL_SIZE + 34)
        self.strip.itemClicked.connect(self._clicked)
        self.live_button = QtWidgets.QPushButton("back to live")
        self.live_button.setToolTip("show each new image again as it comes")
        self.live_button.clicked.connect(self.follow_live)
        self.live_button.hide()
        history = QtWidgets.QHBoxLayout()
        history.addWidget(QtWidgets.QLabel("history (click: show it and its window)"), 1)
        history.addWidget(self.live_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.note)
        # the image the window's marker names, beside the generated one (hidden without one)
        self.stimulus = QtWidgets.QLabel()
        self.stimulus.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.stimulus.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                    QtWidgets.QSizePolicy.Policy.Ignored)
        self.stimulus.setToolTip("the image the marker names: what was seen")
        self.stimulus.hide()
        pair = QtWidgets.QHBoxLayout()
        pair.addWidget(self.image, 1)
        pair.addWidget(self.stimulus, 1)
        layout.addLayout(pair, 1)
        self.nearest = NearestStrip()  # the nearest gallery images with scores (hidden without)
        layout.addWidget(self.nearest)
        layout.addWidget(self.details)
        layout.addLayout(history)
        layout.addWidget(self.strip)
        self._pixmap: QtGui.QPixmap | None = None
        self._stimulus_pixmap: QtGui.QPixmap | None = None
        self.shown_index: int | None = None  # running number of the result shown large
        self.pinned = False  # True while the user looks at an older image

    def __repr__(self) -> str:
        return f"<ImageGallery: {len(self.results)} images>"

    def set_note(self, text: str) -> None:
        """A plain warning above the image (e.g. "tiny random models: images carry no meaning")."""
        self.note.setText(text)
        self.note.setVisible(bool(text))

    def add(self, result, show: bool = True) -> None:
        """Prepend a GeneratedImage to the strip and show it large (with ``show`` False only
        the strip: the window shows the newest later, when images come faster than it shows)."""
        if not result.images:
            return
        self.results.append(result)
        pixmap = QtGui.QPixmap.fromImage(pil_to_qimage(result.images[0]))
        item = QtWidgets.QListWidgetItem(QtGui.QIcon(pixmap), f"#{result.index}")
        item.setData(QtCore.Qt.ItemDataRole.UserRole, result.index)
        self.strip.insertItem(0, item)
        while self.strip.count() > HISTORY_LENGTH:
            self.strip.takeItem(self.strip.count() - 1)
            self.results.pop(0)
        if show and not self.pinned:
            self._show(result, pixmap)

    def select(self, index: int) -> None:
        """Show the kept result with this running number, as a click on its thumbnail does;
        it stays shown (new images go to the strip) until :meth:`follow_live`."""
        for result in self.results:
            if result.index == index:
                self._show(result, QtGui.QPixmap.fromImage(pil_to_qimage(result.images[0])))
                self.pinned = result is not self.results[-1]
                self.live_button.setVisible(self.pinned)
                if self.on_select is not None:
                    self.on_select(result)
                return

    def follow_live(self) -> None:
        """Show the newest image, and each new one as it comes."""
        self.pinned = False
        self.live_button.hide()
        if self.results:
            newest = self.results[-1]
            self._show(newest, QtGui.QPixmap.fromImage(pil_to_qimage(newest.images[0])))

    def clear(self) -> None:
        """Forget every image (a new session starts)."""
        self.results.clear()
        self.strip.clear()
        self._pixmap = None
        self._stimulus_pixmap = None
        self.stimulus.clear()
        self.stimulus.hide()
        self.nearest.show_matches([])
        self.shown_index = None
        self.pinned = False
        self.live_button.hide()
        self.image.clear()
        self.image.setText("no image yet")
        self.details.setText("")

    def _clicked(self, item: QtWidgets.QListWidgetItem) -> None:
        self.select(int(item.data(QtCore.Qt.ItemDataRole.UserRole)))

    def _show(self, result, pixmap: QtGui.QPixmap) -> None:
        self._pixmap = pixmap
        self._stimulus_pixmap = _load_pixmap(getattr(result, "stimulus", None))
        self.stimulus.setVisible(self._stimulus_pixmap is not None)
        self.nearest.show_matches(getattr(result, "matches", None) or [])
        self.shown_index = result.index
        self.details.setText(describe_result(result))
        self._fit()

    def _fit(self) -> None:
        for label, pixmap in ((self.image, self._pixmap), (self.stimulus, self._stimulus_pixmap)):
            if pixmap is not None:
                label.setPixmap(pixmap.scaled(
                    label.contentsRect().size(), QtCore.Qt.AspectRatioMode.KeepAspectRatio,
                    QtCore.Qt.TransformationMode.SmoothTransformation))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self._fit()


def _load_pixmap(path: str | None) -> QtGui.QPixmap | None:
    """The image file at ``path`` as a pixmap (read with PIL: JPEG, PNG, ...), or None."""
    if not path:
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            return QtGui.QPixmap.fromImage(pil_to_qimage(image))
    except OSError as exc:
        logger.warning("could not show the image %s: %s", path, exc)
        return None
