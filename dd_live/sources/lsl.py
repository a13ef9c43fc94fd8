"""An LSL inlet as a :class:`Source`, with our own loss detection and reconnect.

pylsl's built-in recovery reconnects silently and hides the gap, so the inlet is opened with
``recover=False``: a lost stream, or a stream silent for ``watchdog`` seconds, becomes a
``"disconnect"`` event; when the stream comes back the source reconnects and reports a ``"gap"``
(its length and the samples missing) and a ``"reconnect"``. What counts as the same stream
(``reconnect``): by default (``"auto"``) the same ``source_id``, and after
:data:`AUTO_NAME_AFTER` seconds without it a stream of the same name, type, host and layout (an
app restarted without its id, or with a new one: the log and the ``"reconnect"`` event say it
matched by name); ``"source-id"`` only the same id; ``"name"`` the same name and type at once. A stream that comes back with
other channels, another rate or sample format is not read into the old layout: the source
reports a ``"layout"`` event naming the change and waits until :meth:`LSLSource.accept_layout`
(the session starts a new recording segment then, or stops).

Timestamps are corrected onto the local LSL clock (one ``time_correction()`` at connect, ~0.6 s
the first time, then refreshed by a small clock thread, never in ``read()``) and dejittered
by a running fit of sample count -> time (:class:`~dd_live.sources.clock.Dejitterer`): apps
that stamp chunks at push time jitter by tens of ms, which must not look like gaps. Samples
missing are counted by the stream's counter channel when it has one (a channel labelled
``COUNTER``, ``Sample Index``...), else found from the dejittered clock.

mne-lsl players are understood: their power-of-ten unit strings (``"0"``: volts, ``"-6"``:
microvolts) and their one-hot annotation stream (one channel per description, the value the
duration or -1), which arrives as markers with the description as text.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from dd_live.errors import ConfigError, SourceError, StreamNotFoundError
from dd_live.sources.base import Source, SourceEvent, StreamInfo, empty_chunk
from dd_live.sources.clock import Dejitterer, SampleCounter, break_events, find_counter
from dd_live.sources.discovery import (
    companion_marker_predicate,
    describe_lsl_info,
    format_lsl_stream,
    list_lsl_streams,
    lsl_predicate,
    marker_stream_for,
    xpath_literal,
)
from dd_live.sources.units import VOLT_TYPES, eeg_rms, parse_unit, plausible_scale

logger = logging.getLogger(__name__)

CLOCK_INTERVAL = 5.0  # seconds between two time corrections
CLOCK_TIMEOUT = 2.0  # seconds one time correction may take
LIST_TIMEOUT = 1.0  # seconds spent listing the streams seen, for an error message
MARKER_LOOKUP_TIMEOUT = 1.0  # s looking for the stream's own marker stream at start (first answers ~0.5 s)
BUFFER_SECONDS = 360  # liblsl's inlet buffer
CHANNEL_TYPES = {"eeg", "eog", "ecg", "emg", "misc", "stim", "resp", "bio", "gsr", "temperature"}
RECONNECT_MODES = ("auto", "source-id", "name")
AUTO_NAME_AFTER = 3.0  # s without the lost source id before "auto" takes a same-name stream


def _pylsl():
    import pylsl  # lazily: liblsl reads LSLAPICFG when pylsl is imported

    return pylsl


def _predicate(name: str | None, stype: str | None, source_id: str | None) -> str:
    return lsl_predicate(name=name, type=stype, source_id=source_id) or "type='EEG'"


def resolve_one(predicate: str, timeout: float, what: str):
    """The first ``pylsl.StreamInfo`` matching an XPath ``predicate``.

    Raises:
        StreamNotFoundError: nothing matched within ``timeout``; the message lists what was seen.
    """
    pylsl = _pylsl()
    found = pylsl.resolve_bypred(predicate, minimum=1, timeout=timeout)
    if found:  # a regular stream before an irregular one of the same source (annotations)
        return sorted(found, key=lambda info: info.nominal_srate() <= 0)[0]
    seen = list_lsl_streams(LIST_TIMEOUT)
    if seen:
        listing = "; ".join(format_lsl_stream(s) for s in seen)
        hint = f"streams seen: {listing}"
    else:
        hint = (
            "no LSL stream at all is visible: is the outlet running, on this computer or the "
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
    """How to bring a channel to volts: ``(scale, unit delivered)``.

    Volt multiples by name scale any channel; mne-lsl's power-of-ten strings (``"0"``,
    ``"-6"``) are volts only on channels of a voltage type (a stim channel's ``"0"`` is a plain
    number)."""
    text = unit.strip()
    scale = parse_unit(text)
    is_power = text.lstrip("+-").isdigit()
    if scale is not None and (ch_type in VOLT_TYPES or not is_power):
        return scale, "V"
    if ch_type in VOLT_TYPES and (not text or text.lower() == "none"):
        return 1.0, "V"  # no unit given: assume volts
    return 1.0, "" if is_power or text.lower() == "none" else unit


def _info_from_lsl(full, sfreq: float) -> tuple[StreamInfo, np.ndarray]:
    """Our :class:`StreamInfo` and the per-channel scale to volts ``(n_channels, 1)`` from a
    full ``pylsl.StreamInfo``."""
    n_channels = full.channel_count()
    names, types, units = _channels_from_xml(full, n_channels, full.type())
    scales, units = zip(*(_unit_scale(u, t) for u, t in zip(units, types)), strict=True)
    info = StreamInfo(
        name=full.name(),
        sfreq=float(sfreq),
        ch_names=tuple(names),
        ch_types=tuple(types),
        units=tuple(units),
        source_id=full.source_id(),
    )
    return info, np.asarray(scales, dtype=np.float64)[:, None]


def _unitless(full) -> list[bool]:
    """Per channel: no unit given (or ``"none"``) in the stream's XML description."""
    _, _, units = _channels_from_xml(full, full.channel_count(), full.type())
    return [not u.strip() or u.strip().lower() == "none" for u in units]


