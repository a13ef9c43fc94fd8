"""Session folders as a BIDS EEG data set (``dd-live export-bids``), written with mne-bids.

Each session folder becomes one run of ``sub-<ID>[/ses-<S>]/eeg/``; a session that a layout
change split into segments (``<name>``, ``<name>-segment2``...) becomes one run per segment,
in order. Everything BIDS describes is written by mne-bids (:func:`mne_bids.write_raw_bids`,
:func:`~mne_bids.update_sidecar_json`, :func:`~mne_bids.mark_channels`,
:func:`~mne_bids.make_dataset_description`):

- ``*_eeg.vhdr/.eeg/.vmrk``: the samples as recorded (float32 µV), copied byte for byte, so
  nothing is lost or rounded;
- ``*_channels.tsv``: names, types, units; ``status`` ``bad`` (with the reason and when) for
  each channel the live session marked bad;
- ``*_events.tsv``: every marker (``trial_type`` is its text) with, for a calibration trial,
  the image shown (``stim_file``, relative to ``stimuli/``), its ``image_id``, ``sha256``,
  ``split`` and ``trial``; the recording's gaps (``kind`` ``gap``, ``n_missing`` samples
  missing before that sample) and what the live session found (bad channels, the mains
  choice, stalls...); ``timestamp`` is the sample's time on the source's clock (the LSL clock
  for LSL sources), to align with other recordings of the same stream;
- ``*_eeg.json``: ``Manufacturer`` / ``ManufacturersModelName`` of the board or stream the
  session read, ``PowerLineFrequency`` as the session measured it (its automatic notch),
  ``EEGReference``;
- ``stimuli/<image_id>.<ext>``: the images a calibration session showed;
- ``participants.tsv``, ``dataset_description.json``, ``README``, ``*_scans.tsv``;
- ``sourcedata/sub-<ID>/[ses-<S>/]eeg/<recording>/``: the session folder's own files
  (``config.toml``, ``session.json``, ``events.jsonl``, ``timestamps.f64``, the stimulus table,
  generated images), which BIDS tools ignore; dd-live reads the settings back from there.

:func:`calibration_session` and :func:`recorded_settings` read a run back as the calibration
session it was (its stimulus table restored from ``events.tsv`` and ``stimuli/``), for
training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dd_live import __version__
from dd_live.calibration import (
    CALIBRATION_FILE,
    MARKER_PREFIX,
    STIMULI_FILE,
    CalibrationSession,
    file_sha256,
)
from dd_live.config import AppConfig
from dd_live.errors import ConfigError
from dd_live.recording import (
    CONFIG_FILE,
    EEG_BASENAME,
    EVENTS_FILE,
    IMAGES_FOLDER,
    SESSION_FILE,
    TIMESTAMPS_FILE,
    read_events,
    read_timestamps,
)
from dd_live.sources.bids import (
    GAP,
    KIND_COLUMN,
    MARKER,
    N_MISSING_COLUMN,
    NOT_AVAILABLE,
    BidsRun,
    find_bids_runs,
)

logger = logging.getLogger(__name__)

DATASET_NAME = "dd-live sessions"
STIMULI_FOLDER = "stimuli"  # BIDS's folder of presented stimuli, at the root
MARKER_TYPE = "Comment/"  # how MNE names the BrainVision markers dd-live records
STAGED_NAME = "recording"  # the triplet's basename while mne-bids copies it (see _staged)
LABEL = re.compile(r"^[A-Za-z0-9]+$")
DEFAULT_TASK = "recording"
CALIBRATION_TASK = "calibration"
#: the session folder's files kept under sourcedata/ (the EEG itself is the BIDS data file)
SOURCE_FILES = (CONFIG_FILE, SESSION_FILE, EVENTS_FILE, TIMESTAMPS_FILE, STIMULI_FILE,
                CALIBRATION_FILE)
#: events of the session that are not markers but are placed on a sample, as events.tsv rows
STREAM_KINDS = ("gap", "discontinuity", "stall", "resume", "error", "reconnect", "disconnect",
                "nonfinite", "finite", "bad_channel", "channel_ok", "mains", "segment_start",
                "segment_end")
#: events.tsv columns dd-live adds, as events.json describes them
COLUMN_DESCRIPTIONS = {
    KIND_COLUMN: "What the row is: 'marker' (a marker of the source or of the calibration; "
                 "trial_type is its text), 'gap' (samples missing just before this sample: "
                 "the data file holds none for them; see n_missing), or what the live "
                 "session found: 'bad_channel' / 'channel_ok', 'mains' (its automatic notch's "
                 "choice), 'stall', 'resume', 'reconnect', 'disconnect', 'nonfinite' / "
                 "'finite' (NaN/Inf samples begin / end), 'segment_start' / 'segment_end'.",
    "note": "What the live session said about the row (non-markers).",
    "timestamp": "Time of the row's sample on the source's clock in seconds (the LSL clock "
                 "for LSL streams): aligns the run with other recordings of the same stream.",
    "stim_file": "The image shown at this onset, relative to the stimuli/ folder.",
    "image_id": "The shown image's id: the first 12 hex digits of its SHA-256.",
    "sha256": "SHA-256 of the shown image file.",
    "split": "The image's split in the calibration design: 'train' or 'test' (test images "
             "are held out from training).",
    "trial": "The trial number in the calibration schedule (0-based).",
    "onset_time": "The image's onset (screen flip) on the source's clock, seconds.",
    N_MISSING_COLUMN: "Samples missing just before this sample (rows of kind 'gap').",
    "channel": "The channel a 'bad_channel' or 'channel_ok' row is about.",
}
#: Manufacturer by BrainFlow board name (BoardIds member, e.g. CYTON_DAISY_BOARD)
BOARD_MAKERS = (("CYTON", "OpenBCI"), ("GANGLION", "OpenBCI"), ("GALEA", "OpenBCI"),
                ("MUSE", "Interaxon"), ("UNICORN", "g.tec"), ("CROWN", "Neurosity"),
                ("NOTION", "Neurosity"), ("BRAINBIT", "BrainBit"), ("CALLIBRI", "BrainBit"),
                ("EXPLORE", "Mentalab"), ("ENOPHONE", "Enophone"), ("SYNTHETIC", "BrainFlow"),
                ("PLAYBACK", "BrainFlow"), ("STREAMING", "BrainFlow"))
#: the reference of boards whose reference is fixed by their design
BOARD_REFERENCES = (("CYTON", "SRB2 (OpenBCI Cyton default)"),
                    ("GANGLION", "REF (OpenBCI Ganglion)"),
                    ("MUSE", "Fpz (Muse)"))


@dataclass(frozen=True)
class ExportedRun:
    """One session folder written into a BIDS data set.

    Attributes:
        folder: the session folder.
        run: the recording in the data set (``str(run)`` is its ``bids:`` spec).
        n_samples: samples per channel.
        n_events: rows of its ``events.tsv``.
        n_stimuli: calibration trials (rows with a ``stim_file``).
        replaced: it was exported before and written again (``overwrite``).
    """

    folder: Path
    run: BidsRun
    n_samples: int
    n_events: int
    n_stimuli: int
    replaced: bool = False


# -- checks ----------------------------------------------------------------------------------------
def check_label(option: str, value: str | None) -> str | None:
    """A BIDS label (letters and digits); the ``sub-``/``ses-``/``task-`` prefix is dropped."""
    if value is None:
        return None
    label = str(value).strip()
    for prefix in ("sub-", "ses-", "task-"):
        label = label.removeprefix(prefix)
    if not LABEL.match(label):
        raise ConfigError(f"{option} {value!r} is no BIDS label: use letters and digits only "
                          f"(e.g. {option} 01)")
    return label


def check_session_folder(folder: str | Path) -> Path:
    """``folder`` if it is a dd-live session folder (BrainVision EEG, timestamps, events)."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        what = "does not exist" if not path.exists() else "is a file, not a folder"
        raise ConfigError(f"{path} {what}: give session folders dd-live wrote "
                          "(runs/<date>_<time>_<name>/, from dd-live record, run --record or "
                          "calibrate)")
    missing = [name for name in (f"{EEG_BASENAME}.vhdr", f"{EEG_BASENAME}.eeg",
                                 f"{EEG_BASENAME}.vmrk", TIMESTAMPS_FILE, EVENTS_FILE)
               if not (path / name).is_file()]
    if missing:
        raise ConfigError(f"{path} is not a dd-live session folder (no {', '.join(missing)}): "
                          "give the folders dd-live record, run --record or calibrate wrote")
    return path


