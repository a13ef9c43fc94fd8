"""Spectrum and band power of the newest seconds of the filtered stream.

An estimate costs a Welch transform of every channel (128 channels x 2 s at 1 kHz: a few ms),
so the window asks for one about once a second, not at all while the view is hidden, and
:meth:`SpectrumView.refresh` does nothing when no sample arrived since the last estimate.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from dd_live.gui.traces import BACKGROUND, TRACE_COLOR, cache_axes

SPECTRUM_SECONDS = 2.0  # s of signal per estimate
WELCH_SEGMENT = 0.5  # s per Welch segment (2 Hz resolution)
BANDS = (  # name, low Hz, high Hz
    ("delta", 1.0, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)
BAND_SYMBOLS = {"delta": "δ", "theta": "θ", "alpha": "α", "beta": "β", "gamma": "γ"}
BAND_COLORS = ((120, 140, 255), (120, 220, 255), (120, 255, 160), (255, 220, 110), (255, 130, 110))
POWER_FLOOR = 1e-30  # V^2/Hz, keeps log10 finite


def band_powers(freqs: np.ndarray, psd: np.ndarray) -> np.ndarray:
    """Mean power per band of :data:`BANDS`.

    Args:
        freqs: ``(n_freqs,)`` Hz.
        psd: ``(n_channels, n_freqs)`` V^2/Hz.

    Returns:
        ``(n_bands,)`` power (V^2/Hz) averaged over channels and the band's bins; NaN for a band
        with no bin (above Nyquist).
    """
    out = np.full(len(BANDS), np.nan)
    for i, (_, low, high) in enumerate(BANDS):
        inside = (freqs >= low) & (freqs < high)
        if inside.any():
            out[i] = psd[:, inside].mean()
    return out


class SpectrumView(QtWidgets.QWidget):
    """Mean log power spectrum over channels (left) and band powers (right)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.psd_plot = pg.PlotWidget(background=BACKGROUND)
        self.psd_plot.setMouseEnabled(x=False, y=False)
        self.psd_plot.hideButtons()
        self.psd_plot.setLabel("bottom", "frequency", units="Hz")
        self.psd_plot.setLabel("left", "log10 power (V²/Hz)")
        self.psd_plot.showGrid(x=True, y=True, alpha=0.2)
        self.psd_curve = self.psd_plot.plot(pen=pg.mkPen(TRACE_COLOR, width=1))
        self.band_plot = pg.PlotWidget(background=BACKGROUND)
        self.band_plot.setMouseEnabled(x=False, y=False)
        self.band_plot.hideButtons()
        self.band_plot.setLabel("left", "log10 band power")
        # Greek letters: five full band names overlap in a narrow panel
        self.band_plot.getAxis("bottom").setTicks(
            [[(i, BAND_SYMBOLS.get(name, name)) for i, (name, _, _) in enumerate(BANDS)]])
        self.band_plot.setToolTip("band power: " + ", ".join(
            f"{BAND_SYMBOLS.get(name, name)} {name} {low:g}-{high:g} Hz"
            for name, low, high in BANDS))
        self.bars = pg.BarGraphItem(x=np.arange(len(BANDS)), height=np.zeros(len(BANDS)),
                                    width=0.7, brushes=[pg.mkBrush(c) for c in BAND_COLORS])
        self.band_plot.addItem(self.bars)
        layout.addWidget(self.psd_plot, 3)
        layout.addWidget(self.band_plot, 2)
        for plot in (self.psd_plot, self.band_plot):
            cache_axes(plot.getPlotItem())
        self.n_updates = 0
        self.last_band_power = np.full(len(BANDS), np.nan)
        self._estimated: tuple | None = None  # (buffer, samples written) of the last estimate

    def __repr__(self) -> str:
        return f"<SpectrumView: updates {self.n_updates}>"

    def clear(self) -> None:
        """Forget the last estimate (a new stream layout: its first seconds are not in yet)."""
        self.psd_curve.setData([], [])
        self.last_band_power = np.full(len(BANDS), np.nan)
        self.bars.setOpts(y0=0.0, height=np.zeros(len(BANDS)))
        self._estimated = None

    def refresh(self, buffer, sfreq: float) -> bool:
        """Welch estimate over the newest :data:`SPECTRUM_SECONDS` of ``buffer``.

        Returns False (and computes nothing) without a buffer, before there is one Welch
        segment of signal, or when no sample arrived since the last estimate.
        """
        if buffer is None or sfreq <= 0:
            return False
        estimate = (id(buffer), buffer.n_written, sfreq)
        if estimate == self._estimated:
            return False
        data, _ = buffer.latest(int(SPECTRUM_SECONDS * sfreq))  # (n_channels, n_times)
        if data.shape[1] < int(WELCH_SEGMENT * sfreq):
            return False
        data = data[np.isfinite(data).all(axis=1)]  # a channel with NaN/Inf samples sits out
        if data.shape[0] == 0:
            return False
        from scipy.signal import welch  # loaded after the window shows (start-up time)

        freqs, psd = welch(data, fs=sfreq, nperseg=int(WELCH_SEGMENT * sfreq), axis=-1)
        keep = freqs > 0
        log_psd = np.log10(np.maximum(psd[:, keep].mean(axis=0), POWER_FLOOR))
        self.psd_curve.setData(freqs[keep], log_psd)
        self.last_band_power = band_powers(freqs, psd)
        heights = np.log10(np.maximum(np.nan_to_num(self.last_band_power), POWER_FLOOR))
        base = np.floor(heights.min())
        self.bars.setOpts(y0=base, height=heights - base)
        self._estimated = estimate
        self.n_updates += 1
        return True