def _layout_change(old: StreamInfo, old_format: int, new: StreamInfo, new_format: int) -> str:
    """What differs between two layouts of a stream, in words ("" when nothing does)."""
    changes = []
    if old.n_channels != new.n_channels:
        changes.append(f"{old.n_channels} -> {new.n_channels} channels")
    elif old.ch_names != new.ch_names:
        renamed = [f"{a}->{b}" for a, b in zip(old.ch_names, new.ch_names) if a != b]
        changes.append(f"channel names changed ({', '.join(renamed[:4])}"
                       f"{', ...' if len(renamed) > 4 else ''})")
    elif old.ch_types != new.ch_types or old.units != new.units:
        changes.append("channel types or units changed")
    if old.sfreq != new.sfreq:
        changes.append(f"{old.sfreq:g} -> {new.sfreq:g} Hz")
    if old_format != new_format:
        changes.append(f"sample format {_FORMAT_NAMES.get(old_format, old_format)} -> "
                       f"{_FORMAT_NAMES.get(new_format, new_format)}")
    return "; ".join(changes)


_FORMAT_NAMES = {1: "float32", 2: "double64", 3: "string", 4: "int32", 5: "int16", 6: "int8",
                 7: "int64"}


def _close_quietly(inlet) -> None:
    """Close an inlet's stream (None allowed); a failure to close is logged, not raised."""
    if inlet is None:
        return
    try:
        inlet.close_stream()
    except Exception:  # a stream that is already gone cannot be closed twice
        logger.debug("closing an LSL inlet failed", exc_info=True)


