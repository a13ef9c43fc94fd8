"""Live traces: every channel stacked in one NaN-separated curve, redrawn from the ring buffer.

One :class:`pyqtgraph.PlotDataItem` holds all channels (``docs/realtime.md``: 128 curves
draw at 10.8 fps, one concatenated curve at 59.5 fps). Each redraw copies the newest
``span`` seconds out of a ring buffer (``latest(n)`` returns copies, so the GUI thread never
waits on the acquisition thread), reduces them to about two points per pixel column with
min/max (peak) decimation, and offsets channel ``i`` to row ``n_channels - 1 - i``.

The decimation is ours, not pyqtgraph's ``setDownsampling``/``setClipToView``: both presume one
series with increasing x, which a NaN-separated stack of channels is not, and they would redo
the whole span on every frame where :class:`PeakCache` decimates only the new samples. The
curve holds only the ``span`` on screen (clipped to the view before it reaches pyqtgraph), is
not re-sent when nothing it shows changed, and the axes (the time grid, the channel names)
are cached as pixmaps, so a redraw repaints the traces, not the grid.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtGui, QtWidgets

from dd_live.errors import DDLiveError

logger = logging.getLogger(__name__)

SPAN_RANGE = (2.0, 30.0)  # s of signal on screen
TRACE_COLOR = (190, 230, 255)
WINDOW_COLOR = (255, 200, 60, 60)
BACKGROUND = (12, 14, 20)
BAD_COLOR = (255, 70, 70, 45)  # band behind a channel marked bad
BAD_MARK = " ✕"  # after the name of a channel marked bad
FRAME_COST_WEIGHT = 0.2  # weight of the newest redraw in the running mean of their cost
AXIS_WIDTH = 48  # px of the channel-name axis, at least
AXIS_MARGIN = 16  # px beside the longest name (tick and gap): a longer name is dropped whole
LABEL_SPACING = 1.1  # channel names at least this many text heights apart (others: ticks only)


def peak_decimate(data: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Min/max decimation along time.

    Args:
        data: ``(n_channels, n_times)``.
        n_bins: number of output columns (about the plot's width in pixels).

    Returns:
        positions: ``(m,)`` fractional sample positions in ``[0, n_times)`` of the output points.
        values: ``(n_channels, m)``; with decimation ``m = 2 * n_bins`` (each bin's min then
        max, so spikes survive), without (``n_times <= 2 * n_bins``) the input itself.
    """
    n_channels, n_times = data.shape
    if n_times <= 2 * n_bins:
        return np.arange(n_times, dtype=float), data
    bin_size = n_times // n_bins
    used = bin_size * n_bins
    start = n_times - used  # drop the oldest few samples so bins end at the newest sample
    binned = data[:, start:].reshape(n_channels, n_bins, bin_size)
    values = np.empty((n_channels, n_bins, 2), dtype=data.dtype)
    values[:, :, 0] = binned.min(axis=2)
    values[:, :, 1] = binned.max(axis=2)
    edges = start + np.arange(n_bins) * bin_size
    positions = np.stack([edges, edges + bin_size / 2], axis=1).ravel().astype(float)
    return positions, values.reshape(n_channels, 2 * n_bins)


