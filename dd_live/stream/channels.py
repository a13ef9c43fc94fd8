"""Mapping the channels of a device onto the channels a model was trained with.

Two methods, both a fixed ``(n_target, n_source)`` linear map computed once:

- ``"replicate"`` (the reference's way): channels matched by name where target names are
  given; the missing ones (or all, for an integer target) are filled by cycling through the
  source channels, as the reference tiles channels up to 128.
- ``"spline"``: channels missing from the source are interpolated by MNE's spherical splines
  from the positions of a standard montage.
"""

from __future__ import annotations

import logging
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
                    "(target=[...names...]) to know where to interpolate; with only a count "
                    "use method='replicate'"
                )
            self._index = np.arange(n_target) % n_source
            self._matrix = None
            self._n_matched = min(n_source, n_target)
            return

        lookup = {name.lower(): i for i, name in enumerate(self._source_names)}
        matched = [lookup.get(name.lower()) for name in self._target_names]
        self._n_matched = sum(i is not None for i in matched)
        missing = [j for j, i in enumerate(matched) if i is None]
        if method == "replicate":
            for k, j in enumerate(missing):
                matched[j] = k % n_source
            self._index = np.asarray(matched, dtype=np.intp)
            self._matrix = None
            if missing:
                logger.info(
                    "ChannelMapper: %d of %d target channels filled by replicating source channels",
                    len(missing),
                    n_target,
                )
            return
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
    missing = [j for j, i in enumerate(matched) if i is None]
    needed = list(source_names) + [target_names[j] for j in missing]
    unknown = [name for name in needed if name.lower() not in canonical]
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
    names = [canonical[name.lower()] for name in needed]
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
