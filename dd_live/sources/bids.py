"""BIDS EEG data sets as recordings: ``bids:ROOT[?subject=..&session=..&task=..&run=..]``.

:func:`find_bids_runs` lists the EEG recordings of a BIDS data set that a spec selects (one
:class:`BidsRun` each); :meth:`BidsRun.read` reads one through mne-bids
(:func:`mne_bids.read_raw_bids`: channel types and bad channels from ``channels.tsv``, events
from ``events.tsv``) into the :class:`~dd_live.sources.readers.Recording` a replay streams.

A data set written by ``dd-live export-bids`` reads back as the session folder it came from:
its ``events.tsv`` says which rows are markers and which are gaps (column ``kind``), so the
replay gets the same markers and the same gaps; rows of other kinds (bad channels, mains,
stalls...) were the live session's findings, not the source's, and are left out. In any other
data set every ``events.tsv`` row is a marker (its ``trial_type``).

mne and mne-bids are imported when a data set is read.
"""

from __future__ import annotations

import csv
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.readers import FileEvent, Recording
from dd_live.sources.units import VOLT_TYPES, check_amplitude

logger = logging.getLogger(__name__)

BIDS_PREFIX = "bids:"
#: the query keys of a ``bids:`` spec that select recordings (BIDS entities), with the prefix
#: a label may carry in a file name
ENTITIES = {"subject": "sub-", "session": "ses-", "task": "task-", "run": "run-",
            "acquisition": "acq-"}
#: the EEG data files a BIDS data set may hold (BrainVision, EDF, BDF, EEGLAB)
EEG_EXTENSIONS = (".vhdr", ".edf", ".bdf", ".set")
KIND_COLUMN = "kind"  # events.tsv column dd-live writes: "marker", "gap", "bad_channel"...
MARKER, GAP = "marker", "gap"
N_MISSING_COLUMN = "n_missing"
SOURCEDATA = "sourcedata"  # where the export keeps the session folder's own files
NOT_AVAILABLE = "n/a"


def is_bids_spec(value: object) -> bool:
    """True for a ``bids:`` spec (or a :class:`BidsRun`)."""
    return isinstance(value, BidsRun) or (isinstance(value, str)
                                          and value.strip().lower().startswith(BIDS_PREFIX))


@dataclass(frozen=True)
class BidsSelection:
    """What a ``bids:`` spec asks for: a data set's root and the entities to match (None: any).

    Attributes:
        root: the BIDS root (holds ``dataset_description.json``).
        subject, session, task, run, acquisition: labels without their prefix (``01``, not
            ``sub-01``).
    """

    root: Path
    subject: str | None = None
    session: str | None = None
    task: str | None = None
    run: str | None = None
    acquisition: str | None = None

    @classmethod
    def parse(cls, spec: str, allowed: set[str] | frozenset[str] = frozenset()) -> tuple[
            BidsSelection, dict[str, str]]:
        """``(selection, other parameters)`` of ``bids:ROOT?key=value&...``; keys besides the
        entities must be in ``allowed`` (they are returned as they are, e.g. replay options).

        Raises:
            ConfigError: no root, a parameter that is no entity and not allowed, or an empty
                label.
        """
        body = str(spec).strip()[len(BIDS_PREFIX):]
        target, _, query = body.partition("?")
        if not target:
            raise ConfigError(f"bad source spec {spec!r}: no BIDS root after bids: "
                              "(bids:ROOT?subject=01&task=calibration)")
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
        except ValueError:
            raise ConfigError(f"bad source spec {spec!r}: cannot parse the parameters {query!r} "
                              "(use key=value&key=value)") from None
        entities: dict[str, str] = {}
        others: dict[str, str] = {}
        for key, value in pairs:
            if key in ENTITIES:
                label = value.strip().removeprefix(ENTITIES[key])
                if not label:
                    raise ConfigError(f"bad source spec {spec!r}: {key}= is empty; give a label "
                                      f"({key}=01) or leave {key} out to take any")
                entities[key] = label
            elif key in allowed:
                others[key] = value
            else:
                known = sorted(set(ENTITIES) | set(allowed))
                raise ConfigError(f"bad source spec {spec!r}: unknown parameter {key!r}; a bids: "
                                  f"spec takes {known}")
        return cls(Path(target).expanduser(), **entities), others

    def __str__(self) -> str:
        query = urlencode({k: getattr(self, k) for k in ENTITIES if getattr(self, k) is not None})
        return f"{BIDS_PREFIX}{self.root}{'?' + query if query else ''}"