class LSLSource(Source):
    """An LSL stream, found by name, type or source id (all given must match).

    Args:
        name, stype, source_id: what to look for (none given: the first stream of type EEG).
        timeout: seconds to wait for the stream (and the marker stream) to appear.
        markers: name or type of a marker stream to read alongside; its samples become
            ``SourceEvent("marker")`` (string markers as they are; an mne-lsl one-hot
            annotation stream decoded to its descriptions). Not given: the stream's own marker
            stream is found at start when there is one (``NAME-markers`` on the same host, or
            type Markers with a source id starting with this stream's); ``"none"``: no markers.
        max_chunk: most samples one ``read()`` returns (default: one second's worth, >= 1024).
        recover: reconnect when the stream is lost (False: raise SourceError instead).
        watchdog: seconds without data after which a ``"disconnect"`` is reported.
        poll: seconds ``read()`` waits for a first sample when none is pending.
        reconnect: ``"auto"`` waits for the same source id to come back and, after
            :data:`AUTO_NAME_AFTER` seconds without it, takes a stream of the same name, type,
            host and layout; ``"source-id"`` waits for the same source id only (the stream's
            name when it has none); ``"name"`` also accepts a stream of the same name and type
            with a new source id at once (an app restarted with a random id).
        dejitter: fit sample count -> time (True) or keep the stamps as sent (False).

    The stream is resolved and ``info`` filled at construction; ``start()`` opens the inlet and
    measures the clock offset. ``read()`` returns ``(n_channels, n_times)`` in volts for
    channels whose unit is a volt multiple (microvolts are scaled), timestamps on the local
    LSL clock, dejittered.
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
        reconnect: str = "auto",
        dejitter: bool = True,
    ) -> None:
        super().__init__()
        if not watchdog > 0 or not poll >= 0 or not timeout >= 0:
            raise ConfigError(
                f"LSLSource: watchdog must be > 0 s, poll and timeout >= 0 s; got watchdog="
                f"{watchdog}, poll={poll}, timeout={timeout}"
            )
        if reconnect not in RECONNECT_MODES:
            raise ConfigError(
                f"LSLSource: reconnect must be one of {RECONNECT_MODES}, got {reconnect!r}"
            )
        pylsl = _pylsl()
        self.predicate = _predicate(name, stype, source_id)
        self.timeout = timeout
        self.recover = recover
        self.watchdog = watchdog
        self.poll = poll
        self.reconnect = reconnect
        self.dejitter = dejitter
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
        self._stype = full.type()
        self._max_chunk_arg = max_chunk
        self._pending_layout = None  # (info, scale, inlet, format) of a stream that came back
        self._inlet = None
        self._use_inlet(inlet, *_info_from_lsl(full, sfreq), full.channel_format(),
                        _unitless(full))
        self._markers_query = markers
        self.marker_stream_name: str | None = None  # the marker stream read, once started
        self._marker_inlet = None
        self._marker_labels: list[str] | None = None  # one-hot annotation channels
        self._marker_offset = 0.0
        self._offset = 0.0
        self._clock: threading.Thread | None = None
        self._clock_stop = threading.Event()
        self._resolver = None
        self._last_stamp: float | None = None  # dejittered timestamp of the last sample
        self._last_data = 0.0  # local clock when data last arrived
        self._silent = False  # a "disconnect" was reported and no data came since
        self._reconnected = False  # a new inlet is open; its first data reports "reconnect"
        self._lost_at = 0.0  # local clock when the stream was lost
        self._by_name = False  # "auto": the resolver looks for a same-name stream now
        self._matched = ""  # how the returning stream was matched, for the "reconnect" event
        self.n_reconnects = 0

    def _use_inlet(self, inlet, info: StreamInfo, scale: np.ndarray, channel_format: int,
                   unitless: list[bool]) -> None:
        """Read from ``inlet`` with this layout (at construction and after a layout change)."""
        self.info = info
        self._format = channel_format
        self._scale = scale
        self._needs_scale = bool(np.any(scale != 1.0))
        self.max_chunk = self._max_chunk_arg or max(1024, int(np.ceil(info.sfreq)))
        self._buffer = np.empty((self.max_chunk, info.n_channels), dtype=inlet.np_dtype)
        self._inlet = inlet
        # EEG channels sent without a unit: volts or microvolts, judged by the first data
        self._unitless = [k for k, kind in enumerate(info.ch_types)
                          if kind in VOLT_TYPES and unitless[k]]
        self._dejitterer = Dejitterer(info.sfreq) if self.dejitter else None
        row = find_counter(info.ch_names)
        self._counter_row = row
        self._counter = SampleCounter(None, info.ch_names[row]) if row is not None else None

    def _open_inlet(self, found):
        pylsl = _pylsl()
        return pylsl.StreamInlet(
            found,
            max_buflen=BUFFER_SECONDS,
            recover=False,
            processing_flags=pylsl.proc_none,
        )

    @property
    def stall_hint(self) -> str:
        return (f"LSL stream {self.info.name!r} sends nothing: is the program or device that "
                "publishes it still running and connected?")

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
        if self._markers_query is None:
            self._markers_query = self._companion_markers()
        if self._markers_query and self._markers_query.lower() != "none":
            self._open_markers()
        self._last_data = pylsl.local_clock()
        self._clock_stop.clear()
        self._clock = threading.Thread(
            target=self._clock_loop, name=f"lsl-clock-{self.info.name}", daemon=True
        )
        self._clock.start()

    def _companion_markers(self) -> str | None:
        """The name of the marker stream that belongs to this stream, if one is visible."""
        predicate = companion_marker_predicate(self._resolved)
        if predicate is None:
            return None
        found = _pylsl().resolve_bypred(predicate, minimum=1, timeout=MARKER_LOOKUP_TIMEOUT)
        match = marker_stream_for(self._resolved, [describe_lsl_info(info) for info in found])
        if match is None:
            return None
        logger.info("LSL stream %r: reading its marker stream %r (found automatically; "
                    "markers=none turns this off)", self._resolved["name"], match["name"])
        return match["name"]

    def _open_markers(self) -> None:
        pylsl = _pylsl()
        query = self._markers_query
        found = resolve_one(f"name={xpath_literal(query)} or type={xpath_literal(query)}",
                            self.timeout, "marker stream")
        self.marker_stream_name = found.name()
        inlet = pylsl.StreamInlet(found, max_buflen=BUFFER_SECONDS, recover=True)
        inlet.open_stream(timeout=self.timeout)
        self._marker_offset = inlet.time_correction(timeout=self.timeout)
        if found.channel_format() != pylsl.cf_string:
            # numeric markers: mne-lsl's one-hot annotations, one channel per description
            full = inlet.info(timeout=self.timeout)
            labels, _, _ = _channels_from_xml(full, full.channel_count(), "markers")
            self._marker_labels = labels
        self._marker_inlet = inlet

    def _stop(self) -> None:
        self._clock_stop.set()
        if self._clock is not None:
            self._clock.join(timeout=CLOCK_TIMEOUT + 1.0)
            self._clock = None
        for inlet in (self._inlet, self._marker_inlet,
                      self._pending_layout[2] if self._pending_layout is not None else None):
            _close_quietly(inlet)
        self._inlet = None
        self._marker_inlet = None
        self._pending_layout = None
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
        if self._pending_layout is not None:  # waits for accept_layout()
            time.sleep(self.poll)
            return empty_chunk(self.info.n_channels)
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
        data = self._buffer[:n_times].T.astype(np.float64)  # (n_channels, n_times), a copy
        stamps = self._clock_stamps(data, stamps + self._offset)
        self._last_data = now
        self._last_stamp = float(stamps[-1])
        if self._unitless:
            self._judge_units(data)
        if self._needs_scale:
            data *= self._scale
        return data, stamps

    def _judge_units(self, data: np.ndarray) -> None:
        """Scale unitless EEG that is only plausible as microvolts (decided once, on the first
        chunk that is not flat)."""
        rows = self._unitless
        if eeg_rms(data[rows]) == 0:
            return
        self._unitless = []
        scale = plausible_scale(data[rows], f"LSL stream {self.info.name} (no unit on {len(rows)} "
                                            "EEG channels)")
        if scale != 1.0:
            self._scale = self._scale.copy()
            self._scale[rows] = scale
            self._needs_scale = True

    def _clock_stamps(self, data: np.ndarray, stamps: np.ndarray) -> np.ndarray:
        """Dejitter ``stamps`` and report the gaps and clock jumps found in this chunk."""
        after_silence = self._silent or self._reconnected
        if self._dejitterer is None:
            if after_silence:
                self._report_gap(stamps[0])
            return stamps
        missing = None
        if self._counter is not None:
            missing = self._counter(data[self._counter_row])
        stamps, breaks = self._dejitterer(stamps, missing)
        for event in break_events(breaks, stamps, self.info.sfreq,
                                  stream=f"LSL stream {self.info.name}",
                                  clock="the stream's clock", counter="sample counter",
                                  log=logger, after_disconnect=after_silence):
            self._push_event(event)
        if after_silence:
            self._silent = self._reconnected = False
            self._push_event(self._reconnect_event(float(stamps[0])))
            logger.info("LSL stream %s: data again", self.info.name)
        return stamps

    def _read_markers(self) -> None:
        pylsl = _pylsl()
        try:
            values, stamps = self._marker_inlet.pull_chunk(timeout=0.0)
        except pylsl.util.LostError:
            logger.warning("LSL marker stream of %s was lost", self.info.name)
            self._marker_inlet = None
            return
        for value, stamp in zip(values, stamps):
            stamp = stamp + self._marker_offset
            if self._marker_labels is None:
                self._push_event(SourceEvent("marker", stamp, " ".join(str(v) for v in value)))
                continue
            for k in np.flatnonzero(np.asarray(value, dtype=np.float64)):
                duration = max(float(value[k]), 0.0)  # mne-lsl sends -1 for "no duration"
                self._push_event(SourceEvent("marker", stamp, self._marker_labels[k], duration))

    def _id_predicate(self) -> str:
        """What a returning stream must match (``"auto"``: first the source id, then the name
        and type, the host and layout checked in :meth:`_auto_candidates`)."""
        if self.reconnect in ("source-id", "auto") and not self._by_name and self.info.source_id:
            return lsl_predicate(source_id=self.info.source_id, type=self._stype or None)
        return lsl_predicate(name=self.info.name, type=self._stype or None)

    def _report_disconnect(self, why: str) -> None:
        self._silent = True
        stamp = self._last_stamp if self._last_stamp is not None else 0.0
        waiting = self._id_predicate()
        hint = ""
        if self.reconnect == "source-id" and self.info.source_id:
            hint = " (reconnect = \"name\" also accepts a same-name stream with a new source id)"
        elif self.reconnect == "auto" and self.info.source_id:
            hint = (f"; after {AUTO_NAME_AFTER:g} s also a stream of the same name, type, host "
                    "and layout")
        logger.warning("LSL stream %s: disconnect (%s); waiting for %s%s", self.info.name, why,
                       waiting, hint)
        self._push_event(SourceEvent("disconnect", stamp, f"LSL stream {self.info.name}: {why}"))

    def _report_gap(self, first_stamp: float) -> None:
        """Without dejittering: the gap from the raw stamps around a disconnect."""
        self._silent = self._reconnected = False
        period = 1.0 / self.info.sfreq
        last = self._last_stamp if self._last_stamp is not None else first_stamp - period
        duration = max(0.0, first_stamp - last - period)
        n_missing = max(0, round(duration * self.info.sfreq))
        description = f"{n_missing} samples ({duration:.3f} s) missing after a disconnect"
        self._push_event(
            SourceEvent("gap", last + period, description, duration, {"n_missing": n_missing})
        )
        self._push_event(self._reconnect_event(first_stamp))
        logger.info("LSL stream %s: data again, %s", self.info.name, description)

    def _reconnect_event(self, stamp: float) -> SourceEvent:
        matched, self._matched = self._matched, ""
        if not matched:
            return SourceEvent("reconnect", stamp, f"LSL stream {self.info.name}")
        return SourceEvent("reconnect", stamp, f"LSL stream {self.info.name}: {matched}",
                           extra={"matched": "name", "source_id": self.info.source_id})

    def _lost(self, why: str) -> None:
        if not self.recover:
            raise SourceError(
                f"LSL stream {self.info.name!r} was lost ({why}); restart the outlet, or use "
                "recover=True to wait for it"
            )
        if not self._silent:
            self._report_disconnect(why)
        self._inlet = None
        self._by_name = False
        self._lost_at = _pylsl().local_clock()
        self._resolver = _pylsl().ContinuousResolver(pred=self._id_predicate())

    def _try_reconnect(self) -> bool:
        """True once a new inlet with the same layout is open (never blocks long). A stream
        that came back with another layout is held until :meth:`accept_layout`."""
        pylsl = _pylsl()
        if (self.reconnect == "auto" and not self._by_name and self.info.source_id
                and pylsl.local_clock() - self._lost_at > AUTO_NAME_AFTER):
            self._by_name = True  # the source id has not come back: a same-name stream will do
            logger.info("LSL stream %s: source id %r not back after %g s; also accepting a "
                        "stream of the same name, type, host and layout", self.info.name,
                        self.info.source_id, AUTO_NAME_AFTER)
            self._resolver = pylsl.ContinuousResolver(pred=self._id_predicate())
        found = [info for info in self._resolver.results() if info.nominal_srate() > 0]
        if self._by_name:
            found = self._auto_candidates(found)
        if not found:
            return False
        inlet = self._open_inlet(found[0])
        try:
            full = inlet.info(timeout=self.timeout)
            inlet.open_stream(timeout=self.timeout)
        except (pylsl.util.TimeoutError, pylsl.util.LostError) as err:
            logger.info("LSL stream %s came back but did not answer (%s); waiting",
                        self.info.name, err)
            _close_quietly(inlet)
            return False
        self._resolver = None
        self.n_reconnects += 1
        info, scale = _info_from_lsl(full, found[0].nominal_srate())
        change = _layout_change(self.info, self._format, info, full.channel_format())
        if not change:
            if info.source_id != self.info.source_id:
                logger.info("LSL stream %s came back with source id %r (was %r)",
                            self.info.name, info.source_id, self.info.source_id)
                if self._by_name:
                    self._matched = (f"matched by name, type, host and layout (source id "
                                     f"{info.source_id or '-'}, was {self.info.source_id})")
                    logger.warning("LSL stream %s: the source id did not come back; %s",
                                   self.info.name, self._matched)
                self.info = info
            self._inlet = inlet
            self._reconnected = True
            logger.info("LSL stream %s: found again, reconnecting", self.info.name)
            return True
        self._pending_layout = (info, scale, inlet, full.channel_format(), _unitless(full))
        description = (f"LSL stream {self.info.name} came back with another layout: {change}; "
                       "its samples cannot continue the same recording")
        logger.warning("%s", description)
        self._push_event(SourceEvent(
            "layout", self._last_stamp or 0.0, description,
            extra={"change": change, "n_channels": info.n_channels, "sfreq": info.sfreq,
                   "ch_names": list(info.ch_names)}))
        return False

    def _auto_candidates(self, found: list) -> list:
        """Of the same-name streams ``found``, those on the lost stream's host with its layout
        (channels, rate, sample format): ``"auto"`` takes only such a stream by name. The lost
        source id itself is first, should it come back too."""
        host = self._resolved["hostname"]
        same = [info for info in found
                if info.hostname() == host and info.channel_count() == self.info.n_channels
                and info.nominal_srate() == self.info.sfreq
                and info.channel_format() == self._format]
        return sorted(same, key=lambda info: info.source_id() != self.info.source_id)

    @property
    def layout_pending(self) -> StreamInfo | None:
        """The new layout of a stream that came back changed (None when there is none)."""
        return self._pending_layout[0] if self._pending_layout is not None else None

    def accept_layout(self) -> StreamInfo:
        """Read the stream that came back with another layout from now on; returns its new
        ``info``. Whoever reads the source rebuilds what depends on the channel count first."""
        if self._pending_layout is None:
            raise SourceError(f"LSL stream {self.info.name!r}: no layout change to accept")
        info, scale, inlet, channel_format, unitless = self._pending_layout
        self._pending_layout = None
        self._use_inlet(inlet, info, scale, channel_format, unitless)
        self._silent = self._reconnected = False
        self._last_stamp = None
        logger.info("LSL stream %s: reading the new layout (%d ch @ %g Hz)", info.name,
                    info.n_channels, info.sfreq)
        return info