class PeakCache:
    """Min/max bins of a growing stream, each computed once.

    Bins are aligned to absolute sample indices (``[k * bin_size, (k + 1) * bin_size)``), so a
    redraw decimates only the samples that arrived since the previous one instead of the whole
    span (at 128 channels x 10 s x 1 kHz that is the difference between ~0.1 ms and ~9 ms).
    A change of buffer, bin size or channel count starts afresh.
    """

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._bins = np.empty((0, 0, 2))  # (n_channels, n_bins, 2): min, max
        self._end = 0  # absolute index where the cached full bins end

    def update(self, buffer, n_times: int, n_bins: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The newest ``n_times`` samples of ``buffer``, decimated to about ``n_bins`` bins.

        Returns:
            positions: ``(m,)`` absolute sample positions of the points.
            values: ``(n_channels, m)``: per full bin its min then max, then the raw samples of
            the newest, not yet full bin.
            n_written: the buffer's sample count these points end at.
        """
        n_written = buffer.n_written
        bin_size = n_times // max(n_bins, 1)
        if bin_size < 2:
            data, _ = buffer.latest(n_times)
            n_written = buffer.n_written
            return np.arange(n_written - data.shape[1], n_written, dtype=float), data, n_written
        n_channels = buffer.n_channels
        oldest = max(n_written - n_times, buffer.first_index)
        first = -(-oldest // bin_size) * bin_size  # first bin start inside the span
        end = (n_written // bin_size) * bin_size
        key = (id(buffer), bin_size, n_channels)
        if key != self._key or not first <= self._end <= end:
            self._key, self._end = key, first
            self._bins = np.empty((n_channels, 0, 2))
        try:
            if end > self._end:
                data, _ = buffer.get(self._end, end)
                binned = data.reshape(n_channels, -1, bin_size)
                new = np.stack([binned.min(axis=2), binned.max(axis=2)], axis=2)
                self._bins = np.concatenate([self._bins, new], axis=1)
                self._end = end
            self._bins = self._bins[:, max(0, self._bins.shape[1] - (end - first) // bin_size) :]
            tail, _ = buffer.get(self._end, n_written)
        except DDLiveError:  # the writer overtook this read: start afresh next time
            self._key = None
            data, _ = buffer.latest(n_times)
            n_written = buffer.n_written  # a chunk written in between shifts x by one chunk
            positions, values = peak_decimate(data, n_bins)
            return positions + (n_written - data.shape[1]), values, n_written
        n_cached = self._bins.shape[1]
        starts = self._end - bin_size * np.arange(n_cached, 0, -1)
        positions = np.stack([starts, starts + bin_size / 2], axis=1).ravel()
        positions = np.concatenate([positions, np.arange(self._end, n_written)]).astype(float)
        values = np.concatenate([self._bins.reshape(n_channels, 2 * n_cached), tail], axis=1)
        return positions, values, n_written


def label_step(n_channels: int, height_px: float, text_px: float) -> int:
    """Every how many rows a channel name fits without overlapping the next one shown.

    Args:
        n_channels: rows on the plot (``n_channels + 1`` row spacings with the margins).
        height_px: the plot's height in pixels.
        text_px: the height of one name in pixels.
    """
    if n_channels <= 1 or height_px <= 0:
        return 1
    row_px = height_px / (n_channels + 1)
    return max(1, math.ceil(LABEL_SPACING * text_px / row_px))


def stack_traces(
    x: np.ndarray, values: np.ndarray, scale: float, gains: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One curve for all channels: channel rows offset, NaN between channels.

    Args:
        x: ``(m,)`` x position of each point (s).
        values: ``(n_channels, m)`` in volts.
        scale: volts per row spacing (the global scale).
        gains: ``(n_channels,)`` per-channel gain multiplying the global scale's effect.

    Returns:
        ``(n_channels * (m + 1),)`` x and y arrays; channel ``i`` sits around
        ``y = n_channels - 1 - i`` (first channel on top).
    """
    n_channels, m = values.shape
    offsets = np.arange(n_channels - 1, -1, -1, dtype=float)[:, None]
    y = np.full((n_channels, m + 1), np.nan)
    y[:, :m] = values * (gains[:, None] / scale) + offsets
    xs = np.empty((n_channels, m + 1))
    xs[:, :m] = x
    xs[:, m] = np.nan
    return xs.ravel(), y.ravel()


class TracesView(pg.PlotWidget):
    """Stacked traces of all channels, newest sample at ``x = 0`` (s).

    Call :meth:`set_channels` once the stream is known and :meth:`refresh` from a timer
    (the main window runs it at >= 30 fps) with a ring buffer to read.
    """

    def __init__(self, parent=None) -> None:
        super().__init__(parent=parent, background=BACKGROUND)
        self.span = 10.0
        self.scale = 100e-6  # V per row spacing
        self.sfreq = 0.0
        self.ch_names: tuple[str, ...] = ()
        self.gains = np.ones(0)
        self.n_redraws = 0
        self._selected: tuple[int, int] | None = None  # absolute [start, stop) sample range
        self.bad: tuple[str, ...] = ()  # channels marked bad (shaded red, name marked)
        self._bad_bands: list[pg.LinearRegionItem] = []
        self.toggleable: tuple[str, ...] = ()  # channels the right-click menu can mark bad
        self.on_toggle_bad: Callable[[str, bool], None] | None = None
        self._peaks = PeakCache()
        self._drawn: tuple | None = None  # what the curve shows now (see :meth:`refresh`)
        self.frame_seconds = 0.0  # running mean of one redraw's CPU time (refresh + paint)
        self._paint_seconds = 0.0  # CPU time painted since the last redraw
        self._label_step = 1  # every how many rows a channel name is written
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setMouseEnabled(x=False, y=False)
        plot.showGrid(x=True, y=False, alpha=0.15)
        plot.setLabel("bottom", "time", units="s")
        plot.getAxis("left").setWidth(AXIS_WIDTH)
        cache_axes(plot)
        plot.getViewBox().sigResized.connect(self._on_resized)
        self.curve = pg.PlotDataItem(pen=pg.mkPen(TRACE_COLOR, width=1), connect="finite",
                                     antialias=False, skipFiniteCheck=True)
        plot.addItem(self.curve)
        self.window_region = pg.LinearRegionItem(brush=pg.mkBrush(*WINDOW_COLOR), movable=False)
        self.window_region.setZValue(-10)
        self.window_region.hide()
        plot.addItem(self.window_region)

    def __repr__(self) -> str:
        return (f"<TracesView: {len(self.ch_names)} ch | span {self.span:g} s | "
                f"scale {self.scale * 1e6:g} uV | redraws {self.n_redraws}>")

    def set_channels(self, ch_names: Sequence[str], sfreq: float) -> None:
        """Name the rows (left axis) and reset per-channel gains to 1 (kept when the names are
        the same: a preview session, then the real one). Called again when the stream comes
        back with another layout."""
        n = len(ch_names)
        if len(self.gains) != n or tuple(ch_names) != self.ch_names:
            self.gains = np.ones(n)
        self.ch_names = tuple(ch_names)
        self.sfreq = float(sfreq)
        self._selected = None  # sample ranges of an earlier stream mean nothing here
        self.window_region.hide()
        self._set_ticks()
        self.getPlotItem().setYRange(-1, n, padding=0)
        self._set_x_range()
        self.curve.setData([], [])
        self._drawn = None

    def _set_ticks(self) -> None:
        """Channel names on the left axis: every :attr:`_label_step`-th name and the names of
        channels marked bad as major ticks, the others as minor ticks (a tick mark, and their
        name only where pyqtgraph finds room), so 128 names do not print over each other."""
        n = len(self.ch_names)
        axis = self.getPlotItem().getAxis("left")
        metrics = QtGui.QFontMetricsF(axis.font())
        self._label_step = label_step(n, self.getPlotItem().getViewBox().height(),
                                      metrics.height())
        labels = [name + (BAD_MARK if name in self.bad else "") for name in self.ch_names]
        longest = max((metrics.horizontalAdvance(label) for label in labels), default=0.0)
        axis.setWidth(max(AXIS_WIDTH, math.ceil(longest) + AXIS_MARGIN))  # names are not cut
        major, minor = [], []
        for i, (name, label) in enumerate(zip(self.ch_names, labels, strict=True)):
            shown = name in self.bad or i % self._label_step == 0
            (major if shown else minor).append((float(n - 1 - i), label))
        axis.setTicks([major, minor])

    def _on_resized(self) -> None:
        """The plot changed height: thin the channel names anew if they would overlap."""
        n = len(self.ch_names)
        if n and label_step(n, self.getPlotItem().getViewBox().height(), QtGui.QFontMetricsF(
                self.getPlotItem().getAxis("left").font()).height()) != self._label_step:
            self._set_ticks()

    def set_bad_channels(self, names: Sequence[str]) -> None:
        """Shade the rows of the channels marked bad and mark their names (others: normal)."""
        self.bad = tuple(names)
        plot = self.getPlotItem()
        for band in self._bad_bands:
            plot.removeItem(band)
        self._bad_bands = []
        n = len(self.ch_names)
        for i, name in enumerate(self.ch_names):
            if name in self.bad:
                row = float(n - 1 - i)
                band = pg.LinearRegionItem((row - 0.5, row + 0.5), orientation="horizontal",
                                           brush=pg.mkBrush(*BAD_COLOR), movable=False)
                band.setZValue(-20)
                plot.addItem(band)
                self._bad_bands.append(band)
        self._set_ticks()

    def set_channel_toggle(self, names: Sequence[str],
                           callback: Callable[[str, bool], None] | None) -> None:
        """Let a right click mark ``names`` bad or good by hand: ``callback(name, bad)``."""
        self.toggleable = tuple(names)
        self.on_toggle_bad = callback

    def channel_menu(self) -> QtWidgets.QMenu | None:
        """The right-click menu: one checkable "bad" entry per channel the model reads."""
        if not self.toggleable or self.on_toggle_bad is None:
            return None
        menu = QtWidgets.QMenu(self)
        menu.addSection("mark bad (replaced for the model)")
        for name in self.toggleable:
            action = menu.addAction(name)
            action.setCheckable(True)
            action.setChecked(name in self.bad)
            action.toggled.connect(lambda bad, name=name: self._toggle(name, bad))
        return menu

    def _toggle(self, name: str, bad: bool) -> None:
        try:
            self.on_toggle_bad(name, bad)
        except DDLiveError as exc:
            logger.warning("could not mark %s: %s", name, exc)

    def contextMenuEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        menu = self.channel_menu()
        if menu is None:
            super().contextMenuEvent(event)
            return
        menu.exec(event.globalPos())

    def set_span(self, seconds: float) -> None:
        self.span = float(np.clip(seconds, *SPAN_RANGE))
        self._set_x_range()

    def set_gain(self, channel: int, gain: float) -> None:
        self.gains[channel] = gain

    def select_window(self, start: int, stop: int) -> None:
        """Shade the absolute sample range ``[start, stop)`` while it is on screen."""
        self._selected = (int(start), int(stop))

    def _set_x_range(self) -> None:
        self.getPlotItem().setXRange(-self.span, 0, padding=0)

    def refresh(self, buffer) -> bool:
        """Redraw from ``buffer`` (a RingBuffer: ``latest(n) -> (data[n_ch, m], times[m])``).

        Returns False when there was nothing to draw: no buffer or samples yet, a buffer of
        another layout, or nothing the curve shows changed since the last redraw (no new
        sample, the same span, scale, gains, width and selected window: the curve is not
        re-sent).
        """
        if buffer is None or not self.ch_names or buffer.n_written == 0:
            return False
        if buffer.n_channels != len(self.ch_names):  # a new layout, not named yet
            return False
        n_times = int(self.span * self.sfreq)
        n_bins = max(int(self.getPlotItem().getViewBox().width()), 100)
        shown = (id(buffer), buffer.n_written, n_times, n_bins, self.scale,
                 self.gains.tobytes(), self._selected)
        if shown == self._drawn:
            return False
        started = time.thread_time()
        positions, values, n_written = self._peaks.update(buffer, n_times, n_bins)
        if values.shape[1] == 0:
            return False
        x = (positions - n_written) / self.sfreq  # newest sample at ~0 s
        xs, ys = stack_traces(x, values, self.scale, self.gains)
        self.curve.setData(xs, ys)
        self._place_window(n_written)
        self._drawn = (id(buffer), n_written, *shown[2:])
        self.n_redraws += 1
        # the previous redraw's painting is counted with this one: the mean is the same
        cost = time.thread_time() - started + self._paint_seconds
        self._paint_seconds = 0.0
        self.frame_seconds += FRAME_COST_WEIGHT * (cost - self.frame_seconds)
        return True

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        started = time.thread_time()
        super().paintEvent(event)
        self._paint_seconds += time.thread_time() - started

    def _place_window(self, n_written: int) -> None:
        if self._selected is None:
            return
        start, stop = self._selected
        x0, x1 = (start - n_written) / self.sfreq, (stop - n_written) / self.sfreq
        if x1 < -self.span:
            self.window_region.hide()
            return
        self.window_region.setRegion((x0, x1))
        self.window_region.show()


def cache_axes(plot: pg.PlotItem) -> None:
    """Keep each axis of ``plot`` (ticks, names, grid lines) as a pixmap: a redraw of the data
    then blits it instead of repainting every tick label and grid line (with the time grid on,
    the bottom axis spans the whole plot, so every trace redraw repainted it)."""
    for name in ("left", "bottom", "right", "top"):
        axis = plot.getAxis(name)
        if axis is not None:
            axis.setCacheMode(QtWidgets.QGraphicsItem.CacheMode.DeviceCoordinateCache)
