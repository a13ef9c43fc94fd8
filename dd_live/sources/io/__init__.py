"""File readers: any supported recording into a :class:`Recording` in memory, one module per
format (as MNE lays out ``mne/io``), behind one entry, :func:`read_recording`.

:func:`read_recording` loads a file (or a dd-live session folder) into volts,
``(n_channels, n_times)``, with its annotations and what the reader found on the way
(:class:`FileEvent`: dropped packets as ``"gap"``, markers outside the data as ``"notice"``);
:class:`~dd_live.sources.replay.ReplaySource` streams a :class:`Recording` as if live.

=====================  ====================================================================
module                 reads
=====================  ====================================================================
``base``               nothing: :class:`Recording`, :class:`FileEvent`, the format table
``read``               :func:`read_recording`: picks the reader, one-line errors
``mne_raw``            FIF, EDF, BDF, GDF, BrainVision, EEGLAB, Neuroscan CNT (through MNE)
``edf``                the EDF/BDF header fields MNE does not check
``stim``               trigger channels into markers (MNE formats and XDF)
``session``            dd-live session folders (their EEG file, markers and recorded gaps)
``xdf``                XDF / XDFZ (pyxdf), over ``xdf_chunks``, the chunk walk before it
``openbci``            OpenBCI GUI text files (``%OpenBCI`` first line)
``brainflow_csv``      BrainFlow CSV files (``board=`` says whose)
=====================  ====================================================================

A module here imports only ``base`` and the modules below it in this table's order of use
(``read`` imports the readers, no reader imports ``read``): no cycles. A damaged file is a
one-line :class:`~dd_live.errors.FileFormatError` naming the file and what is wrong with it.
"""

from dd_live.sources.io.base import MNE_FORMATS, SUPPORTED, FileEvent, Recording
from dd_live.sources.io.read import read_recording
from dd_live.sources.io.xdf import one_hot_annotations

__all__ = ["MNE_FORMATS", "SUPPORTED", "FileEvent", "Recording", "one_hot_annotations",
           "read_recording"]
