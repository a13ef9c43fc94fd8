"""An LSL inlet as a :class:`Source`, with our own loss detection and reconnect.

pylsl's built-in recovery reconnects silently and hides the gap (../shared/REALTIME.md), so the
inlet is opened with ``recover=False``: a lost stream, or a stream silent for ``watchdog``
seconds, becomes a ``"disconnect"`` event; when the same ``source_id`` comes back the source
reconnects and reports a ``"gap"`` (its length and the samples missing) and a ``"reconnect"``.

Timestamps are corrected onto the local LSL clock: one ``time_correction()`` at connect (it
takes ~0.6 s the first time), then refreshed by a small clock thread, never in ``read()``.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from dd_live.errors import ConfigError, SourceError, StreamNotFoundError
from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.sources.discovery import describe_lsl_info, format_lsl_stream, list_lsl_streams

logger = logging.getLogger(__name__)

CLOCK_INTERVAL = 5.0  # seconds between two time corrections
CLOCK_TIMEOUT = 2.0  # seconds one time correction may take
LIST_TIMEOUT = 1.0  # seconds spent listing the streams seen, for an error message
BUFFER_SECONDS = 360  # liblsl's inlet buffer
UNIT_SCALES = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "microvolt": 1e-6,
    "microvolts": 1e-6,
    "nv": 1e-9,
    "nanovolts": 1e-9,
}
CHANNEL_TYPES = {"eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "bio", "gsr", "temperature"}


def _pylsl():
    import pylsl  # lazily: liblsl reads LSLAPICFG when pylsl is imported

    return pylsl


def _predicate(name: str | None, stype: str | None, source_id: str | None) -> str:
    parts = [
        f"{prop}='{value}'"
        for prop, value in (("name", name), ("type", stype), ("source_id", source_id))
        if value is not None
    ]
    if not parts:
        parts = ["type='EEG'"]
    return " and ".join(parts)


def resolve_one(predicate: str, timeout: float, what: str):
    """The first ``pylsl.StreamInfo`` matching an XPath ``predicate``.

    Raises:
        StreamNotFoundError: nothing matched within ``timeout``; the message lists what was seen.
    """
    pylsl = _pylsl()
    found = pylsl.resolve_bypred(predicate, minimum=1, timeout=timeout)
    if found:
        return found[0]
    seen = list_lsl_streams(LIST_TIMEOUT)
    if seen:
        listing = "; ".join(format_lsl_stream(s) for s in seen)
        hint = f"streams seen: {listing}"
    else:
        hint = (
            "no LSL stream at all is visible: is the outlet running, on this machine or "
            "network, and does its LSL configuration (LSLAPICFG) allow discovery?"
        )
    raise StreamNotFoundError(
        f"no LSL {what} matching {predicate} found within {timeout:g} s; {hint}. "
        "`dd-live devices` lists the streams."
    )


def _channels_from_xml(info, n_channels: int, stream_type: str):
    """``(names, types, units)`` from the ``desc/channels`` XML of a full ``pylsl.StreamInfo``."""
    names, types, units = [], [], []
    channel = info.desc().child("channels").child("channel")
    while not channel.empty() and len(names) < n_channels:
        names.append(channel.child_value("label"))
        types.append(channel.child_value("type").lower())
        units.append(channel.child_value("unit"))
        channel = channel.next_sibling("channel")
    default_type = "eeg" if stream_type.lower() == "eeg" else "misc"
    names += [""] * (n_channels - len(names))
    types += [""] * (n_channels - len(types))
    units += [""] * (n_channels - len(units))
    names = [label or f"EEG{i + 1:03d}" for i, label in enumerate(names)]
    types = [t if t in CHANNEL_TYPES else default_type for t in types]
    return names, types, units


def _unit_scale(unit: str, ch_type: str) -> tuple[float, str]:
    """How to bring a channel to volts: ``(scale, unit delivered)``."""
    scale = UNIT_SCALES.get(unit.strip().lower())
    if scale is not None:
        return scale, "V"
    if ch_type in ("eeg", "eog", "ecg", "emg") and not unit.strip():
        return 1.0, "V"  # no unit given: assume volts
    return 1.0, unit


class LSLSource(Source):
    """An LSL stream, found by name, type or source id (all given must match).

    Args:
        name, stype, source_id: what to look for (none given: the first stream of type EEG).
        timeout: seconds to wait for the stream (and the marker stream) to appear.
        markers: name or type of a marker stream to read alongside; its samples become
            ``SourceEvent("marker")``.
        max_chunk: most samples one ``read()`` returns (default: one second's worth, >= 1024).
        recover: reconnect when the stream is lost (False: raise SourceError instead).
        watchdog: seconds without data after which a ``"disconnect"`` is reported.
        poll: seconds ``read()`` waits for a first sample when none is pending.

    The stream is resolved and ``info`` filled at construction; ``start()`` opens the inlet and
    measures the clock offset. ``read()`` returns ``(n_channels, n_times)`` in volts for
    channels whose unit is a volt multiple (microvolts are scaled), timestamps on the local
    LSL clock.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        stype: str | None = None,
        source_id: str | None = None,
        timeout: float = 5.0,
        markers: str | None = None,
        max_chunk: int | None = None,
        recover: bool = True,
        watchdog: float = 2.0,
        poll: float = 0.01,
    ) -> None:
        super().__init__()
        if not watchdog > 0 or not poll >= 0 or not timeout >= 0:
            raise ConfigError(
                f"LSLSource: watchdog must be > 0 s, poll and timeout >= 0 s; got watchdog="
                f"{watchdog}, poll={poll}, timeout={timeout}"
            )
        pylsl = _pylsl()
        self.predicate = _predicate(name, stype, source_id)
        self.timeout = timeout
        self.recover = recover
        self.watchdog = watchdog
        self.poll = poll
        found = resolve_one(self.predicate, timeout, "stream")
        self._resolved = describe_lsl_info(found)
        sfreq = found.nominal_srate()
        if not sfreq > 0:
            raise ConfigError(
                f"LSL stream {found.name()!r} has an irregular rate; an EEG source needs a "
                "nominal sampling rate (pass marker streams as markers=...)"
            )
        if found.channel_format() == pylsl.cf_string:
            raise ConfigError(f"LSL stream {found.name()!r} carries strings, not samples")
        inlet = self._open_inlet(found)
        try:
            full = inlet.info(timeout=timeout)
        except pylsl.util.TimeoutError as err:
            raise SourceError(
                f"LSL stream {found.name()!r} was found but did not answer within {timeout:g} s"
            ) from err
        n_channels = full.channel_count()
        names, types, units = _channels_from_xml(full, n_channels, full.type())
        scales, units = zip(*(_unit_scale(u, t) for u, t in zip(units, types)), strict=True)
        self._scale = np.asarray(scales, dtype=np.float64)[:, None]  # (n_channels, 1)
        self._needs_scale = bool(np.any(self._scale != 1.0))
        self.info = StreamInfo(
            name=full.name(),
            sfreq=float(sfreq),
            ch_names=tuple(names),
            ch_types=tuple(types),
            units=tuple(units),
            source_id=full.source_id(),
        )
        self.max_chunk = max_chunk or max(1024, int(np.ceil(sfreq)))
        self._buffer = np.empty((self.max_chunk, n_channels), dtype=inlet.np_dtype)
        self._inlet = inlet
        self._markers_query = markers
        self._marker_inlet = None
        self._marker_offset = 0.0
        self._offset = 0.0
        self._clock: threading.Thread | None = None
        self._clock_stop = threading.Event()
        self._resolver = None
        self._last_stamp: float | None = None  # corrected timestamp of the last sample
        self._last_data = 0.0  # local clock when data last arrived
        self._silent = False  # a "disconnect" was reported and no data came since
        self.n_reconnects = 0

    def _open_inlet(self, found):
        pylsl = _pylsl()
        return pylsl.StreamInlet(
            found,
            max_buflen=BUFFER_SECONDS,
            recover=False,
            processing_flags=pylsl.proc_none,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        pylsl = _pylsl()
        if self._inlet is None:
            self._inlet = self._open_inlet(
                resolve_one(self._id_predicate(), self.timeout, "stream")
            )
        try:
            self._inlet.open_stream(timeout=self.timeout)
            self._offset = self._inlet.time_correction(timeout=self.timeout)
        except (pylsl.util.TimeoutError, pylsl.util.LostError) as err:
            raise SourceError(
                f"LSL stream {self.info.name!r} did not answer within {self.timeout:g} s: {err}"
            ) from err
        if self._markers_query is not None:
            self._open_markers()
        self._last_data = pylsl.local_clock()
        self._clock_stop.clear()
        self._clock = threading.Thread(
            target=self._clock_loop, name=f"lsl-clock-{self.info.name}", daemon=True
        )
        self._clock.start()

    def _open_markers(self) -> None:
        pylsl = _pylsl()
        query = self._markers_query
        found = resolve_one(f"name='{query}' or type='{query}'", self.timeout, "marker stream")
        inlet = pylsl.StreamInlet(found, max_buflen=BUFFER_SECONDS, recover=True)
        inlet.open_stream(timeout=self.timeout)
        self._marker_offset = inlet.time_correction(timeout=self.timeout)
        self._marker_inlet = inlet

    def _stop(self) -> None:
        self._clock_stop.set()
        if self._clock is not None:
            self._clock.join(timeout=CLOCK_TIMEOUT + 1.0)
            self._clock = None
        if self._inlet is not None:
            self._inlet.close_stream()
        self._inlet = None
        self._marker_inlet = None
        self._resolver = None

    def _clock_loop(self) -> None:
        """Refresh the clock offsets every CLOCK_INTERVAL seconds (its own thread)."""
        pylsl = _pylsl()
        while not self._clock_stop.wait(CLOCK_INTERVAL):
            for attr, inlet_attr in (("_offset", "_inlet"), ("_marker_offset", "_marker_inlet")):
                inlet = getattr(self, inlet_attr)
                if inlet is None:
                    continue
                try:
                    setattr(self, attr, inlet.time_correction(timeout=CLOCK_TIMEOUT))
                except (pylsl.util.TimeoutError, pylsl.util.LostError) as err:
                    logger.debug("LSL time correction of %s failed: %s", self.info.name, err)

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        pylsl = _pylsl()
        if self._marker_inlet is not None:
            self._read_markers()
        if self._inlet is None and not self._try_reconnect():
            time.sleep(self.poll)
            return empty_chunk(self.info.n_channels)
        try:
            _, stamps = self._inlet.pull_chunk(
                timeout=self.poll,
                max_samples=self.max_chunk,
                dest_obj=self._buffer,
                min_samples=1,
                as_numpy=True,
            )
        except pylsl.util.LostError:
            self._lost("the outlet disappeared")
            return empty_chunk(self.info.n_channels)
        n_times = len(stamps)
        now = pylsl.local_clock()
        if n_times == 0:
            if not self._silent and now - self._last_data > self.watchdog:
                self._report_disconnect(f"no data for {self.watchdog:g} s")
            return empty_chunk(self.info.n_channels)
        stamps = stamps + self._offset
        if self._silent:
            self._report_gap(stamps[0])
        self._last_data = now
        self._last_stamp = float(stamps[-1])
        data = self._buffer[:n_times].T.astype(np.float64)  # (n_channels, n_times), a copy
        if self._needs_scale:
            data *= self._scale
        return data, stamps

    def _read_markers(self) -> None:
        pylsl = _pylsl()
        try:
            values, stamps = self._marker_inlet.pull_chunk(timeout=0.0)
        except pylsl.util.LostError:
            logger.warning("LSL marker stream of %s was lost", self.info.name)
            self._marker_inlet = None
            return
        for value, stamp in zip(values, stamps):
            text = " ".join(str(v) for v in value)
            self._push_event(SourceEvent("marker", stamp + self._marker_offset, text))

    def _id_predicate(self) -> str:
        if self.info.source_id:
            return f"source_id='{self.info.source_id}'"
        return self.predicate

    def _report_disconnect(self, why: str) -> None:
        self._silent = True
        stamp = self._last_stamp if self._last_stamp is not None else 0.0
        logger.warning("LSL stream %s: disconnect (%s)", self.info.name, why)
        self._push_event(SourceEvent("disconnect", stamp, f"LSL stream {self.info.name}: {why}"))

    def _report_gap(self, first_stamp: float) -> None:
        self._silent = False
        period = 1.0 / self.info.sfreq
        last = self._last_stamp if self._last_stamp is not None else first_stamp - period
        duration = max(0.0, first_stamp - last - period)
        n_missing = max(0, round(duration * self.info.sfreq))
        description = f"{n_missing} samples ({duration:.3f} s) missing after a disconnect"
        self._push_event(
            SourceEvent("gap", last + period, description, duration, {"n_missing": n_missing})
        )
        self._push_event(SourceEvent("reconnect", first_stamp, f"LSL stream {self.info.name}"))
        logger.info("LSL stream %s: data again, %s", self.info.name, description)

    def _lost(self, why: str) -> None:
        if not self.recover:
            raise SourceError(
                f"LSL stream {self.info.name!r} was lost ({why}); restart the outlet, or use "
                "recover=True to wait for it"
            )
        if not self._silent:
            self._report_disconnect(why)
        self._inlet = None
        self._resolver = _pylsl().ContinuousResolver(pred=self._id_predicate())

    def _try_reconnect(self) -> bool:
        """True once a new inlet on the same source id is open (never blocks long)."""
        found = self._resolver.results()
        if not found:
            return False
        self._inlet = self._open_inlet(found[0])
        self._resolver = None
        self.n_reconnects += 1
        logger.info("LSL stream %s: found again, reconnecting", self.info.name)
        return True
