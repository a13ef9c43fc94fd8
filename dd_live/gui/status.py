"""What the user must see at a glance: a coloured banner for trouble, a status bar of numbers."""

from __future__ import annotations

import time
from collections import deque

from PySide6 import QtWidgets

BANNER_STYLES = {
    "error": "background: #8b1e1e; color: white;",
    "warning": "background: #a36a00; color: white;",
    "info": "background: #1f4e79; color: white;",
}
RATE_WINDOW = 2.0  # s over which the measured sample rate is averaged
LATENCY_STAGES = ("encode", "sample", "decode", "total")
# the sampler stage is "sample" in DecodedImages' contract; ImageGenerator reports it as "unet"
STAGE_ALIASES = {"sample": ("sample", "unet")}


def stage_time(timings: dict[str, float], stage: str) -> float | None:
    """Seconds of ``stage`` in a timings dict, under its name or an alias; None if absent."""
    for key in STAGE_ALIASES.get(stage, (stage,)):
        if key in timings:
            return timings[key]
    return None


class Banner(QtWidgets.QLabel):
    """A coloured line above the traces; one message per topic (``stream``, ``generation``...).

    The most severe message shows; ``clear(topic)`` removes one.
    """

    SEVERITY = ("info", "warning", "error")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setMargin(6)
        self.messages: dict[str, tuple[str, str]] = {}  # topic -> (level, text)
        self.hide()

    def __repr__(self) -> str:
        return f"<Banner: {self.text()!r}>"

    def show_message(self, topic: str, level: str, text: str) -> None:
        self.messages[topic] = (level, text)
        self._update()

    def clear(self, topic: str) -> None:
        if self.messages.pop(topic, None) is not None:
            self._update()

    def _update(self) -> None:
        if not self.messages:
            self.setText("")
            self.hide()
            return
        ordered = sorted(self.messages.values(), key=lambda m: -self.SEVERITY.index(m[0]))
        self.setStyleSheet(BANNER_STYLES[ordered[0][0]])
        self.setText("\n".join(text for _, text in ordered))
        self.show()


class SampleRateMeter:
    """Sample rate over the last :data:`RATE_WINDOW` seconds from ``(time, n_samples)`` pairs."""

    def __init__(self) -> None:
        self._points: deque[tuple[float, int]] = deque()

    def add(self, n_samples: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._points.append((now, n_samples))
        while len(self._points) > 2 and now - self._points[1][0] >= RATE_WINDOW:
            self._points.popleft()
        (t0, n0), (t1, n1) = self._points[0], self._points[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def reset(self) -> None:
        self._points.clear()


class StatusPanel:
    """Labels in a QStatusBar: stream state, rate, buffer fill, windows, latency per stage."""

    def __init__(self, bar: QtWidgets.QStatusBar) -> None:
        self.bar = bar
        self.state = self._label("stream: idle", "state of the acquisition")
        self.rate = self._label("— Hz", "measured sample rate (last 2 s) / nominal")
        self.fill = self._label("buffer —", "ring buffer fill")
        self.windows = self._label("windows 0", "windows cut / rejected by the quality check / "
                                                "dropped because the generator was busy")
        self.latency = self._label("ms enc/smp/dec/tot: —", "stages of the last image: encode / sample "
                                                "(UNet steps) / decode (VAE) / total")
        self.meter = SampleRateMeter()
        self.sfreq_measured = 0.0

    def _label(self, text: str, tip: str) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(text)
        label.setToolTip(tip)
        label.setContentsMargins(6, 0, 6, 0)
        self.bar.addPermanentWidget(label)
        return label

    def update(self, stats, nominal_sfreq: float) -> None:
        """Show a :class:`~dd_live.session.SessionStats`."""
        self.state.setText(f"stream: {stats.state}")
        color = {"running": "#7fd97f", "stalled": "#ffb347", "error": "#ff6b6b"}.get(stats.state)
        self.state.setStyleSheet(f"color: {color};" if color else "")
        self.sfreq_measured = self.meter.add(stats.n_samples)
        self.rate.setText(f"{self.sfreq_measured:.1f} Hz / {nominal_sfreq:g} Hz")
        self.fill.setText(f"buffer {stats.buffer_fill:.0%}")
        self.windows.setText(f"windows {stats.n_windows} · rejected {stats.n_rejected} · "
                             f"dropped {stats.n_dropped} · images {stats.n_images}"
                             + (f" · failed {stats.n_failed}" if stats.n_failed else ""))
        t = stats.last_timings
        if t:
            seconds = [stage_time(t, stage) for stage in LATENCY_STAGES]
            parts = " / ".join("–" if v is None else f"{v * 1e3:.0f}" for v in seconds)
            self.latency.setText(f"ms enc/smp/dec/tot: {parts}")

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        self.bar.showMessage(text, timeout_ms)

    def reset(self) -> None:
        self.meter.reset()
        self.sfreq_measured = 0.0


def elided(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters for a banner."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


