"""Pretraining corpus: EEG windows cut from any files MNE reads (or MOABB data sets, or the EEG
recordings of a BIDS data set, ``bids:ROOT[?subject=..&task=..]``, read through mne-bids), cached.

Preprocessing follows the paper (``docs/reference.md``): EEG channels only, band-pass
5-95 Hz (the upper edge is lowered below Nyquist for slow recordings), optional resampling,
each channel standardised over its recording, cut into consecutive windows of ``n_times``
(a recording shorter than one window is zero-padded), channels padded to ``n_channels`` by
replicating existing ones (or the first ``n_channels`` kept).

With live preprocessing (:func:`live_preprocessing`, ``training.pretrain --live-preprocessing``)
each file is instead replayed through the live app's own acquisition, online filter, windows and
preprocessor (:func:`dd_live.calibration.session_epochs`, as calibration sessions are): windows of
``[window] length`` one after the other, mapped to ``n_channels``, resampled to ``n_times`` and
standardised per window, so the encoder is pretrained on what it will see live. Windows holding
NaN/Inf samples are skipped, as live.

Cache layout (``cache_dir``): one ``NNNNN.npy`` per source, shape ``[n_windows, n_channels,
n_times]`` float32, and ``manifest.json`` naming each source with its size/mtime and the
preprocessing settings. Rebuilding reuses parts whose source and settings are unchanged;
:class:`EEGCorpus` opens the parts as memmaps, so epochs never re-read raw files.
"""

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import mne
import numpy as np
import torch

from dd_live.config import AppConfig
from dd_live.errors import ConfigError, FileFormatError
from dd_live.sources.bids import BIDS_PREFIX, find_bids_runs, is_bids_spec

logger = logging.getLogger(__name__)

#: File endings searched for when a folder is given.
EEG_FILE_SUFFIXES = (".fif", ".fif.gz", ".edf", ".bdf", ".vhdr", ".set", ".gdf", ".cnt", ".mff")
MANIFEST = "manifest.json"
MOABB_PREFIX = "moabb:"
#: Fraction of Nyquist the band-pass upper edge may reach on slow recordings.
MAX_NYQUIST_FRACTION = 0.9


@dataclass(frozen=True)
class Preprocessing:
    """Settings that shape the cached windows (saved in the manifest)."""

    n_channels: int = 128
    n_times: int = 512
    l_freq: float = 5.0
    h_freq: float = 95.0
    sfreq: float | None = None  # resample to this rate first; None keeps each file's rate
    live: str | None = None  # live preprocessing: the live settings it used (JSON), else None

    def __post_init__(self) -> None:
        if self.n_channels < 1 or self.n_times < 1:
            raise ConfigError(f"n_channels and n_times must be positive, got {self.n_channels}, {self.n_times}")
        if not 0 <= self.l_freq < self.h_freq:
            raise ConfigError(f"need 0 <= l_freq < h_freq, got {self.l_freq}, {self.h_freq}")


def preprocess_raw(raw: mne.io.BaseRaw, prep: Preprocessing) -> np.ndarray:
    """One recording -> windows ``[n_windows, n_channels, n_times]`` float32 (see module doc)."""
    raw = raw.copy().pick("eeg").load_data(verbose="error")
    if prep.sfreq is not None and raw.info["sfreq"] != prep.sfreq:
        raw.resample(prep.sfreq, verbose="error")
    h_freq = min(prep.h_freq, MAX_NYQUIST_FRACTION * raw.info["sfreq"] / 2)
    raw.filter(prep.l_freq or None, h_freq, verbose="error")
    data = raw.get_data().astype(np.float32)  # [C, T]
    data -= data.mean(axis=1, keepdims=True)
    std = data.std(axis=1, keepdims=True)
    data /= np.where(std > 0, std, 1.0)  # a flat channel stays zero
    channels = np.arange(prep.n_channels) % data.shape[0]  # replicate channels up to n_channels
    data = data[channels] if data.shape[0] < prep.n_channels else data[: prep.n_channels]
    n_windows = data.shape[1] // prep.n_times
    if n_windows == 0:
        padded = np.zeros((prep.n_channels, prep.n_times), dtype=np.float32)
        padded[:, : data.shape[1]] = data
        return padded[None]
    windows = data[:, : n_windows * prep.n_times].reshape(prep.n_channels, n_windows, prep.n_times)
    return np.ascontiguousarray(windows.transpose(1, 0, 2))  # [n_windows, C, n_times]


