"""SessionRecorder: a session folder that is valid at every moment.

``runs/<date>_<time>_<name>/``:

- ``eeg.vhdr`` / ``eeg.eeg`` / ``eeg.vmrk``: the raw EEG as received, BrainVision (MNE reads it
  with ``mne.io.read_raw_brainvision``). The binary data file is appended to, sample-frame by
  sample-frame, and BrainVision headers do not store a sample count, so the files are valid
  after a crash too: they hold everything written so far. Markers are appended to ``eeg.vmrk``
  and become MNE annotations.
- ``timestamps.f64``: one float64 per sample (source clock, s), appended the same way.
- ``events.jsonl``: markers, gaps, rejected and dropped windows, images with the sample range
  they came from and their stage timings.
- ``images/NNNN.png`` (and ``NNNN_1.png``... when a window made several; ``NNNN_lowlevel.png``,
  the embedding route's decoded low-level picture, named by the image event's ``lowlevel``;
  the event's ``renderer`` says what made the images); ``config.toml`` (the exact settings);
  ``session.json`` (the stream info).

Writing happens on the recorder's own thread, fed by a bounded queue; ``close()`` flushes.
``step()`` writes what is queued on the caller's thread (tests, ``threaded=False``).

A write error (disk full, file too large, permission, device gone) is one clear stop: the
first one ends the recording with a single message naming the file and the free space
(:attr:`SessionRecorder.failure`, ``on_failure``); what is on disk stays consistent (``eeg.eeg``
holds exactly as many sample frames as ``timestamps.f64``; images are written to a temporary
name and renamed, so there is never a half-written PNG) and later items are counted, not
written. Whoever feeds the recorder goes on without it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import json
import logging
import os
import queue
import re
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dd_live import __version__
from dd_live.config import AppConfig
from dd_live.errors import DDLiveError
from dd_live.sources.base import StreamInfo

logger = logging.getLogger(__name__)

EEG_BASENAME = "eeg"
TIMESTAMPS_FILE = "timestamps.f64"
EVENTS_FILE = "events.jsonl"
SESSION_FILE = "session.json"
CONFIG_FILE = "config.toml"
IMAGES_FOLDER = "images"
LOWLEVEL_SUFFIX = "_lowlevel"  # images/NNNN_lowlevel.png: the decoded low-level picture
QUEUE_SIZE = 4096
SAMPLE_KEYS = ("sample", "start", "stop")  # event fields holding sample indices
VOLT_UNITS = ("V",)
COMMA_ESCAPE = r"\1"  # how BrainVision writes a comma inside a field
# line breaks and other control characters cannot be written inside a BrainVision field (a
# newline would start a forged header line); they become spaces there (events.jsonl keeps
# the text as it was)
_BV_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MICRO = 1e6  # EEG is stored in µV (BrainVision's customary unit)
FLOAT32_BYTES = 4
FLOAT64_BYTES = 8


class RecordingError(DDLiveError):
    """The session folder could not be created or written."""


class SessionRecorder:
    """Writes one session folder (see the module docstring).

    Args:
        folder: the session folder (created).
        info: the stream being recorded.
        config: the session's settings, saved as ``config.toml``.
        first_sample: the session's absolute index of the first sample this folder gets
            (recording started mid-session); sample indices of events are stored relative to
            the file (``sample``, ``start``, ``stop``), so they index ``eeg.eeg`` directly.
        on_failure: called once, on the writer thread, with the one-line message of the
            first write error (the recording has stopped; see :attr:`failure`).

    Raises:
        RecordingError: the folder or its files could not be created (the message says which
            path and why).
    """

    def __init__(self, folder: str | Path, info: StreamInfo, config: AppConfig | None = None,
                 *, first_sample: int = 0, queue_size: int = QUEUE_SIZE,
                 on_failure: Callable[[str], Any] | None = None) -> None:
        self.folder = Path(folder)
        self.first_sample = first_sample
        self.info = info
        self.config = config or AppConfig()
        self.on_failure = on_failure
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.n_samples = 0
        self.n_images = 0
        self.n_markers = 0
        self.n_discarded = 0  # items that arrived after a write failure
        self.error: BaseException | None = None
        self.failure: str | None = None  # the one message of the first write error
        try:
            self._open_files()
        except OSError as exc:
            raise RecordingError(
                f"cannot create the session folder {self.folder}: "
                f"{exc.strerror or exc}{_free_space(self.folder)}; choose another folder "
                "(--out / --record / [record] root)") from exc

    def __repr__(self) -> str:
        state = "CLOSED" if self._closed else "OPEN"
        return f"<SessionRecorder: {state} | {self.folder} | {self.n_samples} samples>"

    @classmethod
    def create(cls, root: str | Path, name: str, info: StreamInfo,
               config: AppConfig | None = None, *, first_sample: int = 0,
               on_failure: Callable[[str], Any] | None = None) -> SessionRecorder:
        """A new folder ``<root>/<YYYY-MM-DD>_<HHMMSS>_<name>/`` (suffixed if it exists)."""
        stamp = dt.datetime.now().strftime("%Y-%m-%d_%H%M%S")
        folder = Path(root) / f"{stamp}_{name}"
        n = 1
        while folder.exists():
            n += 1
            folder = Path(root) / f"{stamp}_{name}-{n}"
        return cls(folder, info, config, first_sample=first_sample, on_failure=on_failure)

    @property
    def failed(self) -> bool:
        """True once a write error has stopped the recording."""
        return self.failure is not None

    # -- files --------------------------------------------------------------------------------
    def _open_files(self) -> None:
        import tomli_w

        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / IMAGES_FOLDER).mkdir(exist_ok=True)
        info = self.info
        self._scale = np.array([MICRO if u in VOLT_UNITS else 1.0 for u in info.units])
        (self.folder / f"{EEG_BASENAME}.vhdr").write_text(_vhdr(info), encoding="utf-8")
        self._vmrk = open(self.folder / f"{EEG_BASENAME}.vmrk", "w", encoding="utf-8")  # noqa: SIM115
        self._vmrk.write(_vmrk_header(dt.datetime.now()))
        self._vmrk.flush()
        # unbuffered: a failed write leaves nothing behind in a buffer to be flushed at close
        self._eeg = open(self.folder / f"{EEG_BASENAME}.eeg", "wb", buffering=0)  # noqa: SIM115
        self._ts = open(self.folder / TIMESTAMPS_FILE, "wb", buffering=0)  # noqa: SIM115
        self._events = open(self.folder / EVENTS_FILE, "w", encoding="utf-8")  # noqa: SIM115
        (self.folder / CONFIG_FILE).write_text(tomli_w.dumps(self.config.to_dict()),
                                               encoding="utf-8")
        session = {"dd_live_version": __version__, "info": asdict(info),
                   "first_sample": self.first_sample,
                   "created": dt.datetime.now().isoformat(timespec="seconds"),
                   "eeg_file": f"{EEG_BASENAME}.vhdr", "timestamps_file": TIMESTAMPS_FILE}
        (self.folder / SESSION_FILE).write_text(json.dumps(session, indent=2), encoding="utf-8")

    # -- feeding (any thread) ---------------------------------------------------------------------
    def add_samples(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        """Queue raw samples ``data[n_channels, n_times]`` (SI units) with ``timestamps[n_times]``.

        The arrays are queued as they are (the ring buffer hands out copies): the caller must not
        change them afterwards."""
        if data.shape[1]:
            self._put("samples", (data, timestamps))

    def add_event(self, event: dict[str, Any]) -> None:
        """Queue an event (a JSON-able dict with a ``type``); markers with a ``sample`` index
        also go into ``eeg.vmrk``."""
        self._put("event", dict(event))

    def add_image(self, result: Any) -> None:
        """Queue a :class:`~dd_live.session.GeneratedImage`."""
        self._put("image", result)

    def _put(self, kind: str, item: Any) -> None:
        if self.failure is not None:
            self.n_discarded += 1
            return
        if self._closed:
            logger.warning("recorder is closed: a %s arrived after close and was not written", kind)
            return
        # blocks the feeding thread (never the acquisition thread) if the disk cannot keep up
        self._queue.put((kind, item))

    # -- writing ------------------------------------------------------------------------------------
    def start(self, threaded: bool = True) -> SessionRecorder:
        if threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="dd-live-recorder",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            kind, item = self._queue.get()
            if kind == "close":
                break
            self._write_one(kind, item)

    def step(self) -> int:
        """Write everything queued now, on the caller's thread. Returns the number of items."""
        n = 0
        while True:
            try:
                kind, item = self._queue.get_nowait()
            except queue.Empty:
                return n
            if kind == "close":
                return n
            self._write_one(kind, item)
            n += 1

    def _write_one(self, kind: str, item: Any) -> None:
        if self.failure is not None:
            self.n_discarded += 1
            return
        try:
            if kind == "samples":
                self._write_samples(*item)
            elif kind == "event":
                self._write_event(item)
            elif kind == "image":
                self._write_image(item)
        except OSError as exc:  # the disk: one clear stop
            self._fail(exc)
        except Exception as exc:  # never die silently; keep writing what can be written
            self.error = exc
            logger.exception("the recorder could not write a %s", kind)

    def _fail(self, exc: OSError) -> None:
        """Stop recording after the first write error, with one message; keep files consistent."""
        self.error = exc
        path = Path(exc.filename) if exc.filename else self.folder
        why = exc.strerror or str(exc) or type(exc).__name__
        self.failure = (f"recording stopped: writing {path} failed ({why}){_free_space(path)}; "
                        f"{self.n_samples} samples and {self.n_images} images are saved in "
                        f"{self.folder}")
        logger.error("%s", self.failure)
        self._truncate_to_samples()
        if self.on_failure is not None:
            try:
                self.on_failure(self.failure)
            except Exception:
                logger.exception("the recorder's on_failure callback raised; ignored")

    def _truncate_to_samples(self) -> None:
        """Cut ``eeg.eeg`` and ``timestamps.f64`` back to the last whole chunk written to both."""
        sizes = ((self._eeg, self.n_samples * self.info.n_channels * FLOAT32_BYTES),
                 (self._ts, self.n_samples * FLOAT64_BYTES))
        for f, size in sizes:
            try:
                os.ftruncate(f.fileno(), size)
                f.seek(size)
            except (OSError, ValueError) as exc:
                logger.warning("could not cut %s back to %d bytes: %s", f.name, size, exc)

    def _write_samples(self, data: np.ndarray, timestamps: np.ndarray) -> None:
        frames = (data * self._scale[:, None]).T.astype("<f4")  # [n_times, n_channels]
        _write_all(self._eeg, frames.tobytes())
        _write_all(self._ts, np.asarray(timestamps, dtype="<f8").tobytes())
        self.n_samples += data.shape[1]

    def _write_event(self, event: dict[str, Any]) -> None:
        if self.first_sample:
            for key in SAMPLE_KEYS:
                if isinstance(event.get(key), int):
                    event[key] -= self.first_sample
        try:
            self._events.write(json.dumps(event, default=_json_default) + "\n")
            self._events.flush()
        except OSError as exc:
            exc.filename = exc.filename or self._events.name
            raise
        if event.get("type") == "marker" and event.get("sample") is not None:
            self.n_markers += 1
            description = _bv_field(event.get("description", ""))
            # BrainVision positions are 1-based; "Comment" markers become MNE annotations
            try:
                self._vmrk.write(f"Mk{self.n_markers + 1}=Comment,{description},"
                                 f"{int(event['sample']) + 1},1,0\n")
                self._vmrk.flush()
            except OSError as exc:
                exc.filename = exc.filename or self._vmrk.name
                raise

    def _write_image(self, result: Any) -> None:
        paths = []
        for k, image in enumerate(result.images):
            suffix = "" if k == 0 else f"_{k}"
            path = self.folder / IMAGES_FOLDER / f"{result.index:04d}{suffix}.png"
            _save_png(image, path)
            paths.append(str(path.relative_to(self.folder)))
        lowlevel = getattr(result, "lowlevel", None)
        extra: dict[str, Any] = {}
        if lowlevel is not None:  # beside the images, never among them (readers of "images")
            path = self.folder / IMAGES_FOLDER / f"{result.index:04d}{LOWLEVEL_SUFFIX}.png"
            _save_png(lowlevel, path)
            extra["lowlevel"] = str(path.relative_to(self.folder))
        if getattr(result, "renderer", ""):
            extra["renderer"] = result.renderer
        self.n_images += 1
        self._write_event({  # its start/stop become file-relative in _write_event
            "type": "image", "index": result.index, "images": paths,
            "start": result.window_start, "stop": result.window_stop,
            "t_first": result.t_first, "t_last": result.t_last, "trigger": result.trigger,
            "seed": result.seed, "timings": result.timings,
            "matches": [list(m) for m in result.matches],
            **({"stimulus": result.stimulus} if getattr(result, "stimulus", None) else {}),
            **extra,
        })

    def close(self, timeout: float = 30.0) -> None:
        """Write everything queued, then close the files. Safe to call twice."""
        if self._closed:
            return
        if self._thread is not None:
            self._queue.put(("close", None))
            self._thread.join(timeout)
            if self._thread.is_alive():
                logger.error("the recorder thread did not finish within %.0f s", timeout)
            self._thread = None
        self._closed = True
        self.step()
        for f in (self._eeg, self._ts, self._events, self._vmrk):
            try:
                f.close()
            except OSError as exc:  # a text file's last buffered line on a full disk
                if self.failure is None:
                    exc.filename = exc.filename or f.name
                    self._fail(exc)
        if self.failure is not None:
            logger.info("session folder %s kept what was written before the failure "
                        "(%d samples, %d images)", self.folder, self.n_samples, self.n_images)
            return
        logger.info("session saved to %s (%d samples, %d images)", self.folder,
                    self.n_samples, self.n_images)