def check_root(root: str | Path) -> Path:
    """``root`` if it is new, empty, or a BIDS data set (never anything else)."""
    path = Path(root).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--root {path} is a file; give a new folder or a BIDS data set")
    if path.is_dir() and any(path.iterdir()) and not (path / "dataset_description.json").is_file():
        raise ConfigError(f"--root {path} exists and is no BIDS data set (it holds files but no "
                          "dataset_description.json); give a new or empty folder, or a data set "
                          "dd-live export-bids wrote")
    return path


# -- what a session folder says --------------------------------------------------------------------
def _session_info(folder: Path) -> dict[str, Any]:
    path = folder / SESSION_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("info", {}) or {}
    except (json.JSONDecodeError, AttributeError):
        logger.warning("%s is not valid JSON: the stream info is left out", path)
        return {}


def session_settings(folder: Path) -> AppConfig:
    """The settings a session folder was recorded with (defaults when it has none)."""
    path = Path(folder) / CONFIG_FILE
    return AppConfig.from_toml(path) if path.is_file() else AppConfig()


def device_description(info: dict[str, Any], spec: str) -> dict[str, str]:
    """``Manufacturer``, ``ManufacturersModelName`` and ``EEGReference`` of the session's
    source, from its stream info (``session.json``) and source spec (``n/a`` where unknown)."""
    name = str(info.get("name", "")) or NOT_AVAILABLE
    source_id = str(info.get("source_id", ""))
    kind = spec.strip().lower().partition("?")[0].partition(":")[0]
    maker, model, reference = NOT_AVAILABLE, name, NOT_AVAILABLE
    if source_id.startswith("brainflow:") or kind == "brainflow":
        upper = name.upper()
        maker = next((m for key, m in BOARD_MAKERS if key in upper), NOT_AVAILABLE)
        reference = next((r for key, r in BOARD_REFERENCES if key in upper), NOT_AVAILABLE)
        model = f"{name} (BrainFlow board)"
    elif source_id.startswith("synthetic") or kind == "synthetic":
        maker = "dd-live"
        viewer = "viewer=1" in spec.replace(" ", "").lower() or "viewer=true" in spec.lower()
        model = ("simulated viewer (synthetic EEG)" if viewer
                 else "synthetic headset (simulated EEG)")
    elif kind.startswith("lsl"):
        model = f"LSL stream {name}"
    elif name != NOT_AVAILABLE:
        model = f"replay of {name}"
    return {"Manufacturer": maker, "ManufacturersModelName": model, "EEGReference": reference}