@dataclass(frozen=True)
class BidsRun:
    """One EEG recording of a BIDS data set (its data file, e.g. ``*_eeg.vhdr``).

    ``str(run)`` is the ``bids:`` spec that selects exactly this recording; ``os.fspath(run)``
    is its data file (as for :class:`mne_bids.BIDSPath`); ``run / NAME`` is the file ``NAME``
    of the session folder it was exported from, as ``dd-live export-bids`` keeps them under
    ``sourcedata/`` (``run / "config.toml"``: the settings it was recorded with), so code that
    looks into a session folder finds the same files there.
    """

    root: Path
    path: Path  # the data file
    subject: str
    session: str | None = None
    task: str | None = None
    run: str | None = None
    acquisition: str | None = None

    def __str__(self) -> str:
        query = urlencode({k: getattr(self, k) for k in ENTITIES if getattr(self, k) is not None})
        return f"{BIDS_PREFIX}{self.root}?{query}"

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.source_folder / name

    @property
    def source_folder(self) -> Path:
        """Where ``dd-live export-bids`` keeps the session folder's own files."""
        relative = self.path.parent.relative_to(self.root)
        return self.root / SOURCEDATA / relative / self.basename

    @property
    def basename(self) -> str:
        """The data file's name without ``_eeg.<ext>``: the prefix of its sidecars."""
        return self.path.name.rsplit("_", 1)[0]

    @property
    def bids_path(self):
        """The :class:`mne_bids.BIDSPath` of the data file."""
        from mne_bids import get_bids_path_from_fname

        return get_bids_path_from_fname(self.path).update(root=self.root)

    def sidecar(self, suffix: str, extension: str) -> Path:
        """The path of this recording's ``<basename>_<suffix><extension>`` (may not exist)."""
        return self.path.with_name(f"{self.basename}_{suffix}{extension}")

    def events(self) -> list[dict[str, str]]:
        """The rows of ``events.tsv`` as they are written (strings; ``[]`` without one)."""
        path = self.sidecar("events", ".tsv")
        if not path.is_file():
            return []
        with path.open(encoding="utf-8", newline="") as file:
            return list(csv.DictReader(file, delimiter="\t"))

    def read(self) -> Recording:
        """The recording in volts with its markers and gaps (see the module docstring).

        Raises:
            FileFormatError: mne-bids cannot read it (one line naming the file and why).
        """
        from mne_bids import read_raw_bids

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                raw = read_raw_bids(self.bids_path, verbose="error")
                data = raw.get_data()  # [n_channels, n_times] in volts
        except Exception as err:  # mne-bids and MNE's readers fail in many ways
            reason = " ".join(str(err).split()) or type(err).__name__
            raise FileFormatError(f"{self.path.name} ({self}) could not be read through mne-bids: "
                                  f"{reason}") from err
        for warning in caught:
            logger.info("%s: %s", self.path.name, " ".join(str(warning.message).split()))
        sfreq = float(raw.info["sfreq"])
        annotations, events = _markers_and_gaps(raw, sfreq, data.shape[1], self.path.name)
        types = tuple(raw.get_channel_types())
        eeg = [k for k, kind in enumerate(types) if kind in VOLT_TYPES]
        if eeg:
            check_amplitude(data[eeg], self.path.name)
        return Recording(
            data=data,
            sfreq=sfreq,
            ch_names=tuple(raw.ch_names),
            ch_types=types,
            units=tuple("V" if kind in VOLT_TYPES else "" for kind in types),
            annotations=tuple(sorted(annotations)),
            name=self.path.name,
            source=str(self),
            events=tuple(sorted(events, key=lambda e: e.index)),
        )


