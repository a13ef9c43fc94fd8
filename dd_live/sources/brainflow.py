"""BrainFlow boards as a :class:`Source`: real headsets, the synthetic board (-1) and the
playback-file board (-3).

Only the EEG rows are delivered, converted from BrainFlow's microvolts to volts. Timestamps
are the board's own (seconds, Unix clock) put through a running linear fit of sample count ->
time (:class:`~dd_live.sources.clock.Dejitterer`): BrainFlow stamps each package when it
parses it, so bursts from a dongle jitter by tens of ms. Samples missing are counted by the
board's package counter (0-255, e.g. Cyton's sample index) when it has one, else found from
the dejittered clock; both become ``"gap"`` events.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from dd_live.errors import ConfigError, SourceError
from dd_live.sources.base import Source, StreamInfo, empty_chunk
from dd_live.sources.clock import Dejitterer, SampleCounter, break_events

logger = logging.getLogger(__name__)

MICROVOLT = 1e-6
RING_SECONDS = 60  # BrainFlow's own buffer, in seconds of samples
PLAYBACK_BOARD_ID = -3
SYNTHETIC_BOARD_ID = -1
COUNTER_MODULUS = 256  # BrainFlow's package counters are one byte
NO_MASTER_BOARD = -100  # BrainFlowInputParams' "unset" value of master_board
PARAM_KEYS = (
    "serial_port",
    "mac_address",
    "ip_address",
    "ip_address_aux",
    "ip_address_anc",
    "ip_port",
    "ip_port_aux",
    "ip_port_anc",
    "ip_protocol",
    "other_info",
    "timeout",
    "serial_number",
    "file",
    "file_aux",
    "file_anc",
    "master_board",
)
INT_PARAM_KEYS = ("ip_port", "ip_port_aux", "ip_port_anc", "ip_protocol", "timeout", "master_board")
HOW_TO_LIST = "run `dd-live devices --all-boards` to list the board ids and names BrainFlow knows"


def _board_shim():
    # imported lazily: brainflow loads native libraries and warns about pkg_resources
    from brainflow import board_shim

    return board_shim


def resolve_board_id(board: int | str) -> int:
    """A BrainFlow board id from an id (``-1``, ``"0"``) or a name (``"cyton"``, ``"SYNTHETIC_BOARD"``)."""
    board_ids = _board_shim().BoardIds
    valid = {member.value: member.name for member in board_ids}
    if isinstance(board, str):
        text = board.strip()
        try:
            board = int(text)
        except ValueError:
            key = text.upper().replace("-", "_").replace(" ", "_")
            for candidate in (key, f"{key}_BOARD"):
                if candidate in board_ids.__members__:
                    return int(board_ids[candidate].value)
            raise ConfigError(
                f"unknown BrainFlow board name {text!r}; {HOW_TO_LIST} "
                "(names are case-insensitive, e.g. 'synthetic', 'cyton', 'ganglion')"
            ) from None
    if int(board) not in valid:
        raise ConfigError(f"unknown BrainFlow board id {board}; {HOW_TO_LIST}")
    return int(board)


def board_name(board_id: int) -> str:
    return _board_shim().BoardIds(board_id).name


def _input_params(params: dict | None):
    board_shim = _board_shim()
    inputs = board_shim.BrainFlowInputParams()
    for key, value in (params or {}).items():
        if key not in PARAM_KEYS:
            raise ConfigError(
                f"unknown BrainFlow parameter {key!r}; valid ones: {', '.join(PARAM_KEYS)}"
            )
        if key == "master_board":
            value = resolve_board_id(value)
        elif key in INT_PARAM_KEYS:
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"BrainFlow parameter {key} must be an integer, got {value!r}"
                ) from None
        else:
            value = str(value)
        setattr(inputs, key, value)
    return inputs


class BrainFlowSource(Source):
    """A BrainFlow board.

    Args:
        board: board id (``-1``), name (``"synthetic"``, ``"cyton"``; case-insensitive) or
            its string form.
        params: :class:`brainflow.BrainFlowInputParams` fields (``serial_port``,
            ``mac_address``, ``ip_address``, ``ip_port``, ``file``, ``master_board``...).
            The playback board (-3) needs ``file`` and ``master_board``.
        poll: seconds ``read()`` waits when the board has nothing new (at most).
        debug: keep BrainFlow's own logger on.
        dejitter: fit sample count -> time (True) or keep BrainFlow's stamps (False).
        config: ``config_board`` commands sent after connecting, separated by ``;`` (e.g.
            ``"old_timestamps;loopback_false"`` makes the playback board keep the file's
            timestamps and play once).

    ``info`` is known at construction (from the board's description); ``read()`` returns
    ``(n_eeg, n_times)`` volts and the board's timestamps.
    """

    def __init__(
        self,
        board: int | str = "synthetic",
        params: dict | None = None,
        *,
        poll: float = 0.01,
        debug: bool = False,
        dejitter: bool = True,
        config: str = "",
    ) -> None:
        super().__init__()
        board_shim = _board_shim()
        self.board_id = resolve_board_id(board)
        self.params = dict(params or {})
        self._inputs = _input_params(self.params)
        self.poll = poll
        self.debug = debug
        if debug:
            board_shim.BoardShim.enable_dev_board_logger()
        else:
            board_shim.BoardShim.disable_board_logger()
        self.descr_id = self.board_id
        if self.board_id == PLAYBACK_BOARD_ID:
            if not self._inputs.file or self._inputs.master_board == NO_MASTER_BOARD:
                raise ConfigError(
                    "the BrainFlow playback board (-3) needs params file=<BrainFlow CSV> and "
                    "master_board=<id of the board that recorded it>, e.g. "
                    "brainflow:-3?file=rec.csv&master_board=-1"
                )
            self.descr_id = self._inputs.master_board
        shim = board_shim.BoardShim
        self._eeg_rows = list(shim.get_eeg_channels(self.descr_id))
        self._timestamp_row = shim.get_timestamp_channel(self.descr_id)
        try:
            self._counter_row: int | None = shim.get_package_num_channel(self.descr_id)
        except board_shim.BrainFlowError:
            self._counter_row = None
        self.dejitter = dejitter
        self.config = [c.strip() for c in str(config).split(";") if c.strip()]
        try:
            names = tuple(shim.get_eeg_names(self.descr_id))
        except board_shim.BrainFlowError:
            names = ()
        if len(names) != len(self._eeg_rows):
            names = tuple(f"EEG{i + 1}" for i in range(len(self._eeg_rows)))
        self.info = StreamInfo(
            name=board_name(self.board_id),
            sfreq=float(shim.get_sampling_rate(self.descr_id)),
            ch_names=names,
            ch_types=("eeg",) * len(names),
            source_id=f"brainflow:{self.board_id}",
        )
        self._board = None

    def _start(self) -> None:
        board_shim = _board_shim()
        board = board_shim.BoardShim(self.board_id, self._inputs)
        try:
            board.prepare_session()
            for command in self.config:
                board.config_board(command)
            board.start_stream(int(RING_SECONDS * self.info.sfreq))
        except board_shim.BrainFlowError as err:
            if board.is_prepared():
                board.release_session()
            raise SourceError(self._explain(err)) from err
        self._board = board
        self._dejitterer = Dejitterer(self.info.sfreq) if self.dejitter else None
        self._counter = (SampleCounter(COUNTER_MODULUS, "package counter")
                         if self._counter_row is not None else None)
        logger.info("BrainFlow board %s streaming", self.info.name)

    @property
    def stall_hint(self) -> str:
        if self.board_id == SYNTHETIC_BOARD_ID:
            return "BrainFlow's synthetic board stopped delivering"
        if self.board_id == PLAYBACK_BOARD_ID:
            return f"BrainFlow's playback of {self._inputs.file} stopped delivering"
        return ("check that the board is switched on, charged and in range, and that its "
                "dongle or connection is still there")

    def _explain(self, err) -> str:
        name = f"BrainFlow board {self.info.name} (id {self.board_id})"
        codes = _board_shim().BrainFlowExitCodes
        port = self._inputs.serial_port
        if err.exit_code in (codes.UNABLE_TO_OPEN_PORT_ERROR, codes.SER_PORT_ERROR):
            return (
                f"{name} could not open serial port {port!r} ({err}). Check that the dongle is "
                "plugged in and the port is right (Linux: ls /dev/ttyUSB* /dev/ttyACM*; macOS: "
                "ls /dev/cu.*; Windows: COM3...), that no other program holds it, and that you "
                "may use it (Linux: add yourself to the 'dialout' group)."
            )
        if err.exit_code == codes.INVALID_ARGUMENTS_ERROR:
            return (
                f"{name} refused its parameters {self.params} ({err}). Most boards need a "
                "serial_port (e.g. brainflow:cyton?serial_port=/dev/ttyUSB0), a mac_address or "
                "an ip_address; see the BrainFlow docs of this board."
            )
        if err.exit_code in (codes.BOARD_NOT_READY_ERROR, codes.SYNC_TIMEOUT_ERROR):
            return (
                f"{name} did not answer ({err}). Is it switched on, charged and in range? "
                "Power-cycle the board and the dongle and try again."
            )
        return f"{name} could not start ({err}); parameters: {self.params}."

    def _stop(self) -> None:
        board, self._board = self._board, None
        if board is None:
            return
        board_shim = _board_shim()
        try:
            board.stop_stream()
        except board_shim.BrainFlowError as err:
            logger.warning("BrainFlow board %s: stop_stream failed: %s", self.info.name, err)
        finally:
            board.release_session()

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        board = self._board
        if board.get_board_data_count() == 0:
            time.sleep(self.poll)
            if board.get_board_data_count() == 0:
                return empty_chunk(self.info.n_channels)
        raw = board.get_board_data()  # (n_rows, n_times), clears BrainFlow's buffer
        data = raw[self._eeg_rows] * MICROVOLT
        stamps = np.ascontiguousarray(raw[self._timestamp_row], dtype=np.float64)
        if self._dejitterer is not None:
            missing = self._counter(raw[self._counter_row]) if self._counter is not None else None
            stamps, breaks = self._dejitterer(stamps, missing, COUNTER_MODULUS)
            self._report(stamps, breaks)
        return data, stamps

    def _report(self, stamps: np.ndarray, breaks) -> None:
        for event in break_events(breaks, stamps, self.info.sfreq,
                                  stream=f"BrainFlow board {self.info.name}",
                                  clock="the board's clock", counter="package counter",
                                  log=logger):
            self._push_event(event)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]} | board {self.board_id}>"