def measured_line_freq(events: Sequence[dict[str, Any]], config: AppConfig) -> float | None:
    """The mains frequency the session's automatic notch measured (its last choice), else a
    notch the settings fixed, else None."""
    freq = None
    for event in events:
        if event.get("type") == "mains" and isinstance(event.get("freq"), int | float):
            freq = float(event["freq"])
    if freq is None and isinstance(config.filter.notch, int | float) and config.filter.notch > 0:
        freq = float(config.filter.notch)
    return freq


def bad_channels(events: Sequence[dict[str, Any]], sfreq: float) -> dict[str, str]:
    """``{channel: why}`` for every channel the live session marked bad at some moment."""
    spans: dict[str, list[str]] = defaultdict(list)
    for event in events:
        channel = event.get("channel")
        if not isinstance(channel, str) or not isinstance(event.get("sample"), int):
            continue
        when = f"{event['sample'] / sfreq:.1f} s"
        if event.get("type") == "bad_channel":
            spans[channel].append(f"marked bad at {when} ({event.get('reason', 'no reason')})")
        elif event.get("type") == "channel_ok" and channel in spans:
            spans[channel].append(f"good again at {when}")
    return {channel: "; ".join(parts) for channel, parts in spans.items()}


def _next_segment(folder: Path) -> Path | None:
    """The folder a layout change continued this session in (``segment_start`` names its
    ``previous``), looked for beside it."""
    for candidate in sorted(folder.parent.glob("*-segment*")):
        events = candidate / EVENTS_FILE
        if candidate == folder or not events.is_file():
            continue
        with events.open(encoding="utf-8") as file:
            first = file.readline()
        with contextlib.suppress(json.JSONDecodeError):
            event = json.loads(first)
            if event.get("type") == "segment_start" and Path(
                    str(event.get("previous", ""))).name == folder.name:
                return candidate
    return None