def _markers_and_gaps(raw, sfreq: float, n_times: int, name: str):
    """``(annotations, gap events)`` of a raw read by mne-bids (see the module docstring)."""
    annotations: list[tuple[float, float, str]] = []
    events: list[FileEvent] = []
    extras = getattr(raw.annotations, "extras", None) or [{}] * len(raw.annotations)
    for annotation, extra in zip(raw.annotations, extras, strict=True):
        kind = str((extra or {}).get(KIND_COLUMN, MARKER))
        onset = float(annotation["onset"]) - raw.first_time
        if kind == MARKER:
            annotations.append((onset, float(annotation["duration"]),
                                str(annotation["description"])))
        elif kind == GAP:
            index = int(round(onset * sfreq))
            try:
                n_missing = int(extra.get(N_MISSING_COLUMN))
            except (TypeError, ValueError):
                logger.warning("%s: a gap at %.3f s without its %s; left out", name, onset,
                               N_MISSING_COLUMN)
                continue
            if n_missing > 0 and 0 < index < n_times:
                description = str(extra.get("note", f"{n_missing} samples missing"))
                events.append(FileEvent(index, "gap", description, {"n_missing": n_missing}))
    return annotations, events


def _label_matches(wanted: str | None, label: str | None, numeric: bool = False) -> bool:
    if wanted is None:
        return True
    if label is None:
        return False
    if numeric and wanted.isdigit() and label.isdigit():
        return int(wanted) == int(label)  # run=1 selects run-01 too
    return wanted == label


def find_bids_runs(spec: str | BidsSelection | BidsRun) -> list[BidsRun]:
    """The EEG recordings of a BIDS data set that ``spec`` selects, sorted by file name.

    Raises:
        ConfigError: the root is no BIDS data set, or nothing matches (the message lists what
            the data set holds).
    """
    if isinstance(spec, BidsRun):
        return [spec]
    selection = spec if isinstance(spec, BidsSelection) else BidsSelection.parse(spec)[0]
    root = selection.root
    if not (root / "dataset_description.json").is_file():
        why = "does not exist" if not root.exists() else "holds no dataset_description.json"
        raise ConfigError(f"{selection}: {root} {why}, so it is no BIDS data set; give the root "
                          "folder of one (dd-live export-bids --root writes one)")
    from mne_bids import get_entities_from_fname

    found, everything = [], []
    for path in sorted(root.glob("sub-*/**/eeg/*_eeg.*")):
        if path.suffix.lower() not in EEG_EXTENSIONS or not path.is_file():
            continue
        entities = get_entities_from_fname(path.name)
        run = BidsRun(root, path, entities["subject"], entities.get("session"),
                      entities.get("task"), entities.get("run"), entities.get("acquisition"))
        everything.append(run)
        if all(_label_matches(getattr(selection, key), getattr(run, key), key == "run")
               for key in ENTITIES):
            found.append(run)
    if not found:
        listing = "; ".join(str(r).split("?", 1)[1] for r in everything[:10]) or "none"
        more = f" and {len(everything) - 10} more" if len(everything) > 10 else ""
        raise ConfigError(f"{selection}: no EEG recording matches; the data set holds: "
                          f"{listing}{more}")
    return found


def read_bids(spec: str | BidsSelection | BidsRun) -> Recording:
    """The one recording ``spec`` selects (a replay streams one).

    Raises:
        ConfigError: none or several match (the message names them and how to pick one).
    """
    runs = find_bids_runs(spec)
    if len(runs) > 1:
        names = ", ".join(r.path.name for r in runs[:5]) + (" ..." if len(runs) > 5 else "")
        raise ConfigError(f"{spec} selects {len(runs)} recordings ({names}); name one with "
                          "subject=, session=, task= and run=, e.g. "
                          f"{runs[0]}")
    return runs[0].read()

