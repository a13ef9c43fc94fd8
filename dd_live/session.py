"""LiveSession: source -> acquisition -> windows -> model -> sampler -> results, on threads.

The wiring of ``docs/architecture.md``::

    Source --AcquisitionThread--> RingBuffer (raw, filtered)
                                     | dispatch thread, every ~10 ms and when an image is done:
                                     |   the trigger (dd_live.triggers: latest, interval, marker,
                                     |   recorded) -> quality -> preprocess
                                     |   raw samples and events -> SessionRecorder
                                     v
                    GenerationWorker (latest-wins queue of one) -> EEGDecoder -> GeneratedImage

The default trigger, ``latest``, hands the generator the newest complete window whenever it is
free (nothing waits, nothing is dropped). A replay that may outrun the generator (full speed,
or the ``recorded`` windows of a session folder) is held by back-pressure
(``ReplaySource.hold_at``) at the sample that completes the next window.

No Qt here: the window (``dd_live.gui``) observes a session through :class:`SessionCallbacks`
and reads the ring buffers; the same session runs headless from the command line. Every
threaded part also runs synchronously: ``LiveSession(..., threaded=False)`` and ``step()``.

Shutdown is ordered: stop triggers, drain the generator, stop acquisition, hand the last
samples to the recorder, close the recorder.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dd_live.config import AppConfig, FilterConfig
from dd_live.errors import ConfigError, DDLiveError
from dd_live.sources import Source, open_source
from dd_live.stimuli import StimulusImages
from dd_live.stream import (
    AcquisitionThread,
    BadChannelTracker,
    BufferRangeError,
    MainsFilter,
    QualityChecker,
    RingBuffer,
    StreamEvent,
    StreamingFilter,
    Window,
    WindowPreprocessor,
    design_filter,
)
from dd_live.triggers import Trigger, make_trigger
from dd_live.worker import GenerationWorker

logger = logging.getLogger(__name__)

DISPATCH_PERIOD = 0.01  # s between two polls of the ring buffer (sooner when an image is done)
RATE_MARKS = 8  # stats() calls over which the arrival rate is measured (~2-8 s at 1-4 Hz)
NYQUIST_MARGIN = 0.9  # h_freq is lowered to this fraction of Nyquist when the board is too slow


@dataclass(frozen=True)
class GeneratedImage:
    """One result: images from one window.

    Attributes:
        index: running number of the result in this session (0, 1, ...).
        images: PIL images.
        window_start, window_stop: absolute sample range ``[start, stop)`` of the window.
        t_first, t_last: timestamps (source clock, s) of the window's first and last sample.
        trigger: ``"interval"`` or the marker text.
        seed: sampler seed (``None`` in retrieval mode).
        timings: seconds per stage (``preprocess``: channel map, resampling, standardising;
            ``encode``: EEG encoder and conditioning; ``sample``: the denoising steps;
            ``decode``: VAE; ``total``: encode to image) and ``latency``: from the window being
            complete to the image being ready, waiting for the generator included. (Online
            filtering happens per chunk as samples arrive, ~30 µs each: see
            benchmarks/streaming.py.)
        matches: retrieval mode: ``(path, score)`` per image.
        stimulus: the image the window's marker names (``[window] marker_images``), the ground
            truth to show beside the generated one; None when there is none.
        lowlevel: the embedding route's decoded low-level picture (PIL RGB), or None.
        renderer: what made ``images`` (``DecodedImages.renderer``: ``"ip-adapter"``,
            ``"retrieval"``, ``"lowlevel"``, ``"sd"``, ``"tiny"``).
    """

    index: int
    images: list[Any]
    window_start: int
    window_stop: int
    t_first: float
    t_last: float
    trigger: str
    seed: int | None
    timings: dict[str, float]
    matches: list[tuple[str, float]] = field(default_factory=list)
    stimulus: str | None = None
    lowlevel: Any = None
    renderer: str = ""


@dataclass(frozen=True)
class SessionStats:
    """What the status bar shows."""

    state: str
    n_samples: int
    sfreq_measured: float
    buffer_fill: float
    n_windows: int
    n_rejected: int
    n_dropped: int
    n_images: int
    n_failed: int
    last_timings: dict[str, float]


@dataclass
class SessionCallbacks:
    """Observers of a session. Each list holds callables; they run on the session's threads,
    so a GUI must hand them over to its own thread (Qt signals do that).

    ``samples(first_index, n)``: new samples are in the ring buffers (read them there);
    ``image(GeneratedImage)``; ``window_rejected(window, reasons)``; ``window_dropped(window)``;
    ``event(StreamEvent)`` (markers, gaps, stalls...); ``state(part, state, message)``;
    ``error(part, exception)``.
    """

    samples: list[Callable[[int, int], Any]] = field(default_factory=list)
    image: list[Callable[[GeneratedImage], Any]] = field(default_factory=list)
    window_rejected: list[Callable[[Window, tuple[str, ...]], Any]] = field(default_factory=list)
    window_dropped: list[Callable[[Window], Any]] = field(default_factory=list)
    event: list[Callable[[StreamEvent], Any]] = field(default_factory=list)
    state: list[Callable[[str, str, str], Any]] = field(default_factory=list)
    error: list[Callable[[str, BaseException], Any]] = field(default_factory=list)

    def emit(self, name: str, *args: Any) -> None:
        for callback in list(getattr(self, name)):
            try:
                callback(*args)
            except Exception:
                logger.exception("a %r callback failed", name)


@dataclass
class _Job:
    window: Window
    eeg: np.ndarray  # [n_channels, n_times] float32, the model's montage
    seed: int
    t_ready: float  # time.monotonic() when the window was complete
    t_preprocess: float  # s to map, resample and standardise the window
    segment: int = 1  # the stream layout (recording segment) the window came from
    decoded: Any = None  # what the decoder returned (its vector goes to the LSL output)


class LiveSession:
    """One live run. ``start()``, ``stop()``, or ``with LiveSession(config) as s: ...``.

    Args:
        config: all settings.
        source: a started-or-not :class:`~dd_live.sources.Source`; default from ``config.source``.
        decoder: an :class:`~dd_live.decoding.EEGDecoder` (or any callable
            ``(eeg[n_channels, n_times], seed) -> DecodedImages`` with ``n_channels``/``n_times``);
            default built from ``config.generator``. ``None`` with ``generate=False`` runs
            acquisition (and recording) only.
        generate: set False for acquisition only (``dd-live record``).
        threaded: False runs nothing in the background; drive it with :meth:`step`.
    """

    def __init__(self, config: AppConfig | None = None, *, source: Source | None = None,
                 decoder: Any = None, generate: bool = True, threaded: bool = True) -> None:
        self.config = config or AppConfig()
        self.callbacks = SessionCallbacks()
        self.threaded = threaded
        self._source = source
        self.decoder = decoder
        self._generate = generate
        self.state = "idle"
        self.recorder: Any = None
        self.raw: RingBuffer | None = None
        self.filtered: RingBuffer | None = None
        self.acquisition: AcquisitionThread | None = None
        self.worker: GenerationWorker[_Job, GeneratedImage] | None = None
        self._events: deque[StreamEvent] = deque()
        self._dispatch_thread: threading.Thread | None = None
        self._dispatch_stop = threading.Event()
        self._dispatch_wake = threading.Event()  # set when the generator becomes free
        self._lock = threading.Lock()
        self.trigger: Trigger | None = None
        self._waiting: deque[Window] = deque()  # cut, waiting for the generator to be free
        self._backpressure = False  # the source waits for the generator (replays)
        self._recorded_until = 0
        self.recording_error: str | None = None  # why the recording stopped by itself
        self._segment = 1  # a stream that comes back with another layout starts segment 2...
        self.closed_segments: list[tuple[Path, int]] = []  # (folder, n_samples) of recording
        # segments closed when the stream changed layout (the current one is ``recorder``)
        self._announced_until = 0
        self._triggers_on = True
        self.n_windows = 0
        self.n_rejected = 0
        self.n_images = 0
        self.images_by_renderer: dict[str, int] = {}  # images made per renderer (a summary)
        # the channel stage (issue 10): see bad_channels, channel_map, mains_freq
        self.preprocessor: WindowPreprocessor | None = None
        self.bad_tracker: BadChannelTracker | None = None
        self.mains: MainsFilter | None = None
        self.channel_map: list[tuple[str, str, str]] = []
        self._judged_rows: list[int] = []
        self._replaced: tuple[int, ...] = ()  # indices into _judged_rows, the last window's
        self._last_timings: dict[str, float] = {}
        self._t_start = 0.0
        self._rate_marks: deque[tuple[float, int]] = deque(maxlen=RATE_MARKS)
        self.stimuli: StimulusImages | None = None  # marker -> the image it names
        self._degraded: list[StreamEvent] = []  # why no filter / no images, to announce
        self.outlets: Any = None  # [output] lsl: the LSL streams of what is decoded

    def __repr__(self) -> str:
        src = self._source.info.name if self._source is not None and hasattr(
            self._source, "info") else self.config.source.spec
        return f"<LiveSession: {self.state} | {src} | images {self.n_images}>"

    def __enter__(self) -> LiveSession:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- start -----------------------------------------------------------------------------
    @property
    def source(self) -> Source:
        if self._source is None:
            raise DDLiveError("the session has no source yet: call start() first")
        return self._source

    @property
    def info(self):
        return self.source.info

    def start(self) -> LiveSession:
        """Open the source, build the stream core, the model and the recorder; start threads."""
        if self.state in ("running", "starting"):
            return self
        self._set_state("starting", "opening the source")
        cfg = self.config
        try:
            # 1. the source (opened, not started: samples flow only once everything is ready)
            if self._source is None:
                self._source = open_source(cfg.source.spec, **_source_options(cfg.source))
            info = self._source.info
            # 2. the model and the sampler (slow to load: before the first sample arrives)
            if self._generate and self.decoder is None:
                from dd_live.decoding import EEGDecoder

                self._set_state("starting", f"loading model {cfg.generator.model!r}")
                self.decoder = EEGDecoder.from_config(cfg.generator)
                self.decoder.warmup(
                    progress=lambda message: self._set_state("starting", message))
            if self._generate and (why := _model_impossible(info.sfreq, cfg.window.length,
                                                             self.decoder.n_times)):
                self._degrade("images", f"no images: {why}")  # shown and recorded raw
                self._generate = False
            if self._generate:
                if cfg.window.marker_images:
                    self.stimuli = StimulusImages(cfg.window.marker_images)
                self.preprocessor = self._make_preprocessor(info)
                self.worker = GenerationWorker(
                    self._decode, on_result=self._on_result, on_error=self._on_decode_error,
                    on_drop=lambda job: self._on_drop(job.window), on_take=self._rearm_decoder)
            self._build_core(info)
            if cfg.output.lsl:  # <name>-decoded and <name>-images (dd_live.outlets)
                self._open_outlets()
            # 5. the recorder
            if cfg.record.enabled:
                from dd_live.recording import SessionRecorder

                self.recorder = SessionRecorder.create(cfg.record.root, cfg.record.name, info, cfg,
                                                       on_failure=self._on_recorder_failure)
                self.recorder.start(threaded=self.threaded)
            self._emit_degraded()
            self._source.start()
        except BaseException:
            self._set_state("error", "could not start")
            self._close_after_failed_start()
            raise
        # 6. threads
        self._t_start = time.monotonic()
        self._rate_marks.append((self._t_start, 0))
        if self.threaded:
            self.acquisition.start()
            if self.worker is not None:
                self.worker.start()
            self._dispatch_stop.clear()
            self._dispatch_thread = threading.Thread(
                target=self._dispatch_loop, name="dd-live-dispatch", daemon=True)
            self._dispatch_thread.start()
        self._set_state("running", repr(self._source))
        return self

    def _build_core(self, info) -> None:
        """Ring buffers, filter, acquisition, trigger and quality check for the stream's layout
        ``info`` (at start, and again when the stream comes back with another layout)."""
        cfg = self.config
        # 3. ring buffers and the online filter
        capacity = int(round(cfg.buffer.seconds * info.sfreq))
        self.raw = RingBuffer(info.n_channels, capacity)
        self.filtered = RingBuffer(info.n_channels, capacity)
        try:  # a rate the band-pass cannot have: the stream is shown (and recorded) raw
            why = _filter_impossible(cfg.filter, info.sfreq)
            filt = None if why else make_filter(
                cfg.filter, info.sfreq, info.n_channels,
                rows=[k for k, kind in enumerate(info.ch_types) if kind == "eeg"])
        except ConfigError as exc:
            why, filt = str(exc), None
        if why:
            self._degrade("filter", f"no online filter: {why}; the stream is shown raw")
        self.mains = filt if isinstance(filt, MainsFilter) else None
        if filt is None:  # [filter] off (or nothing to filter): windows come from the raw samples
            self.filtered = self.raw
        self.acquisition = AcquisitionThread(
            self._source, self.raw, self.filtered if filt is not None else None, filt,
            stall_timeout=cfg.buffer.stall_timeout,
            on_state=self._on_acquisition_state,
            on_events=self._on_events,
            on_error=lambda exc: self.callbacks.emit("error", "acquisition", exc),
        )
        # 4. the trigger policy (dd_live.triggers), back-pressure, quality check
        self._backpressure = self._generate and hasattr(self._source, "hold_at") and (
            cfg.window.mode == "recorded"
            or math.isinf(float(getattr(self._source, "speed", 1.0))))
        if self._generate:
            window = cfg.window
            if self._backpressure and window.mode == "latest":
                # a full-speed replay waits for the generator: nothing is "newest" there, so
                # its windows come every hop (as interval windows, anchored at the start)
                window = dataclasses.replace(window, min_hop=max(window.min_hop, window.hop))
            self.trigger = make_trigger(window, info.sfreq, self._source)
        if self._backpressure:
            self._source.hold_at(self.trigger.next_stop())
        # only EEG channels are judged (a counter, trigger or misc channel is not EEG), and
        # of those only the ones the model reads after mapping
        self._eeg_rows = [k for k, kind in enumerate(info.ch_types) if kind == "eeg"]
        self._judged_rows = (self.preprocessor.used_rows.tolist()
                             if self.preprocessor is not None else self._eeg_rows)
        judged_names = [info.ch_names[k] for k in self._judged_rows]
        self.quality = None if cfg.quality.mode == "off" else QualityChecker(
            info.sfreq, mode=cfg.quality.mode, max_ptp=cfg.quality.max_ptp,
            z_threshold=cfg.quality.z_threshold, ch_names=judged_names)
        self.bad_tracker = None if cfg.channels.bad == "off" or self.preprocessor is None \
            else BadChannelTracker(info.sfreq, judged_names, max_bad=cfg.channels.max_bad,
                                   bad_seconds=cfg.channels.bad_seconds)

    def _make_preprocessor(self, info) -> WindowPreprocessor:
        """Pick, repair and map the channels for the model; the mapping is logged and kept in
        :attr:`channel_map`."""
        ch = self.config.channels
        names = list(ch.model_names) or getattr(self.decoder, "ch_names", None) or None
        if names is not None and len(names) != self.decoder.n_channels:
            raise ConfigError(
                f"[channels] model_names lists {len(names)} names but the model reads "
                f"{self.decoder.n_channels} channels: give one name per model channel")
        prep = WindowPreprocessor(
            info, n_channels=self.decoder.n_channels, n_times=self.decoder.n_times,
            target_names=names, channel_method=self.config.generator.channel_method,
            exclude=ch.exclude, include=ch.include, repair=ch.bad == "auto")
        self.channel_map = prep.describe()
        logger.info("channel map (%s, %s): %s", "by name" if names else "by count",
                    prep.mapper.method, prep.mapper.describe_text())
        if prep.repair is not None:
            logger.info("bad channels will be replaced by %s interpolation",
                        prep.repair.method if prep.repair.method == "spline"
                        else "mean-of-the-good-channels (no standard positions for the names)")
        return prep

    def _close_after_failed_start(self) -> None:
        if self.recorder is not None:
            self.recorder.close()
        if self._source is not None:
            try:
                self._source.stop()
            except Exception:
                logger.exception("could not stop the source after a failed start")

    # -- the synchronous tick ----------------------------------------------------------------
    def step(self) -> int:
        """One tick on the caller's thread: acquire, cut windows, feed the recorder, and (when
        not threaded) run the pending generation. Returns the number of samples acquired."""
        if self.acquisition is None:
            raise DDLiveError("the session is not started: call start() first")
        n = 0
        if not self.threaded:
            n = self.acquisition.step()
        self._dispatch()
        if not self.threaded:
            if self.worker is not None:
                self.worker.step()
            if self.recorder is not None:
                self.recorder.step()
        return n

    def _dispatch_loop(self) -> None:
        while not self._dispatch_stop.is_set():
            self._dispatch_wake.wait(DISPATCH_PERIOD)
            self._dispatch_wake.clear()
            if self._dispatch_stop.is_set():
                break
            try:
                self._dispatch()
            except Exception as exc:  # never die silently
                logger.exception("the dispatch thread failed; it goes on")
                self.callbacks.emit("error", "dispatch", exc)

    def _dispatch(self) -> None:
        with self._lock:
            self._feed_recorder()
            n_written = self.raw.n_written if self.raw is not None else 0
            if n_written > self._announced_until:
                self.callbacks.emit("samples", self._announced_until,
                                    n_written - self._announced_until)
                self._announced_until = n_written
            if self.mains is not None:
                self._announce_mains()
            layout = None
            while self._events:
                event = self._events.popleft()
                if event.kind == "marker" and self.trigger is not None:
                    self.trigger.add_marker(event.sample_index, event.description)
                elif event.kind == "layout":
                    layout = event
            if layout is not None:
                self._change_layout(layout)
                return
            if self.worker is None or self.trigger is None or not self._triggers_on:
                return
            self._trigger_windows(self.trigger)

    def _change_layout(self, event: StreamEvent) -> None:
        """The stream came back with other channels, rate or format (under the lock): the old
        layout's samples are recorded and its segment closed; then either a new stream core and
        a new recording segment for the new layout, or the session ends (by setting). Samples
        of two layouts never meet in one buffer or file."""
        if self.state != "running" or not hasattr(self._source, "accept_layout"):
            return
        change = event.extra.get("change", event.description)
        self.acquisition.stop(stop_source=False)
        self._feed_recorder()  # the old layout's last samples
        old_recorder = self.recorder
        if old_recorder is not None:
            old_recorder.add_event({"type": "segment_end", "sample": self.raw.n_written,
                                    "description": f"the stream changed: {change}"})
        if self.config.source.on_layout_change == "stop":
            self._triggers_on = False
            self._set_state("ended", f"the stream changed ({change}); stopped, as "
                            "[source] on_layout_change = \"stop\"")
            return
        info = self._source.accept_layout()
        try:
            if self._generate:
                validate_model_fits(info.sfreq, self.config.window.length, self.decoder.n_times)
                self.preprocessor = self._make_preprocessor(info)
            self._build_core(info)
        except DDLiveError as exc:  # e.g. the new layout has no EEG for the model
            self._triggers_on = False
            self._set_state("ended", f"the stream changed ({change}) and cannot go on: {exc}")
            return
        self._recorded_until = self._announced_until = 0
        self._rate_marks.clear()  # the new buffers count from 0
        self._rate_marks.append((time.monotonic(), 0))
        self._segment += 1
        if old_recorder is not None:
            from dd_live.recording import RecordingError, SessionRecorder

            old_recorder.close()
            self.closed_segments.append((old_recorder.folder, old_recorder.n_samples))
            rec = self.config.record
            self.recorder = None
            try:
                self.recorder = SessionRecorder.create(
                    old_recorder.folder.parent, f"{rec.name}-segment{self._segment}", info,
                    self.config, on_failure=self._on_recorder_failure)
            except RecordingError as exc:  # the live session goes on without recording
                logger.error("%s", exc)
                self._on_recorder_failure(str(exc))
            else:
                self.recorder.start(threaded=self.threaded)
                self.recorder.add_event({"type": "segment_start", "sample": 0,
                                         "description": f"the stream changed: {change}",
                                         "previous": str(old_recorder.folder)})
        self._emit_degraded()
        if self.threaded:
            self.acquisition.start()
        where = f"; recording goes on in {self.recorder.folder}" if self.recorder else ""
        self._set_state("running", f"the stream changed ({change}): new segment{where}")

    def _trigger_windows(self, trigger: Trigger) -> None:
        """Hand the trigger's windows to the generator (under the lock).

        ``latest`` and ``recorded`` (and every policy while the source waits for the generator)
        hand over one window whenever the generator is free; ``interval`` and ``marker`` live
        submit each window at once (the worker keeps the newest and drops the older)."""
        if not (trigger.waits_for_generator or self._backpressure):
            for window in trigger.poll(self.filtered):
                self._on_window(window)
            return
        if trigger.fixed_windows:  # copied out now, so the ring buffer may move on
            self._waiting.extend(trigger.poll(self.filtered))
        while self._waiting and not self.worker.busy:
            self._on_window(self._waiting.popleft())
        if not trigger.fixed_windows and not self.worker.busy:
            for window in trigger.poll(self.filtered):
                self._on_window(window)
        if self._backpressure:  # the replay goes on up to the sample completing the next window
            self._source.hold_at(self.raw.n_written if self._waiting else trigger.next_stop())

    def _on_recorder_failure(self, message: str) -> None:
        """The recorder's first write error (its thread): recording has stopped, live goes on."""
        from dd_live.recording import RecordingError

        self.recording_error = message
        self.callbacks.emit("state", "recorder", "failed", message)
        self.callbacks.emit("error", "recorder", RecordingError(message))

    def _feed_recorder(self) -> None:
        if self.recorder is None or self.raw is None:
            return
        if self.recorder.failed:  # stopped by a write error: the live session goes on without
            recorder, self.recorder = self.recorder, None
            recorder.close()
            return
        if self.raw.n_written > self._recorded_until:
            data, timestamps, first = self.raw.since(self._recorded_until)
            if first > self._recorded_until:
                lost = first - self._recorded_until
                logger.error("recorder fell behind: %d samples were overwritten before they "
                             "could be written", lost)
                self.recorder.add_event({"type": "recorder_overrun", "n_samples": lost})
            self.recorder.add_samples(data, timestamps)
            self._recorded_until = first + data.shape[1]

    def _on_window(self, window: Window) -> None:
        self.n_windows += 1
        data = window.data[self._judged_rows]
        replace: tuple[int, ...] = ()
        reasons: tuple[str, ...] = ()
        if self.bad_tracker is not None:
            raw = None
            if self.raw is not self.filtered:  # flat/railed is judged on the samples as received
                try:
                    raw = self.raw.get(window.start, window.stop)[0][self._judged_rows]
                except BufferRangeError:  # a window older than the buffer (a slow replay)
                    raw = None
            verdict = self.bad_tracker.update(data, window.stop, raw)
            self._announce_bad_channels(verdict, window)
            replace = verdict.replace
            if verdict.too_many:
                reasons = (verdict.too_many,)
        if not reasons and self.quality is not None:
            result = self.quality.check(data, skip=replace)
            reasons = result.reasons
        if not reasons:  # NaN/Inf never reaches the model, whatever the quality mode
            n_bad = self.preprocessor.nonfinite_samples(window, replace)
            if n_bad:
                reasons = (f"{n_bad} NaN/Inf samples (non-finite samples from the source: the "
                           "window overlaps them)",)
        self._replaced = replace
        if reasons:
            self.n_rejected += 1
            self._record_event({"type": "window_rejected", "start": window.start,
                                "stop": window.stop, "reasons": list(reasons)})
            self.callbacks.emit("window_rejected", window, tuple(reasons))
            return
        t0 = time.perf_counter()
        eeg = self.preprocessor(window, bad=replace)
        t_preprocess = time.perf_counter() - t0
        self.worker.submit(_Job(window, eeg, self.seed_for(window), time.monotonic(),
                                t_preprocess, self._segment))

    def _announce_bad_channels(self, verdict, window: Window) -> None:
        """Events for channels newly marked bad or good again (dispatch thread)."""
        events = []
        names = self.bad_tracker.ch_names
        timestamp = float(window.timestamps[-1])
        method = self.preprocessor.repair.method if self.preprocessor.repair else "mean"
        for ch, reason in verdict.newly_bad:
            logger.warning("channel %s marked bad: %s; %s-interpolated for the model",
                           names[ch], reason, method)
            events.append(StreamEvent(
                "bad_channel", window.stop - 1, timestamp,
                f"channel {names[ch]} marked bad: {reason}; replaced for the model "
                f"({method} interpolation)", extra={"channel": names[ch], "reason": reason}))
        for ch in verdict.newly_good:
            logger.info("channel %s is good again", names[ch])
            events.append(StreamEvent(
                "channel_ok", window.stop - 1, timestamp, f"channel {names[ch]} is good again",
                extra={"channel": names[ch]}))
        if events:
            self._on_events(events)

    def _announce_mains(self) -> None:
        """An event for each mains choice the filter made (dispatch thread)."""
        changes = self.mains.pop_changes()
        if changes:
            timestamp = self.acquisition.last_timestamp or 0.0
            self._on_events([StreamEvent(
                "mains", change.sample_index, timestamp, change.message,
                extra={"freq": change.freq, "ratios": {f"{f:g}": round(r, 2)
                                                       for f, r in change.ratios.items()}})
                for change in changes])

    # -- the channel stage, for the window ------------------------------------------------------
    @property
    def bad_channels(self) -> tuple[str, ...]:
        """Names of the input channels marked bad now (replaced for the model)."""
        if self.bad_tracker is None:
            return ()
        return tuple(self.bad_tracker.ch_names[ch] for ch in self.bad_tracker.marked)

    @property
    def replaced_channels(self) -> tuple[str, ...]:
        """Names of the input channels replaced in the last window sent to the model (marked
        bad, or broken in that window)."""
        if self.bad_tracker is None:
            return ()
        return tuple(self.bad_tracker.ch_names[ch] for ch in self._replaced)

    @property
    def channel_map_text(self) -> str:
        """The channel map in one line (which input feeds which model channel, which are
        copied or interpolated, which inputs are unused); empty without a model."""
        return self.preprocessor.mapper.describe_text() if self.preprocessor is not None else ""

    @property
    def judged_channels(self) -> tuple[str, ...]:
        """Names of the input channels the model reads (after mapping); only these are judged."""
        if self._source is None:
            return ()
        return tuple(self.info.ch_names[k] for k in self._judged_rows)

    def set_channel_bad(self, name: str, bad: bool) -> None:
        """Mark an input channel bad by hand (the window's per-channel toggle), or unmark it.

        Raises:
            ConfigError: the channel is not one the model reads, or bad channels are off.
        """
        if self.bad_tracker is None:
            raise ConfigError("bad channels are off ([channels] bad = \"off\") or no model "
                              "runs: nothing to replace")
        names = [n.lower() for n in self.bad_tracker.ch_names]
        if name.lower() not in names:
            raise ConfigError(f"channel {name!r} is not one the model reads "
                              f"({', '.join(self.bad_tracker.ch_names)})")
        forced = set(self.bad_tracker.forced)
        index = names.index(name.lower())
        forced = forced | {index} if bad else forced - {index}
        self.bad_tracker.set_forced(sorted(forced))

    @property
    def mains_freq(self) -> float | str | None:
        """The notched mains frequency: ``"measuring"`` until the automatic notch decided, a
        frequency in Hz, or None (no notch)."""
        if self.mains is not None:
            return self.mains.freq if self.mains.decided else "measuring"
        notch = self.config.filter.notch
        return None if notch == "off" or not self.config.filter.enabled else notch

    def seed_for(self, window: Window) -> int:
        """The sampler seed of a window: the recorded one (a replayed window), else ``[generator]
        seed`` (``fixed_seed``: the same seed for every window, so the picture changes only when
        the EEG does), else ``seed`` + the window's first sample index."""
        if window.seed is not None:
            return int(window.seed)
        seed = self.config.generator.seed
        return seed if self.config.generator.fixed_seed else seed + window.start

    def _on_drop(self, window: Window) -> None:
        self._record_event({"type": "window_dropped", "start": window.start, "stop": window.stop})
        self.callbacks.emit("window_dropped", window)

    # -- generation (worker thread) -----------------------------------------------------------
    def _rearm_decoder(self, job: _Job) -> None:
        if hasattr(self.decoder, "clear_interrupt"):
            self.decoder.clear_interrupt()  # a new window: a stop/pause before it is over

    def _interrupt_decoder(self) -> None:
        if self.decoder is not None and hasattr(self.decoder, "interrupt"):
            self.decoder.interrupt()

    def _decode(self, job: _Job) -> GeneratedImage | None:
        decoded = job.decoded = self.decoder(job.eeg, job.seed)
        if getattr(decoded, "interrupted", False):
            return None  # stopped or paused mid-way: no image, nothing recorded as one
        timings = {"preprocess": job.t_preprocess, **decoded.timings}
        timings["latency"] = time.monotonic() - job.t_ready
        w = job.window
        index = self.n_images
        self.n_images += 1
        return GeneratedImage(
            index=index, images=decoded.images, window_start=w.start, window_stop=w.stop,
            t_first=float(w.timestamps[0]), t_last=float(w.timestamps[-1]), trigger=w.trigger,
            seed=job.seed if decoded.seeds else None, timings=timings,
            matches=list(decoded.matches), lowlevel=getattr(decoded, "lowlevel", None),
            renderer=getattr(decoded, "renderer", ""),
            stimulus=str(path) if self.stimuli is not None and (
                path := self.stimuli.path_for(w.description)) is not None else None)

    def _on_result(self, job: _Job, result: GeneratedImage | None) -> None:
        self._dispatch_wake.set()  # the generator is free: the next window goes now
        if result is None:
            self._record_event({"type": "generation_interrupted", "start": job.window.start,
                                "stop": job.window.stop})
            return
        self._last_timings = result.timings
        if result.renderer:
            self.images_by_renderer[result.renderer] = \
                self.images_by_renderer.get(result.renderer, 0) + 1
        recorder = self.recorder  # read once: another thread may stop recording meanwhile
        if recorder is not None and job.segment == self._segment:
            recorder.add_image(result)  # (a window of the previous layout: not this file's)
        if self.outlets is not None:
            self._publish(job, result, recorder if job.segment == self._segment else None)
        self.callbacks.emit("image", result)

    def _on_decode_error(self, job: _Job, exc: BaseException) -> None:
        self._dispatch_wake.set()
        self._record_event({"type": "generation_failed", "start": job.window.start,
                            "stop": job.window.stop, "error": f"{type(exc).__name__}: {exc}"})
        self.callbacks.emit("error", "generation", exc)

    # -- events and state ----------------------------------------------------------------------
    def _on_events(self, events: list[StreamEvent]) -> None:
        for event in events:
            self._events.append(event)
            self._record_event({"type": event.kind, "sample": event.sample_index,
                                "timestamp": event.timestamp, "description": event.description,
                                "duration": event.duration, **event.extra})
            self.callbacks.emit("event", event)

    def _open_outlets(self) -> None:
        from dd_live.outlets import open_outlets

        if not self._generate:
            logger.warning("[output] lsl: no model runs, so there is nothing to publish")
            return
        self.outlets = open_outlets(self)

    def _publish(self, job: _Job, result: GeneratedImage, recorder: Any) -> None:
        from dd_live.outlets import image_file

        try:
            self.outlets.publish(
                result, job.decoded, file=image_file(recorder, result), renderer=result.renderer,
                newest=self.acquisition.last_timestamp if self.acquisition is not None else None)
        except Exception as exc:  # the image still reaches the window and the recording
            logger.exception("publishing image %d on the LSL output failed", result.index)
            self.callbacks.emit("error", "output", exc)

    def _degrade(self, what: str, message: str) -> None:
        """The stream's rate rules out ``what`` ("filter" or "images"): one log line now, one
        ``degraded`` event once the recorder is there (:meth:`_emit_degraded`)."""
        logger.warning("%s", message)
        self._degraded.append(StreamEvent("degraded", 0, 0.0, message, extra={"what": what}))

    def _emit_degraded(self) -> None:
        events, self._degraded = self._degraded, []
        if events:
            self._on_events(events)

    def _on_acquisition_state(self, state: str, message: str) -> None:
        self.callbacks.emit("state", "acquisition", state, message)

    def _set_state(self, state: str, message: str = "") -> None:
        self.state = state
        logger.info("session %s%s", state, f": {message}" if message else "")
        self.callbacks.emit("state", "session", state, message)

    def _record_event(self, event: dict[str, Any]) -> None:
        recorder = self.recorder  # read once: another thread may stop recording meanwhile
        if recorder is not None:
            recorder.add_event(event)

    # -- control -------------------------------------------------------------------------------
    def pause_generation(self) -> None:
        """Stop cutting windows and interrupt the running sampler (the GUI's stop button)."""
        with self._lock:  # the dispatch thread cuts no window between this and cancel_pending()
            self._triggers_on = False
        if self.worker is not None:
            self.worker.cancel_pending()  # a window cut before the pause does not start after it
        self._interrupt_decoder()

    def resume_generation(self) -> None:
        with self._lock:
            if self.filtered is not None and self.trigger is not None:
                self.trigger.skip(self.filtered)  # skip what passed while paused
            self._triggers_on = True

    def stats(self) -> SessionStats:
        """Counters for a status bar. ``sfreq_measured`` is the arrival rate of samples over
        the last few calls (call it regularly, e.g. once a second)."""
        acq = self.acquisition
        n_samples = self.raw.n_written if self.raw is not None else 0
        rate = 0.0
        if self._rate_marks:
            now = time.monotonic()
            t_old, n_old = self._rate_marks[0]
            if now > t_old:
                rate = (n_samples - n_old) / (now - t_old)
            self._rate_marks.append((now, n_samples))
        return SessionStats(
            state=acq.state if acq is not None else self.state,
            n_samples=n_samples,
            sfreq_measured=rate,
            buffer_fill=self.raw.fill if self.raw is not None else 0.0,
            n_windows=self.n_windows,
            n_rejected=self.n_rejected,
            n_dropped=self.worker.n_dropped if self.worker is not None else 0,
            n_images=self.n_images,
            n_failed=self.worker.n_failed if self.worker is not None else 0,
            last_timings=dict(self._last_timings),
        )

    @property
    def finished(self) -> bool:
        """True once a finite source (a replay without loop) has delivered everything, the
        acquisition has written it, and every window the trigger cuts from it has been
        generated (a replay ends after its last image, not before)."""
        if self._source is None or not self._source.finished:
            return False
        if self.acquisition is not None and self.acquisition.state != "stopped":
            return False
        if self.worker is None or self.trigger is None or self.filtered is None:
            return True
        with self._lock:
            if self._waiting or self.worker.busy:
                return False
            next_stop = self.trigger.next_stop()
            return next_stop is None or next_stop > self.filtered.n_written

    def run_for(self, seconds: float) -> None:
        """Block for ``seconds`` (threaded), or step until that much signal arrived (not)."""
        if self.threaded:
            time.sleep(seconds)
            return
        target = self.raw.n_written + int(seconds * self.info.sfreq)
        while self.raw.n_written < target and not self.source.finished:
            self.step()
            if self._backpressure and not self._triggers_on and getattr(self.source, "held",
                                                                        False):
                break  # a replay held for a generator that is paused: nothing more comes

    def start_recording(self, root: str | Path | None = None, name: str | None = None) -> Path:
        """Record from now on into a new session folder (the window's record button)."""
        from dd_live.recording import SessionRecorder

        if self.raw is None:
            raise DDLiveError("start the session before recording")
        with self._lock:
            if self.recorder is not None:
                return self.recorder.folder
            rec = self.config.record
            self._recorded_until = self.raw.n_written
            self.recorder = SessionRecorder.create(root or rec.root, name or rec.name, self.info,
                                                   self.config, first_sample=self._recorded_until,
                                                   on_failure=self._on_recorder_failure)
            self.recording_error = None
            self.recorder.start(threaded=self.threaded)
        return self.recorder.folder

    def stop_recording(self) -> Path | None:
        """Close the session folder (everything received so far is in it); acquisition goes on."""
        with self._lock:
            recorder = self.recorder
            if recorder is None:
                return None
            self._feed_recorder()
            self.recorder = None
        recorder.close()
        return recorder.folder

    @property
    def recording_path(self) -> Path | None:
        recorder = self.recorder
        return recorder.folder if recorder is not None else None

    def stop(self) -> None:
        """Ordered shutdown: triggers, generator, acquisition, recorder. Safe to call twice."""
        if self.state in ("stopped", "idle"):
            return
        self._set_state("stopping")
        # 1. triggers
        self._dispatch_stop.set()
        if self._dispatch_thread is not None:
            self._dispatch_thread.join(5)
            self._dispatch_thread = None
        self._triggers_on = False
        # 2. the generator: a window still waiting is dropped, the image being made is
        #    interrupted before its next UNet step (not recorded), then the thread ends
        if self.worker is not None:
            self.worker.stop(drain=False, interrupt=self._interrupt_decoder)
        # 3. acquisition
        if self.acquisition is not None:
            self.acquisition.stop()
        try:
            if self._source is not None:  # (None: the source could not be opened at start)
                self._source.stop()
        except Exception as exc:
            logger.exception("stopping the source failed")
            self.callbacks.emit("error", "source", exc)
        # 4. the recorder gets the last samples, then closes
        if self.recorder is not None:
            with self._lock:
                self._feed_recorder()
            self.recorder.close()
        if self.outlets is not None:
            self.outlets.close()
        self._set_state("stopped")