def _previous_segment(folder: Path) -> str | None:
    with (folder / EVENTS_FILE).open(encoding="utf-8") as file:
        first = file.readline()
    with contextlib.suppress(json.JSONDecodeError, AttributeError):
        event = json.loads(first)
        if event.get("type") == "segment_start":
            return Path(str(event.get("previous", ""))).name
    return None


def in_segment_order(folders: Sequence[Path]) -> list[Path]:
    """``folders`` in the order given, each segment of a split session right after the one it
    continues; a segment whose continuation was not given is reported (logged)."""
    by_name = {f.name: f for f in folders}
    follows = {f.name: _previous_segment(f) for f in folders}
    ordered: list[Path] = []
    for folder in folders:
        if follows[folder.name] in by_name:
            continue  # placed after the segment it continues
        chain = folder
        while chain is not None and chain not in ordered:
            ordered.append(chain)
            chain = next((f for f in folders if follows[f.name] == chain.name), None)
    for folder in folders:
        if folder not in ordered:
            ordered.append(folder)
    for folder in ordered:
        following = _next_segment(folder)
        if following is not None and following.name not in by_name:
            logger.warning("%s continues in %s (the stream changed its layout): export that "
                           "folder too to have the whole session", folder, following)
    return ordered


# -- events ----------------------------------------------------------------------------------------
def session_annotations(raw, folder: Path, session: CalibrationSession | None,
                        timestamps: np.ndarray):
    """The events.tsv rows of a session folder as MNE annotations with extras.

    Markers come from the BrainVision marker file (as a replay of the folder reads them),
    joined with ``events.jsonl`` and the stimulus table; the other rows from ``events.jsonl``.

    Returns ``(annotations, stimuli)``: :class:`mne.Annotations` and ``{stim_file: image}``.
    """
    import mne

    sfreq, n_times = raw.info["sfreq"], raw.n_times
    events = read_events(folder)
    recorded = defaultdict(list)  # sample -> marker events of events.jsonl, in order
    for event in events:
        if event.get("type") == "marker" and isinstance(event.get("sample"), int):
            recorded[event["sample"]].append(event)
    rows = defaultdict(list)  # onset sample -> stimulus table rows
    for row in session.rows if session is not None else ():
        rows[row["onset_sample"]].append(row)
    onsets, durations, descriptions, extras = [], [], [], []
    stimuli: dict[str, Path] = {}

    def add(sample: int, duration: float, description: str, extra: dict[str, Any]) -> None:
        onsets.append(sample / sfreq)
        durations.append(duration)
        descriptions.append(description)
        extra["timestamp"] = float(timestamps[sample]) if sample < len(timestamps) else None
        extras.append(extra)

    for annotation in raw.annotations:
        sample = int(round((float(annotation["onset"]) - raw.first_time) * sfreq))
        text = str(annotation["description"]).removeprefix(MARKER_TYPE)
        extra: dict[str, Any] = {KIND_COLUMN: MARKER}
        event = recorded[sample].pop(0) if recorded.get(sample) else {}
        for key in ("trial", "split", "onset_time"):
            if key in event:
                extra[key] = event[key]
        image_id = text.removeprefix(MARKER_PREFIX) if text.startswith(MARKER_PREFIX) else None
        match = next((r for r in rows.get(sample, []) if r["image_id"] == image_id), None)
        if match is not None:
            rows[sample].remove(match)
            image = session.images[image_id]
            stim_file = f"{image_id}{image.suffix.lower()}"
            stimuli[stim_file] = image
            extra.update(stim_file=stim_file, image_id=image_id, sha256=match["sha256"],
                         split=match["split"], trial=match["trial"],
                         onset_time=float(match["onset_time"]))
        add(sample, float(annotation["duration"]), text, extra)
    for event in events:
        sample = event.get("sample")
        if event.get("type") not in STREAM_KINDS or not isinstance(sample, int):
            continue
        if not 0 <= sample < n_times:
            continue
        kind = event["type"]
        if kind == GAP and not (isinstance(event.get("n_missing"), int) and sample > 0):
            continue
        extra = {KIND_COLUMN: kind, "note": " ".join(str(event.get("description",
                                                                          "")).split())}
        if kind == GAP:
            extra[N_MISSING_COLUMN] = event["n_missing"]
        if isinstance(event.get("channel"), str):
            extra["channel"] = event["channel"]
        add(sample, 0.0, kind, extra)
    annotations = mne.Annotations(onsets, durations, descriptions, extras=extras)
    return annotations, stimuli


