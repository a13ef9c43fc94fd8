"""BrainFlow CSV files (what ``DataFilter.write_file`` writes): one tab-separated row per
sample, the board's rows as columns; which columns are EEG comes from the board's id."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dd_live.errors import FileFormatError
from dd_live.sources.io.base import Recording
from dd_live.sources.units import MICROVOLT, check_amplitude


def read_brainflow_csv(path: Path, board: int | str) -> Recording:
    from brainflow.board_shim import BoardShim

    from dd_live.sources.brainflow import resolve_board_id

    board_id = resolve_board_id(board)
    # rows on disk are samples: transpose to (n_rows, n_times)
    table = np.loadtxt(path, delimiter="\t", ndmin=2).T
    eeg_rows = BoardShim.get_eeg_channels(board_id)
    if table.shape[0] <= max(eeg_rows):
        raise FileFormatError(
            f"{path.name} has {table.shape[0]} columns, too few for board {board_id} "
            f"(EEG in rows {eeg_rows}): is board= the board that recorded it?"
        )
    try:
        names = tuple(BoardShim.get_eeg_names(board_id))
    except Exception:  # boards without channel names
        names = ()
    if len(names) != len(eeg_rows):
        names = tuple(f"EEG{i + 1}" for i in range(len(eeg_rows)))
    data = table[eeg_rows] * MICROVOLT
    check_amplitude(data, path.name)
    return Recording(
        data=data,
        sfreq=float(BoardShim.get_sampling_rate(board_id)),
        ch_names=names,
        ch_types=("eeg",) * len(names),
        units=("V",) * len(names),
        annotations=(),
        name=path.name,
        source=str(path),
    )