def make_filter(f: FilterConfig, sfreq: float, n_channels: int, *,
                rows: list[int] | None = None) -> StreamingFilter | MainsFilter | None:
    """The online filter ``[filter]`` describes for a stream (None when it filters nothing).

    The live session and the training data (``training.data.calibration``) both build their
    filter here, so training and inference filter alike. ``notch = "auto"`` gives a
    :class:`~dd_live.stream.MainsFilter` that measures the mains hum on ``rows`` (the EEG
    channels; default all) and notches it.
    """
    if not f.enabled:
        return None
    nyquist = sfreq / 2
    h_freq = f.h_freq
    if h_freq is not None and h_freq >= nyquist:
        h_freq = round(NYQUIST_MARGIN * nyquist, 1)
        logger.warning("band-pass upper edge %.1f Hz is above Nyquist (%.1f Hz) of this "
                       "stream: using %.1f Hz", f.h_freq, nyquist, h_freq)
    if f.notch == "auto":
        band = design_filter(sfreq, l_freq=f.l_freq, h_freq=h_freq, order=f.order)
        return MainsFilter(band, n_channels, sfreq, rows=rows, harmonics=f.notch_harmonics)
    notch = f.notch if isinstance(f.notch, float) and f.notch < nyquist else None
    if isinstance(f.notch, float) and notch is None:
        logger.warning("notch %.1f Hz is above Nyquist (%.1f Hz) of this stream: no notch",
                       f.notch, nyquist)
    sos = design_filter(sfreq, l_freq=f.l_freq, h_freq=h_freq, notch=notch, order=f.order,
                        notch_harmonics=f.notch_harmonics)
    if sos is None:
        return None
    return StreamingFilter(sos, n_channels)