# -- writing ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _staged(folder: Path):
    """The session's BrainVision triplet under the basename ``recording`` in a temporary folder
    (the samples linked, not copied, where the file system allows).

    mne-bids's copy renames a triplet by replacing its basename in the header's file
    pointers, which a basename equal to the data file's extension (``eeg.eeg``) defeats."""
    with tempfile.TemporaryDirectory(prefix="dd-live-bids-") as tmp:
        staged = Path(tmp) / STAGED_NAME
        pointers = {f"DataFile={EEG_BASENAME}.eeg": f"DataFile={STAGED_NAME}.eeg",
                    f"MarkerFile={EEG_BASENAME}.vmrk": f"MarkerFile={STAGED_NAME}.vmrk"}
        for suffix in (".vhdr", ".vmrk"):
            lines = (folder / f"{EEG_BASENAME}{suffix}").read_text(encoding="utf-8").splitlines()
            text = "\n".join(pointers.get(line.strip(), line) for line in lines) + "\n"
            staged.with_suffix(suffix).write_text(text, encoding="utf-8")
        data = (folder / f"{EEG_BASENAME}.eeg").resolve()
        try:
            os.symlink(data, staged.with_suffix(".eeg"))
        except OSError:  # no symbolic links here (Windows without the right)
            shutil.copyfile(data, staged.with_suffix(".eeg"))
        yield staged.with_suffix(".vhdr")


def _existing_runs(root: Path, subject: str, session: str | None, task: str) -> dict[int, Path]:
    """``{run number: data file}`` of the data set's runs for these entities."""
    folder = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "eeg"
    prefix = f"sub-{subject}" + (f"_ses-{session}" if session else "") + f"_task-{task}"
    runs = {}
    for path in folder.glob(f"{prefix}_run-*_eeg.*"):
        label = path.name[len(prefix) + len("_run-"):].split("_", 1)[0]
        if label.isdigit() and path.suffix.lower() in (".vhdr", ".edf", ".bdf", ".set"):
            runs[int(label)] = path
    return runs


def _source_copy(root: Path, data_file: Path) -> Path:
    """Where the session's own files of the data file ``data_file`` are kept."""
    return BidsRun(root, data_file, "").source_folder


def _exported_as(root: Path, folder: Path, runs: dict[int, Path]) -> int | None:
    """The run this session folder was exported as before (its session.json kept there)."""
    mine = (folder / SESSION_FILE).read_bytes() if (folder / SESSION_FILE).is_file() else None
    if mine is None:
        return None
    for number, data_file in runs.items():
        kept = _source_copy(root, data_file) / SESSION_FILE
        if kept.is_file() and kept.read_bytes() == mine:
            return number
    return None


