"""Any :class:`Source` (a recording, the synthetic source...) as an LSL outlet.

Backs ``dd-live stream FILE``: the samples go out on one outlet (channel labels, types and
units in its XML description), markers on a second one named ``<name>-markers`` (type
``Markers``). ``step()`` pushes what the source has now on the caller's thread;
``start()`` runs ``step()`` in a loop on its own thread.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from dd_live.errors import ConfigError
from dd_live.sources.base import Source

logger = logging.getLogger(__name__)

LSL_UNITS = {"V": "volts", "": ""}
CHANNEL_FORMATS = ("float32", "double64")
STOP_TIMEOUT = 5.0


class LSLPlayer:
    """Streams a source on LSL.

    Args:
        source_or_path: a :class:`Source`, or a path opened as a
            :class:`~dd_live.sources.replay.ReplaySource` (real time, ``loop`` as given).
        name: the outlet's name (default: the source's name).
        stype: the outlet's type.
        source_id: the outlet's source id (default: derived from the name).
        chunk_duration: seconds per chunk when a path is given.
        loop: replay a path forever.
        channel_format: ``"float32"`` (like most amplifiers) or ``"double64"``.

    Samples are pushed as they come out of ``read()`` (volts), stamped with the local LSL
    clock at push time; markers keep their offset to the samples.
    """

    def __init__(
        self,
        source_or_path: Source | str | Path,
        *,
        name: str | None = None,
        stype: str = "EEG",
        source_id: str | None = None,
        chunk_duration: float = 0.02,
        loop: bool = False,
        channel_format: str = "float32",
    ) -> None:
        if channel_format not in CHANNEL_FORMATS:
            raise ConfigError(
                f"LSLPlayer: channel_format must be one of {CHANNEL_FORMATS}, got {channel_format!r}"
            )
        if isinstance(source_or_path, Source):
            self.source = source_or_path
        else:
            from dd_live.sources.replay import ReplaySource

            self.source = ReplaySource(source_or_path, chunk_duration=chunk_duration, loop=loop)
        info = self.source.info
        self.name = name or info.name
        self.stype = stype
        self.source_id = source_id or f"dd-live-player-{self.name}"
        self.channel_format = channel_format
        self._dtype = np.float32 if channel_format == "float32" else np.float64
        self._outlet = None
        self._marker_outlet = None
        self._thread: threading.Thread | None = None
        self._stop_requested = threading.Event()
        self.n_pushed = 0
        self.n_markers = 0

    def _stream_info(self):
        import pylsl

        info = self.source.info
        fmt = pylsl.cf_float32 if self.channel_format == "float32" else pylsl.cf_double64
        lsl_info = pylsl.StreamInfo(
            self.name, self.stype, info.n_channels, info.sfreq, fmt, self.source_id
        )
        channels = lsl_info.desc().append_child("channels")
        for ch_name, ch_type, unit in zip(info.ch_names, info.ch_types, info.units):
            channel = channels.append_child("channel")
            channel.append_child_value("label", ch_name)
            channel.append_child_value("type", ch_type.upper() if ch_type == "eeg" else ch_type)
            channel.append_child_value("unit", LSL_UNITS.get(unit, unit))
        lsl_info.desc().append_child("acquisition").append_child_value("manufacturer", "dd-live")
        return lsl_info

    def open(self) -> LSLPlayer:
        """Create the outlets and start the source (``start()`` and ``step()`` do it if needed)."""
        import pylsl

        if self._outlet is None:
            self._outlet = pylsl.StreamOutlet(self._stream_info())
            marker_info = pylsl.StreamInfo(
                f"{self.name}-markers",
                "Markers",
                1,
                pylsl.IRREGULAR_RATE,
                pylsl.cf_string,
                f"{self.source_id}-markers",
            )
            self._marker_outlet = pylsl.StreamOutlet(marker_info)
        self.source.start()
        return self

    def step(self) -> int:
        """Read the source once and push what came. Returns the samples pushed."""
        import pylsl

        if self._outlet is None:
            self.open()
        data, timestamps = self.source.read()  # (n_channels, n_times)
        n_times = timestamps.shape[0]
        now = pylsl.local_clock()
        if n_times:
            chunk = np.ascontiguousarray(data.T, dtype=self._dtype)  # (n_times, n_channels)
            self._outlet.push_chunk(chunk, now)
            self.n_pushed += n_times
        last = float(timestamps[-1]) if n_times else None
        for event in self.source.pop_events():
            if event.kind != "marker":
                continue
            stamp = now if last is None else now - (last - event.timestamp)
            self._marker_outlet.push_sample([event.description], stamp)
            self.n_markers += 1
        return n_times

    def _run(self) -> None:
        while not self._stop_requested.is_set():
            try:
                self.step()
            except Exception:
                logger.exception("LSLPlayer %s: streaming failed; stopping", self.name)
                break
            if self.source.finished:
                logger.info("LSLPlayer %s: the source ended", self.name)
                break

    def start(self) -> LSLPlayer:
        """Open and stream on a background thread. Returns ``self``."""
        if self.running:
            raise RuntimeError(f"{self!r} is already streaming")
        self.open()
        self._stop_requested.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"lsl-player-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop streaming, stop the source and close the outlets. Safe to call twice."""
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
            self._thread = None
        self.source.stop()
        self._outlet = None
        self._marker_outlet = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LSLPlayer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "ON" if self.running else "OFF"
        return f"<LSLPlayer: {state} | {self.name} (source: {self.source_id}) from {self.source!r}>"
