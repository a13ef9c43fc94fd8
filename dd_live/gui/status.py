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
STAGE_WORDS = (("encode", "reading the EEG"), ("decoder", "decoding the EEG"),
               ("lowlevel", "the low-level picture"), ("retrieve", "finding the nearest"),
               ("sample", "drawing"),
               ("decode", "finishing the picture"), ("total", "in all"))
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


class RateMeter(SampleRateMeter):
    """Events per second (images/s) over the last :data:`RATE_WINDOW` seconds of a counter."""


def plain_stages(timings: dict[str, float]) -> str:
    """The stages of one image in plain words: ``"reading the EEG 3 ms, drawing 95 ms..."``."""
    parts = []
    for stage, words in STAGE_WORDS:
        value = stage_time(timings, stage)
        if value is not None:
            parts.append(f"{words} {value * 1e3:.0f} ms")
    return ", ".join(parts)


class StatusPanel:
    """Labels in a QStatusBar, in plain words: stream state and rate, buffer in seconds,
    images per second, latency, skipped windows, and whether (and where) it records."""

    def __init__(self, bar: QtWidgets.QStatusBar) -> None:
        self.bar = bar
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 0)  # busy: loading has no known length
        self.progress.setMaximumWidth(140)
        self.progress.setTextVisible(False)
        self.progress_label = QtWidgets.QLabel("")
        self.bar.addWidget(self.progress_label)
        self.bar.addWidget(self.progress)
        self.progress.hide()
        self.progress_label.hide()
        self.state = self._label("stream: idle", "state of the EEG stream")
        self.rate = self._label("— Hz", "samples per second arriving now (last 2 s) / nominal")
        self.fill = self._label("buffer —", "seconds of signal kept in memory / capacity")
        self.images = self._label("— images/s", "images made per second (last few seconds)")
        self.latency = self._label("latency —", "from the end of an EEG window to its image "
                                               "on screen (waiting included)")
        self.windows = self._label("", "windows cut from the stream; skipped: the generator was "
                                       "busy; rejected: failed the quality check")
        self.recording = self._label("not recording", "whether the session is being recorded")
        self.meter = SampleRateMeter()
        self.image_meter = RateMeter()
        self.sfreq_measured = 0.0
        self.images_per_second = 0.0

    def _label(self, text: str, tip: str) -> QtWidgets.QLabel:
        label = QtWidgets.QLabel(text)
        label.setToolTip(tip)
        label.setContentsMargins(4, 0, 4, 0)
        self.bar.addPermanentWidget(label)
        return label

    def set_progress(self, text: str | None) -> None:
        """Show a busy bar with the stage being done (``"loading the model…"``); None hides it."""
        self.progress.setVisible(text is not None)
        self.progress_label.setVisible(text is not None)
        self.progress_label.setText(text or "")

    def set_recording(self, folder: str | None, stopped: str | None = None) -> None:
        """``● recording to FOLDER``, ``not recording``, or ``recording stopped: REASON`` when
        the recording stopped by itself (a write error; the live session goes on)."""
        if stopped is not None:
            self.recording.setText(f"recording stopped: {elided(stopped, 60)}")
            self.recording.setStyleSheet("color: #ffb347; font-weight: bold;")
            self.recording.setToolTip(f"recording stopped: {stopped}\nthe live session goes "
                                      "on; tick 'record to' to record again")
        elif folder is None:
            self.recording.setText("not recording")
            self.recording.setStyleSheet("")
            self.recording.setToolTip("not recording (tick 'record to' to record)")
        else:
            self.recording.setText(f"● recording to {elided(str(folder), 48)}")
            self.recording.setStyleSheet("color: #ff6b6b; font-weight: bold;")
            self.recording.setToolTip(f"recording EEG, events and images to {folder}")

    def update(self, stats, nominal_sfreq: float, buffer_seconds: float | None = None) -> None:
        """Show a :class:`~dd_live.session.SessionStats`."""
        self.state.setText(f"stream: {stats.state}")
        color = {"running": "#7fd97f", "stalled": "#ffb347", "error": "#ff6b6b"}.get(stats.state)
        self.state.setStyleSheet(f"color: {color};" if color else "")
        self.sfreq_measured = self.meter.add(stats.n_samples)
        self.rate.setText(f"{self.sfreq_measured:.0f} Hz")
        self.rate.setToolTip(f"samples per second arriving now (last 2 s); nominal "
                             f"{nominal_sfreq:g} Hz")
        if buffer_seconds:
            self.fill.setText(f"buffer {stats.buffer_fill * buffer_seconds:.0f} s of "
                              f"{buffer_seconds:g} s")
        else:
            self.fill.setText(f"buffer {stats.buffer_fill:.0%} full")
        self.images_per_second = self.image_meter.add(stats.n_images)
        self.images.setText(f"{self.images_per_second:.1f} images/s")
        words = [f"{stats.n_windows} windows"]
        if stats.n_dropped:
            words.append(f"{stats.n_dropped} skipped")
        if stats.n_rejected:
            words.append(f"{stats.n_rejected} rejected")
        if stats.n_failed:
            words.append(f"{stats.n_failed} failed")
        self.windows.setText(", ".join(words))
        t = stats.last_timings
        if t:
            latency = t.get("latency", stage_time(t, "total"))
            text = f"latency {latency * 1e3:.0f} ms" if latency is not None else "latency —"
            decoder = stage_time(t, "decoder")  # the embedding route's window -> vector
            if decoder is not None:
                text += f" · decoder {decoder * 1e3:.1f} ms"
            self.latency.setText(text)
            self.latency.setToolTip("from the end of an EEG window to its image (waiting "
                                    f"included); last image: {plain_stages(t)}")

    def show_message(self, text: str, timeout_ms: int = 0) -> None:
        self.bar.showMessage(text, timeout_ms)

    def reset(self) -> None:
        self.meter.reset()
        self.image_meter.reset()
        self.sfreq_measured = 0.0
        self.images_per_second = 0.0


def elided(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters for a banner."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