def _copy_stimuli(root: Path, stimuli: dict[str, Path], overwrite: bool) -> None:
    folder = root / STIMULI_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in stimuli.items():
        target = folder / name
        if target.is_file():
            if file_sha256(target) == file_sha256(image):
                continue
            if not overwrite:
                raise ConfigError(f"{target} is another image than {image}, which the session "
                                  "showed under that name; add --overwrite to replace it")
        shutil.copyfile(image, target)


def _keep_source_files(folder: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for name in SOURCE_FILES:
        if (folder / name).is_file():
            shutil.copyfile(folder / name, target / name)
    images = folder / IMAGES_FOLDER
    if images.is_dir() and any(images.iterdir()):
        shutil.copytree(images, target / IMAGES_FOLDER)


def _task_description(folder: Path) -> str | None:
    path = folder / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        timing = summary["timing"]
        design = summary["config"]["design"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return None
    return (f"dd-live calibration ({design}): images shown one at a time, {timing['on']:g} s "
            f"each with a {timing['blank']:g} s blank (+/- {timing['jitter']:g} s) between; "
            "each image's onset is a marker 'image:<image_id>' with the image as stim_file")


def default_task(folder: Path, config: AppConfig) -> str:
    """``calibration`` for calibration sessions, else the session's name (letters and digits)."""
    if (folder / STIMULI_FILE).is_file():
        return CALIBRATION_TASK
    return re.sub(r"[^A-Za-z0-9]", "", config.record.name) or DEFAULT_TASK


def _plan(folder, root, subject, session, task, overwrite: bool):
    """Everything :func:`export_session` checks before it writes: ``(folder, root, subject,
    session, task, calibration session or None, {run: file} there, the run it was exported as
    or None)``."""
    folder = check_session_folder(folder)
    root = check_root(root)
    subject = check_label("--subject", subject)
    session = check_label("--session", session)
    task = check_label("--task", task) or default_task(folder, session_settings(folder))
    calibration = None
    if (folder / STIMULI_FILE).is_file():
        calibration = CalibrationSession.open(folder)
        calibration.check_images()
    runs = _existing_runs(root, subject, session, task)
    before = _exported_as(root, folder, runs)
    if before is not None and not overwrite:
        raise ConfigError(f"{folder} is already in {root} as {runs[before].name}; add "
                          "--overwrite to write it again")
    return folder, root, subject, session, task, calibration, runs, before


def export_session(folder: str | Path, root: str | Path, subject: str, *,
                   session: str | None = None, task: str | None = None,
                   overwrite: bool = False, reference: str | None = None,
                   line_freq: float | None = None) -> ExportedRun:
    """Write one session folder as a run of the BIDS data set ``root`` (see the module doc).

    The run number is the next free one for ``subject``/``session``/``task``; a folder exported
    before is refused unless ``overwrite`` (then it is written again as the same run).
    ``reference`` and ``line_freq`` replace what the session says (``EEGReference``,
    ``PowerLineFrequency``).

    Raises:
        ConfigError: not a session folder, a root that is no BIDS data set, a label that is no
            BIDS label, a session exported before, a calibration image that is gone.
    """
    import mne
    from mne_bids import BIDSPath, mark_channels, update_sidecar_json, write_raw_bids

    folder, root, subject, session, task, calibration, runs, before = _plan(
        folder, root, subject, session, task, overwrite)
    config = session_settings(folder)
    info = _session_info(folder)
    events = read_events(folder)
    timestamps = read_timestamps(folder)
    number = before if before is not None else max(runs, default=0) + 1
    bids_path = BIDSPath(subject=subject, session=session, task=task, run=number,
                         datatype="eeg", suffix="eeg", extension=".vhdr", root=root)

    with _staged(folder) as vhdr, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = mne.io.read_raw_brainvision(vhdr, preload=False, verbose="error")
        types = dict(zip(info.get("ch_names", []), info.get("ch_types", [])))
        changed = {name: kind for name, kind in types.items()
                   if name in raw.ch_names and kind != "eeg"
                   and kind in mne.io.get_channel_type_constants()}
        if changed:
            raw.set_channel_types(changed, on_unit_change="ignore", verbose="error")
        annotations, stimuli = session_annotations(raw, folder, calibration, timestamps)
        raw.set_annotations(annotations)
        bads = bad_channels(events, raw.info["sfreq"])
        raw.info["bads"] = [name for name in bads if name in raw.ch_names]
        freq = line_freq if line_freq is not None else measured_line_freq(events, config)
        raw.info["line_freq"] = freq
        if not (root / "dataset_description.json").is_file():
            _describe_dataset(root)
        write_raw_bids(raw, bids_path, overwrite=before is not None,
                       extra_columns_descriptions={k: v for k, v in COLUMN_DESCRIPTIONS.items()
                                                   if any(k in e for e in annotations.extras)},
                       verbose="error")
    for warning in caught:
        logger.info("%s: %s", folder.name, " ".join(str(warning.message).split()))

    sidecar = bids_path.copy().update(suffix="eeg", extension=".json")
    entries = device_description(info, config.source.spec)
    if reference is not None:
        entries["EEGReference"] = reference
    entries["SoftwareVersions"] = f"dd-live {__version__}"
    description = _task_description(folder)
    if description:
        entries["TaskDescription"] = description
    update_sidecar_json(sidecar, entries, verbose="error")
    if raw.info["bads"]:
        mark_channels(bids_path, ch_names=raw.info["bads"], status="bad",
                      descriptions=[bads[name] for name in raw.info["bads"]], verbose="error")
    if stimuli:
        _copy_stimuli(root, stimuli, overwrite)
    _keep_source_files(folder, _source_copy(root, bids_path.fpath))
    run = BidsRun(root, bids_path.fpath, subject, session, task, str(number))
    n_stimuli = sum(1 for e in annotations.extras if "stim_file" in e)
    logger.info("%s -> %s (%d samples, %d events, %d stimuli)", folder, bids_path.fpath,
                raw.n_times, len(annotations), n_stimuli)
    return ExportedRun(folder, run, int(raw.n_times), len(annotations), n_stimuli,
                       before is not None)


def _describe_dataset(root: Path) -> None:
    from mne_bids import make_dataset_description

    root.mkdir(parents=True, exist_ok=True)
    make_dataset_description(
        path=root, name=DATASET_NAME, dataset_type="raw",
        generated_by=[{"Name": "dd-live", "Version": __version__,
                       "Description": "dd-live export-bids: session folders as BIDS EEG"}],
        verbose="error")


def export_bids(folders: Sequence[str | Path], root: str | Path, subject: str, *,
                session: str | None = None, task: str | None = None, overwrite: bool = False,
                reference: str | None = None, line_freq: float | None = None,
                on_progress: Callable[[int, int, ExportedRun], Any] | None = None,
                ) -> list[ExportedRun]:
    """Export session folders into one BIDS data set (runs in the order given, each
    layout-change segment after the one it continues). Every folder and option is checked
    before anything is written. ``on_progress(k, n, exported)`` after each one."""
    if not folders:
        raise ConfigError("export-bids needs at least one session folder")
    if line_freq is not None and not (line_freq > 0 and np.isfinite(line_freq)):
        raise ConfigError(f"--line-freq must be a frequency in Hz (50 or 60), got {line_freq}")
    # every folder and option checked before anything is written
    checked = [_plan(f, root, subject, session, task, overwrite)[0] for f in folders]
    ordered = in_segment_order(checked)
    done = []
    for k, folder in enumerate(ordered):
        exported = export_session(folder, root, subject, session=session, task=task,
                                  overwrite=overwrite, reference=reference, line_freq=line_freq)
        done.append(exported)
        if on_progress is not None:
            on_progress(k, len(ordered), exported)
    return done


# -- reading back ----------------------------------------------------------------------------------
def source_files(run: BidsRun) -> Path:
    """Where a run keeps its session folder's own files (under ``sourcedata/``)."""
    return run.source_folder


def recorded_settings_file(spec: str | BidsRun) -> Path | None:
    """The ``config.toml`` of the one recording ``spec`` (a replay's: it may carry replay
    options) selects, if dd-live kept it."""
    from dd_live.sources.bids import BidsSelection
    from dd_live.sources.spec import REPLAY_OPTIONS

    if not isinstance(spec, BidsRun):
        spec = BidsSelection.parse(spec, REPLAY_OPTIONS)[0]
    runs = find_bids_runs(spec)
    path = source_files(runs[0]) / CONFIG_FILE
    return path if len(runs) == 1 and path.is_file() else None


def recorded_settings(run: BidsRun) -> AppConfig:
    """The settings the run's session was recorded with (its ``config.toml``, kept under
    ``sourcedata/``); the defaults, with a log line, for a run without one."""
    path = source_files(run) / CONFIG_FILE
    if path.is_file():
        return AppConfig.from_toml(path)
    logger.info("%s has no recorded settings (%s): the default settings preprocess it", run, path)
    return AppConfig()


def calibration_session(run: BidsRun | str) -> CalibrationSession:
    """A run (or a ``bids:`` spec selecting one) read back as the calibration session it
    was: the stimulus table from the ``events.tsv`` rows with a ``stim_file``, the images
    from ``stimuli/`` (``folder`` is the run's data file).

    Raises:
        ConfigError: the run shows no images (no row with a ``stim_file``), or the spec
            selects none or several runs.
    """
    if not isinstance(run, BidsRun):
        runs = find_bids_runs(run)
        if len(runs) > 1:
            raise ConfigError(f"{run} selects {len(runs)} recordings; name one with subject=, "
                              f"session=, task= and run=, e.g. {runs[0]}")
        run = runs[0]
    rows, images = [], {}
    sfreq = None
    for k, event in enumerate(run.events()):
        stim_file = event.get("stim_file", NOT_AVAILABLE)
        if stim_file in (NOT_AVAILABLE, "", None):
            continue
        trial_type = event.get("trial_type", "")
        image_id = event.get("image_id") or trial_type.removeprefix(MARKER_PREFIX)
        sample = event.get("sample")
        if sample in (None, "", NOT_AVAILABLE):
            if sfreq is None:
                sfreq = _sampling_rate(run)
            sample = round(float(event["onset"]) * sfreq)
        image = run.root / STIMULI_FOLDER / stim_file
        rows.append({"trial": _int(event.get("trial"), k), "image_id": image_id,
                     "file": str(image), "sha256": event.get("sha256", ""),
                     "onset_sample": int(sample), "onset_time": event.get("onset_time", ""),
                     "split": event.get("split", "train")})
        images.setdefault(image_id, image)
    if not rows:
        raise ConfigError(f"{run} shows no images (its events.tsv has no row with a stim_file): "
                          "it is no calibration session; export one recorded with dd-live "
                          "calibrate")
    return CalibrationSession(run.path, tuple(rows), images)


def _int(text: Any, default: int) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        return default


def _sampling_rate(run: BidsRun) -> float:
    path = run.sidecar("eeg", ".json")
    return float(json.loads(path.read_text(encoding="utf-8"))["SamplingFrequency"])


def is_calibration_run(run: BidsRun) -> bool:
    """True when the run's events show images (a ``stim_file`` on some row)."""
    return any(e.get("stim_file", NOT_AVAILABLE) not in (NOT_AVAILABLE, "")
               for e in run.events())


def calibration_runs(spec: str) -> list[BidsRun]:
    """The calibration runs (those showing images) a ``bids:`` spec selects."""
    runs = [run for run in find_bids_runs(spec) if is_calibration_run(run)]
    if not runs:
        raise ConfigError(f"{spec}: none of the recordings it selects shows images (no "
                          "events.tsv row with a stim_file); export calibration sessions "
                          "(dd-live calibrate) to train on")
    return runs