def _source_options(source) -> dict[str, Any]:
    """Settings of ``[source]`` that the spec string may also give (the spec wins)."""
    spec = source.spec.strip()
    if spec.lower().startswith(("lsl:", "lsl-type:", "lsl-id:")) and "reconnect=" not in spec:
        return {"reconnect": source.reconnect}
    return {}


def _filter_impossible(f: FilterConfig, sfreq: float) -> str:
    """Why ``[filter]`` cannot filter a stream at ``sfreq`` ("" when it can): the band-pass's
    lower edge at or above Nyquist (the upper edge is lowered to just under it)."""
    highest = NYQUIST_MARGIN * sfreq / 2  # the band-pass's upper edge at most
    if f.enabled and f.l_freq is not None and f.l_freq >= highest:
        return (f"[filter] l_freq = {f.l_freq:g} Hz is at or too near the Nyquist frequency "
                f"({sfreq / 2:g} Hz) of this {sfreq:g} Hz stream (below {highest:g} Hz it "
                "filters)")
    return ""


def _model_impossible(sfreq: float, window_length: float, n_times: int) -> str:
    """Why windows of a stream at ``sfreq`` cannot feed the model ("" when they can)."""
    try:
        validate_model_fits(sfreq, window_length, n_times)
    except ConfigError as exc:
        return str(exc)
    return ""


def validate_model_fits(info_sfreq: float, window_length: float, n_times: int) -> None:
    """Raise when a window holds fewer samples than the model's time axis needs to be sensible.

    Upsampling is allowed (the reference stretches 440 samples to 512); a window with fewer than
    a quarter of the model's samples is almost certainly a mistake.
    """
    n = int(round(info_sfreq * window_length))
    if n * 4 < n_times:
        raise ConfigError(
            f"a {window_length:g} s window at {info_sfreq:g} Hz holds {n} samples, but the model "
            f"reads {n_times}: lengthen [window] length or use a model made for this rate")