def live_preprocessing(app_config: AppConfig, n_channels: int, n_times: int) -> Preprocessing:
    """Preprocessing the live way with ``app_config``'s ``[filter]``, ``[window]``,
    ``[channels]`` and ``[generator] channel_method`` (these settings name the cache)."""
    settings = {"filter": asdict(app_config.filter), "window": asdict(app_config.window),
                "channels": asdict(app_config.channels),
                "channel_method": app_config.generator.channel_method}
    return Preprocessing(n_channels, n_times, live=json.dumps(settings, sort_keys=True, default=str))


def live_windows(key: str, prep: Preprocessing, app_config: AppConfig) -> np.ndarray:
    """One EEG file -> ``[n_windows, n_channels, n_times]`` float32 made by the live app's code.

    The file is read as ``dd-live replay`` reads it and replayed through
    :func:`dd_live.calibration.session_epochs` with windows of ``[window] length`` one after
    the other (``[window] offset`` after each start); a window past the end, or holding NaN/Inf
    samples, is left out.
    """
    from dd_live.calibration import session_epochs
    from dd_live.sources.readers import read_recording

    if key.startswith(MOABB_PREFIX):
        raise ConfigError(f"{key}: live preprocessing reads EEG files (it replays them as "
                          "dd-live replay does); save the MOABB data as FIF files first, or "
                          "drop --live-preprocessing")
    recording = find_bids_runs(key)[0].read() if is_bids_spec(key) else read_recording(key)
    if "eeg" not in recording.ch_types:
        raise FileFormatError(f"{key} has no EEG channel; expected at least one channel of type 'eeg'")
    length = max(1, round(app_config.window.length * recording.sfreq))
    onsets = np.arange(0, recording.n_times, length)
    windows, _ = session_epochs(recording, onsets, app_config, prep.n_channels, prep.n_times)
    return windows.astype(np.float32, copy=False)


def expand_sources(sources: Sequence[str | Path]) -> list[str]:
    """Files, folders (searched recursively for EEG files), ``moabb:NAME`` and ``bids:ROOT?...``
    (one key per EEG recording it selects) -> source keys."""
    keys: list[str] = []
    for source in sources:
        text = str(source)
        if is_bids_spec(text):
            keys.extend(str(run) for run in find_bids_runs(text))
            continue
        if text.startswith(MOABB_PREFIX):
            keys.extend(_moabb_keys(text[len(MOABB_PREFIX) :]))
            continue
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(EEG_FILE_SUFFIXES))
            if not found:
                raise FileFormatError(f"{path} holds no EEG file ({', '.join(EEG_FILE_SUFFIXES)})")
            keys.extend(str(p) for p in found)
        elif path.is_file():
            keys.append(str(path))
        else:
            raise FileFormatError(f"{path} does not exist; expected an EEG file, a folder of them or moabb:NAME")
    return keys


def _moabb_dataset(name: str):
    try:
        import moabb.datasets  # optional: only needed for MOABB sources
    except ImportError as error:
        raise ConfigError(f"moabb:{name} needs the 'moabb' package: pip install moabb") from error
    if not hasattr(moabb.datasets, name):
        raise ConfigError(f"moabb has no data set {name!r}; see moabb.datasets")
    return getattr(moabb.datasets, name)()


def _moabb_keys(name: str) -> list[str]:
    return [f"{MOABB_PREFIX}{name}:{subject}" for subject in _moabb_dataset(name).subject_list]


def _read_source(key: str) -> Iterator[mne.io.BaseRaw]:
    """The recordings behind one source key (one file, or all runs of one MOABB subject)."""
    if key.startswith(MOABB_PREFIX):
        name, subject = key[len(MOABB_PREFIX) :].rsplit(":", 1)
        for sessions in _moabb_dataset(name).get_data(subjects=[int(subject)]).values():
            for runs in sessions.values():
                yield from runs.values()
        return
    if key.startswith(BIDS_PREFIX):
        from mne_bids import read_raw_bids

        yield read_raw_bids(find_bids_runs(key)[0].bids_path, verbose="error")
        return
    try:
        raw = mne.io.read_raw(key, preload=False, verbose="error")
    except Exception as error:  # MNE raises many kinds for unreadable files
        raise FileFormatError(f"{key} could not be read as EEG by MNE: {error}") from error
    if not mne.pick_types(raw.info, eeg=True).size:
        raise FileFormatError(f"{key} has no EEG channel; expected at least one channel of type 'eeg'")
    yield raw