def read_timestamps(folder: str | Path) -> np.ndarray:
    """The per-sample timestamps of a session folder, ``[n_times]`` float64."""
    return np.fromfile(Path(folder) / TIMESTAMPS_FILE, dtype="<f8")


def read_events(folder: str | Path) -> list[dict[str, Any]]:
    """The events of a session folder, in the order they were written."""
    path = Path(folder) / EVENTS_FILE
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s: skipped a truncated line (the session ended mid-write)", path)
    return events


def _write_all(f: Any, data: bytes) -> None:
    """Write all of ``data`` to an unbuffered file; raises OSError (with the file name) when
    the disk takes only part of it."""
    view = memoryview(data)
    try:
        while view:
            n = f.write(view)
            if not n:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
            view = view[n:]
    except OSError as exc:
        exc.filename = exc.filename or f.name
        raise


def _save_png(image: Any, path: Path) -> None:
    """Save ``image`` as ``path`` through a temporary name: ``path`` is a whole PNG or absent."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except OSError as exc:
        exc.filename = exc.filename or str(path)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def _free_space(path: Path) -> str:
    """``", 1.2 MB free on <mount>"`` for the disk holding ``path`` (or ``""``)."""
    for candidate in (Path(path), *Path(path).parents):
        if candidate.exists():
            try:
                free = shutil.disk_usage(candidate).free
            except OSError:
                return ""
            return f", {_human_bytes(free)} free there"
    return ""


def _human_bytes(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _bv_field(text: object) -> str:
    """``text`` as one BrainVision header/marker field: control characters (newlines, tabs,
    NUL...) replaced by spaces, commas escaped."""
    return _BV_CONTROL.sub(" ", str(text)).replace(",", COMMA_ESCAPE)


def _vhdr(info: StreamInfo) -> str:
    lines = [
        "Brain Vision Data Exchange Header File Version 1.0",
        f"; written by dd-live {__version__}",
        "",
        "[Common Infos]",
        "Codepage=UTF-8",
        f"DataFile={EEG_BASENAME}.eeg",
        f"MarkerFile={EEG_BASENAME}.vmrk",
        "DataFormat=BINARY",
        "DataOrientation=MULTIPLEXED",
        f"NumberOfChannels={info.n_channels}",
        f"SamplingInterval={1e6 / info.sfreq:.6f}",
        "",
        "[Binary Infos]",
        "BinaryFormat=IEEE_FLOAT_32",
        "",
        "[Channel Infos]",
    ]
    for k, (name, unit) in enumerate(zip(info.ch_names, info.units), start=1):
        unit_text = "µV" if unit in VOLT_UNITS else (_bv_field(unit) or "ARU")
        lines.append(f"Ch{k}={_bv_field(name)},,1,{unit_text}")
    return "\n".join(lines) + "\n"


def _vmrk_header(start: dt.datetime) -> str:
    return (
        "Brain Vision Data Exchange Marker File, Version 1.0\n\n"
        "[Common Infos]\nCodepage=UTF-8\n"
        f"DataFile={EEG_BASENAME}.eeg\n\n"
        "[Marker Infos]\n"
        f"Mk1=New Segment,,1,1,0,{start.strftime('%Y%m%d%H%M%S%f')}\n"
    )


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)
