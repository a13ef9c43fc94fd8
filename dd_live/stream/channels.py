"""Mapping the channels of a device onto the channels a model was trained with.

Two methods, both a fixed ``(n_target, n_source)`` linear map computed once:

- ``"replicate"`` (the reference's way): channels matched by name where target names are
  given; the missing ones (or all, for an integer target) are filled by cycling through the
  source channels, as the reference tiles channels up to 128.
- ``"spline"``: channels missing from the source are interpolated by MNE's spherical splines
  from the positions of a standard montage.

Names match case-insensitively, after dropping the decorations files add (``"EEG Fp1-REF"``
is ``Fp1``), and with the old and new 10-20 names of the temporal electrodes as aliases
(T3/T7, T4/T8, T5/P7, T6/P8). :func:`looks_non_eeg` tells EOG, ECG, EMG, mastoid and trigger
channels apart from EEG by name, for files that type every channel "eeg".

:class:`ChannelRepair` replaces bad channels from the good ones: spherical splines when the
channels have standard 10-20/10-05 names (positions from MNE's standard montage), otherwise
the mean of the good channels.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import numpy as np

from dd_live.errors import MontageError

logger = logging.getLogger(__name__)

METHODS = ("replicate", "spline")
DEFAULT_MONTAGE = "colin27_1005"
# MNE 1.13 renamed the standard montages; the old names still work through this table
MONTAGE_ALIASES = {
    "standard_1005": "colin27_1005",
    "standard_1020": "colin27_1020",
    "standard_alphabetic": "colin27_alphabetic",
    "standard_postfixed": "colin27_postfixed",
    "standard_prefixed": "colin27_prefixed",
    "standard_primed": "colin27_primed",
}


# the temporal electrodes' 10-20 names (T3...) and their 10-10 names (T7...), both ways
ALIASES = {"t3": "t7", "t4": "t8", "t5": "p7", "t6": "p8"}
ALIASES.update({new: old for old, new in list(ALIASES.items())})
_PREFIX = re.compile(r"^(eeg)[\s_:-]+", re.IGNORECASE)
_SUFFIX = re.compile(r"[\s_-]+(ref|le|re|avg|ar|cz|a1|a2|m1|m2|a1a2|m1m2|lm|rm)$", re.IGNORECASE)
_NON_EEG = re.compile(
    r"(eog|ecg|ekg|emg|resp|gsr|eda|accel|acc[xyz]?$|gyro|status|trig|^sti|^stim|marker|"
    r"counter|mastoid|^(m1|m2|a1|a2|lm|rm)$|^aux|photo|^temp|batt|analog|digital|"
    r"^sample|^time|^sync|pulse|ppg|spo2)",
    re.IGNORECASE,
)
SPLINE_STIFFNESS = 4
SPLINE_TERMS = 50
SPLINE_ALPHA = 1e-5
REPAIR_METHODS = ("spline", "mean")


def normalize_name(name: str) -> str:
    """``"EEG Fp1-REF"`` -> ``"fp1"``: lower case, file decorations dropped."""
    name = _PREFIX.sub("", name.strip())
    return _SUFFIX.sub("", name).strip().lower()


def looks_non_eeg(name: str) -> bool:
    """True for names of EOG, ECG, EMG, mastoid/ear reference, trigger and sensor channels."""
    return bool(_NON_EEG.search(normalize_name(name)))


def _find(lookup: dict[str, int], name: str) -> tuple[int | None, str]:
    """Index of ``name`` in ``lookup`` (normalised names), and how it matched."""
    key = normalize_name(name)
    if key in lookup:
        return lookup[key], "name"
    if ALIASES.get(key) in lookup:
        return lookup[ALIASES[key]], "alias"
    return None, ""


class ChannelMapper:
    """``(n_source, n_times) -> (n_target, n_times)`` by a matrix computed once.

    Args:
        source_names: the names of the incoming channels (EEG only), in order.
        target: the model's channel count, or its channel names in order.
        method: ``"replicate"`` or ``"spline"`` (needs target names).
        montage: for ``"spline"``: an MNE built-in montage name or a ``DigMontage``
            (default ``DEFAULT_MONTAGE``).
    """

    def __init__(
        self,
        source_names: Sequence[str],
        target: int | Sequence[str],
        method: str = "replicate",
        montage=None,
    ) -> None:
        if method not in METHODS:
            raise MontageError(f"ChannelMapper: method must be one of {METHODS}, got {method!r}")
        self._source_names = tuple(source_names)
        if not self._source_names:
            raise MontageError("ChannelMapper: the source has no channels to map from")
        if isinstance(target, int | np.integer):
            if target < 1:
                raise MontageError(f"ChannelMapper: target must be >= 1 channels, got {target}")
            self._target_names: tuple[str, ...] | None = None
            n_target = int(target)
        else:
            self._target_names = tuple(target)
            n_target = len(self._target_names)
        self._method = method

        n_source = len(self._source_names)
        if self._target_names is None:
            if method == "spline":
                raise MontageError(
                    "ChannelMapper: method='spline' needs the model's channel names "
                    "(target=[...names...]; in dd-live: [channels] model_names, or a model "
                    "folder whose dd_live.json lists \"channels\") to know where to "
                    "interpolate; with only a count use method='replicate'"
                )
            self._index = np.arange(n_target) % n_source
            self._matrix = None
            self._n_matched = min(n_source, n_target)
            self._how = ["count" if j < n_source else "replicated" for j in range(n_target)]
            return

        lookup: dict[str, int] = {}
        for i, name in enumerate(self._source_names):
            lookup.setdefault(normalize_name(name), i)
        found = [_find(lookup, name) for name in self._target_names]
        matched = [i for i, _ in found]
        self._how = [how or "" for _, how in found]
        self._n_matched = sum(i is not None for i in matched)
        missing = [j for j, i in enumerate(matched) if i is None]
        if method == "replicate":
            for k, j in enumerate(missing):
                matched[j] = k % n_source
                self._how[j] = "replicated"
            self._index = np.asarray(matched, dtype=np.intp)
            self._matrix = None
            if missing:
                logger.info(
                    "ChannelMapper: %d of %d target channels filled by replicating source channels",
                    len(missing),
                    n_target,
                )
            return
        for j in missing:
            self._how[j] = "interpolated"
        self._index = None
        self._matrix = _spline_matrix(self._source_names, self._target_names, matched, montage)

    def __call__(self, data: np.ndarray) -> np.ndarray:
        """``(n_source, n_times)`` -> ``(n_target, n_times)``."""
        if data.ndim != 2 or data.shape[0] != len(self._source_names):
            raise MontageError(
                f"ChannelMapper: expected ({len(self._source_names)} channels, n_times) "
                f"named {self._source_names[:4]}..., got shape {data.shape}: the stream's "
                "channels changed since the mapper was built; build a new one"
            )
        if self._matrix is not None:
            return self._matrix @ data
        return data[self._index]

    @property
    def matrix(self) -> np.ndarray:
        """The map as ``(n_target, n_source)``."""
        if self._matrix is not None:
            return self._matrix.copy()
        matrix = np.zeros((self.n_target, self.n_source))
        matrix[np.arange(self.n_target), self._index] = 1.0
        return matrix

    def describe(self) -> list[tuple[str, str, str]]:
        """One ``(model channel, what feeds it, how)`` per target channel, in order.

        ``how``: ``"name"`` / ``"alias"`` (matched by name), ``"count"`` (by position),
        ``"replicated"`` (a copy of a source channel, cycling), ``"interpolated"`` (spline:
        "what feeds it" names the source channels weighing most).
        """
        rows = []
        for j in range(self.n_target):
            label = self._target_names[j] if self._target_names is not None else f"#{j}"
            how = self._how[j]
            if self._index is not None:
                source = self._source_names[self._index[j]]
            elif how == "interpolated":
                weights = self._matrix[j]
                top = np.argsort(-np.abs(weights))[:3]
                source = "+".join(self._source_names[i] for i in top)
            else:
                source = self._source_names[int(np.argmax(self._matrix[j]))]
            rows.append((label, source, how))
        return rows

    def describe_text(self) -> str:
        """The mapping in one readable paragraph, for the log and the window."""
        rows = self.describe()
        direct = [f"{src}->{label}" if src != label else label
                  for label, src, how in rows if how in ("name", "alias", "count")]
        copied = [f"{label}<-{src}" for label, src, how in rows if how == "replicated"]
        interp = [label for label, _, how in rows if how == "interpolated"]
        used = self.used
        unused = [n for i, n in enumerate(self._source_names) if i not in set(used.tolist())]
        parts = [f"{len(direct)} of {self.n_target} model channels fed directly"
                 + (f" ({_short(direct)})" if direct else "")]
        if copied:
            parts.append(f"{len(copied)} copies of source channels ({_short(copied)})")
        if interp:
            parts.append(f"{len(interp)} interpolated ({_short(interp)})")
        if unused:
            parts.append(f"{len(unused)} source channel(s) not used ({_short(unused)})")
        return "; ".join(parts)

    @property
    def used(self) -> np.ndarray:
        """Indices of the source channels the map reads (non-zero columns), ascending."""
        if self._index is not None:
            return np.unique(self._index)
        return np.flatnonzero(np.abs(self._matrix).sum(axis=0) > 0)

    @property
    def method(self) -> str:
        return self._method

    @property
    def n_source(self) -> int:
        return len(self._source_names)

    @property
    def n_target(self) -> int:
        if self._target_names is not None:
            return len(self._target_names)
        return len(self._index)

    @property
    def n_matched(self) -> int:
        """Target channels that are real source channels (matched by name, or tiled once)."""
        return self._n_matched

    @property
    def source_names(self) -> tuple[str, ...]:
        return self._source_names

    @property
    def target_names(self) -> tuple[str, ...] | None:
        return self._target_names

    def __repr__(self) -> str:
        return (
            f"<ChannelMapper: {self._method} | {self.n_source} -> {self.n_target} channels, "
            f"{self._n_matched} matched>"
        )


def _spline_matrix(
    source_names: tuple[str, ...],
    target_names: tuple[str, ...],
    matched: list[int | None],
    montage,
) -> np.ndarray:
    """``(n_target, n_source)``: one-hot rows for matched channels, spline weights for the rest.

    MNE's public ``interpolate_bads`` is run on an identity signal (source channel ``i`` is 1
    at sample ``i``), so each interpolated row comes out as its weights over the sources.
    """
    import mne  # MNE is slow to import; only the spline mapper needs it

    montage = _load_montage(montage)
    positions = montage.get_positions()["ch_pos"]
    canonical = {name.lower(): name for name in positions}
    for alias, name in ALIASES.items():
        if alias not in canonical and name in canonical:
            canonical[alias] = canonical[name]
    missing = [j for j, i in enumerate(matched) if i is None]
    needed = list(source_names) + [target_names[j] for j in missing]
    unknown = [name for name in needed if normalize_name(name) not in canonical]
    if unknown:
        raise MontageError(
            f"ChannelMapper: no position for channel(s) {', '.join(unknown)} in the montage "
            f"(it knows e.g. {', '.join(list(positions)[:6])}...): rename the channels to "
            "10-05 names, pass a montage that has them, or use method='replicate'"
        )
    if not missing:
        matrix = np.zeros((len(target_names), len(source_names)))
        matrix[np.arange(len(target_names)), matched] = 1.0
        return matrix

    n_source = len(source_names)
    names = [canonical[normalize_name(name)] for name in needed]
    if len(set(names)) != len(names):
        raise MontageError(
            "ChannelMapper: two channels have the same position "
            f"({', '.join(sorted({n for n in names if names.count(n) > 1}))}): rename or "
            "exclude one ([channels] exclude), or use method='replicate'"
        )
    info = mne.create_info(names, sfreq=1.0, ch_types="eeg")
    identity = np.vstack([np.eye(n_source), np.zeros((len(missing), n_source))])
    raw = mne.io.RawArray(identity, info, verbose=False)
    raw.set_montage(montage, verbose=False)
    raw.info["bads"] = names[n_source:]
    raw.interpolate_bads(reset_bads=True, verbose=False)
    weights = raw.get_data()[n_source:]

    matrix = np.zeros((len(target_names), n_source))
    for j, i in enumerate(matched):
        if i is not None:
            matrix[j, i] = 1.0
    matrix[missing] = weights
    return matrix


def _load_montage(montage):
    import mne

    if montage is None:
        montage = DEFAULT_MONTAGE
    if not isinstance(montage, str):
        return montage
    builtin = mne.channels.get_builtin_montages()
    name = MONTAGE_ALIASES.get(montage, montage)
    if name not in builtin:
        name = montage
    if name not in builtin:
        raise MontageError(
            f"ChannelMapper: unknown montage {montage!r}; MNE knows {', '.join(builtin)}"
        )
    return mne.channels.make_standard_montage(name)


def _short(items: Sequence[str], n: int = 12) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def standard_positions(names: Sequence[str], montage=None) -> np.ndarray | None:
    """Unit vectors ``(n_channels, 3)`` from the centre of the head sphere, for channels with
    standard 10-20/10-05 names; None when any name has no standard position."""
    montage = _load_montage(montage)
    positions = montage.get_positions()["ch_pos"]
    lookup = {name.lower(): np.asarray(xyz, float) for name, xyz in positions.items()}
    rows = []
    for name in names:
        key = normalize_name(name)
        xyz = lookup.get(key, lookup.get(ALIASES.get(key, "")))
        if xyz is None or not np.isfinite(xyz).all():
            return None
        rows.append(xyz)
    everything = np.array([xyz for xyz in lookup.values() if np.isfinite(xyz).all()])
    centre = _fit_sphere_centre(everything)
    rows = np.asarray(rows) - centre
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _fit_sphere_centre(points: np.ndarray) -> np.ndarray:
    """Least-squares centre of a sphere through ``points`` ``(n, 3)``."""
    a = np.c_[2 * points, np.ones(len(points))]
    b = (points**2).sum(axis=1)
    solution, *_ = np.linalg.lstsq(a, b, rcond=None)
    return solution[:3]


def _legendre_g(cosang: np.ndarray) -> np.ndarray:
    """Perrin et al. (1989) spherical spline kernel g(cos angle), m = 4."""
    n = np.arange(1, SPLINE_TERMS + 1)
    factors = (2 * n + 1) / (n**SPLINE_STIFFNESS * (n + 1) ** SPLINE_STIFFNESS * 4 * np.pi)
    return np.polynomial.legendre.legval(np.clip(cosang, -1, 1), np.r_[0.0, factors])


def spline_weights(pos_from: np.ndarray, pos_to: np.ndarray) -> np.ndarray:
    """``(n_to, n_from)`` spherical-spline interpolation weights between unit vectors.

    Args:
        pos_from: ``(n_from, 3)`` unit vectors of the channels with data.
        pos_to: ``(n_to, 3)`` unit vectors of the channels to estimate.
    """
    n_from = len(pos_from)
    g_from = _legendre_g(pos_from @ pos_from.T)
    g_from.flat[:: n_from + 1] += SPLINE_ALPHA
    c = np.zeros((n_from + 1, n_from + 1))
    c[:n_from, :n_from] = g_from
    c[:n_from, n_from] = c[n_from, :n_from] = 1.0
    c_inv = np.linalg.pinv(c)
    g_to = np.c_[_legendre_g(pos_to @ pos_from.T), np.ones(len(pos_to))]
    return g_to @ c_inv[:, :n_from]


class ChannelRepair:
    """Replaces bad rows of ``(n_channels, n_times)`` from the good ones.

    Args:
        ch_names: the rows' names.
        method: ``"spline"`` (needs standard positions for every name) or ``"mean"``;
            None picks spline when the names give positions, else the mean (logged).
        montage: an MNE montage name or ``DigMontage`` for the positions.
    """

    def __init__(self, ch_names: Sequence[str], method: str | None = None, montage=None) -> None:
        if method is not None and method not in REPAIR_METHODS:
            raise MontageError(
                f"ChannelRepair: method must be one of {REPAIR_METHODS} or None, got {method!r}"
            )
        self._ch_names = tuple(ch_names)
        self._positions = None
        if method in (None, "spline"):
            self._positions = standard_positions(self._ch_names, montage)
            if self._positions is None and method == "spline":
                raise MontageError(
                    "ChannelRepair: spline interpolation needs standard 10-20/10-05 names; "
                    f"these have none for some of {', '.join(self._ch_names[:8])}: use 'mean'"
                )
        self._method = "spline" if self._positions is not None else "mean"
        self._cache: dict[tuple[int, ...], np.ndarray] = {}

    def weights(self, bad: Sequence[int]) -> np.ndarray:
        """``(n_bad, n_good)`` weights of the good channels (ascending) for the bad ones."""
        key = tuple(sorted(int(ch) for ch in bad))
        if key not in self._cache:
            good = [ch for ch in range(len(self._ch_names)) if ch not in set(key)]
            if not good:
                raise MontageError("ChannelRepair: every channel is bad; nothing to repair from")
            if self._method == "spline" and len(good) >= 3:
                w = spline_weights(self._positions[good], self._positions[list(key)])
            else:
                w = np.full((len(key), len(good)), 1.0 / len(good))
            self._cache[key] = w
        return self._cache[key]

    def __call__(self, data: np.ndarray, bad: Sequence[int]) -> np.ndarray:
        """A copy of ``data`` ``(n_channels, n_times)`` with the ``bad`` rows replaced."""
        out = np.array(data, dtype=np.float64)
        if len(bad) == 0:
            return out
        key = tuple(sorted(int(ch) for ch in bad))
        good = [ch for ch in range(len(self._ch_names)) if ch not in set(key)]
        out[list(key)] = self.weights(key) @ out[good]
        return out

    @property
    def method(self) -> str:
        """``"spline"`` or ``"mean"``."""
        return self._method

    def __repr__(self) -> str:
        return f"<ChannelRepair: {self._method} over {len(self._ch_names)} channels>"