def _fingerprint(key: str) -> dict:
    if key.startswith(MOABB_PREFIX):
        return {"source": key}
    if key.startswith(BIDS_PREFIX):  # the recording's data and sidecar files
        run = find_bids_runs(key)[0]
        files = sorted(run.path.parent.glob(f"{run.basename}_*"))
        return {"source": key,
                "files": {p.name: [p.stat().st_size, p.stat().st_mtime] for p in files}}
    stat = Path(key).stat()
    return {"source": key, "size": stat.st_size, "mtime": stat.st_mtime}


def build_corpus(
    sources: Sequence[str | Path], cache_dir: str | Path, prep: Preprocessing = Preprocessing(),
    app_config: AppConfig | None = None,
) -> "EEGCorpus":
    """Preprocess every source into ``cache_dir`` (reusing unchanged parts); return the corpus.

    ``prep.live`` set (:func:`live_preprocessing`): the live way, with ``app_config`` (default:
    the app's default settings)."""
    if prep.live is not None:
        app_config = app_config or AppConfig()
        if live_preprocessing(app_config, prep.n_channels, prep.n_times) != prep:
            raise ConfigError("build_corpus: prep.live does not describe app_config; make both "
                              "with live_preprocessing(app_config, ...)")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = cache_dir / MANIFEST
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    reusable = {}
    if old.get("preprocessing") == asdict(prep):
        reusable = {json.dumps(p["fingerprint"], sort_keys=True): p for p in old.get("parts", [])}
    parts = []
    for number, key in enumerate(expand_sources(sources)):
        fingerprint = _fingerprint(key)
        previous = reusable.get(json.dumps(fingerprint, sort_keys=True))
        if previous is not None and (cache_dir / previous["array"]).is_file():
            parts.append(previous)
            continue
        if prep.live is not None:
            windows = live_windows(key, prep, app_config)
            if not len(windows):
                logger.warning("%s: no complete window without NaN/Inf (shorter than %g s?): "
                               "left out", key, app_config.window.offset + app_config.window.length)
                continue
        else:
            windows = np.concatenate([preprocess_raw(raw, prep) for raw in _read_source(key)])
        array_name = f"{number:05d}.npy"
        np.save(cache_dir / array_name, windows)
        parts.append({"fingerprint": fingerprint, "array": array_name, "n_windows": len(windows)})
        logger.info("cached %d windows of %s", len(windows), key)
    if not parts:
        raise ConfigError(f"{', '.join(map(str, sources))}: no window to pretrain on (every file "
                          "is shorter than one window or all NaN/Inf)")
    manifest_path.write_text(json.dumps({"preprocessing": asdict(prep), "parts": parts}, indent=1))
    return EEGCorpus(cache_dir)


class EEGCorpus(torch.utils.data.Dataset):
    """Cached pretraining windows (see :func:`build_corpus`); items ``{"eeg": [C, T] float32}``."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.cache_dir = Path(cache_dir)
        manifest_path = self.cache_dir / MANIFEST
        if not manifest_path.is_file():
            raise FileFormatError(f"{manifest_path} does not exist; build the cache with build_corpus() first")
        manifest = json.loads(manifest_path.read_text())
        self.prep = Preprocessing(**manifest["preprocessing"])
        self.arrays = []
        for part in manifest["parts"]:
            path = self.cache_dir / part["array"]
            if not path.is_file():
                raise FileFormatError(f"{path} is missing from the cache; rebuild it with build_corpus()")
            self.arrays.append(np.load(path, mmap_mode="r"))  # [n_windows, C, T]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])

    @property
    def n_channels(self) -> int:
        return self.prep.n_channels

    @property
    def n_times(self) -> int:
        return self.prep.n_times

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} windows")
        part = int(np.searchsorted(self.offsets, index, side="right")) - 1
        window = np.array(self.arrays[part][index - self.offsets[part]])  # [C, T], copied out of the memmap
        return {"eeg": torch.from_numpy(window)}

    def __repr__(self) -> str:
        return (
            f"<EEGCorpus | {len(self)} windows of {self.n_channels} x {self.n_times} "
            f"from {len(self.arrays)} sources ({self.cache_dir})>"
        )
