"""One string names any source (DESIGN.md, "Command line").

=============================================  ==============================================
``synthetic`` / ``synthetic:STATE``            :class:`SyntheticSource` (optionally in a state)
``synthetic?viewer=1``                         a simulated person who sees calibration images
``brainflow:BOARD?serial_port=...``            :class:`BrainFlowSource`, board by id or name
``lsl:NAME`` / ``lsl-type:TYPE`` / ``lsl-id:ID``  :class:`LSLSource`
``file:PATH?speed=2&loop=1`` or a bare path    :class:`ReplaySource`
``bids:ROOT?subject=01&task=T&run=1``          :class:`ReplaySource` of one BIDS EEG recording
=============================================  ==============================================

Query parameters after ``?`` become keyword arguments (numbers and booleans are parsed);
keyword ``overrides`` given in code win over them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from dd_live.errors import ConfigError
from dd_live.sources.base import Source

ACCEPTED_FORMS = (
    "synthetic",
    "synthetic:STATE",
    "synthetic?viewer=1",
    "brainflow:BOARD[?serial_port=...&mac_address=...]",
    "lsl:NAME",
    "lsl-type:TYPE",
    "lsl-id:SOURCE_ID",
    "file:PATH[?speed=2&loop=1&stream=NAME]",
    "PATH (a recording or a session folder)",
    "bids:ROOT[?subject=..&session=..&task=..&run=..&speed=2]",
)
# query parameters of each kind that are options of the source, not BrainFlow input params
SYNTHETIC_OPTIONS = {
    "n_channels",
    "sfreq",
    "counter",
    "seed",
    "chunk_duration",
    "realtime",
    "amplitude",
    "viewer",
}
BRAINFLOW_OPTIONS = {"poll", "debug", "dejitter", "config"}
LSL_OPTIONS = {
    "timeout",
    "markers",
    "max_chunk",
    "recover",
    "watchdog",
    "poll",
    "stype",
    "source_id",
    "reconnect",
    "dejitter",
}
REPLAY_OPTIONS = {"speed", "loop", "chunk_duration", "start", "board", "stream"}
TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _bad_spec(spec: str, why: str) -> ConfigError:
    forms = "\n  ".join(ACCEPTED_FORMS)
    return ConfigError(f"bad source spec {spec!r}: {why}. Accepted forms:\n  {forms}")


def _parse_value(text: str):
    lowered = text.lower()
    if lowered in TRUE_WORDS - {"1"}:
        return True
    if lowered in FALSE_WORDS - {"0"}:
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _split_query(spec: str, body: str) -> tuple[str, dict]:
    target, _, query = body.partition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _bad_spec(
            spec, f"cannot parse the parameters {query!r} (use key=value&key=value)"
        ) from None
    return target, {key: _parse_value(value) for key, value in pairs}


def _options(spec: str, params: dict, allowed: set[str]) -> dict:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise _bad_spec(spec, f"unknown parameter(s) {unknown}; this kind takes {sorted(allowed)}")
    return params


def _as_bool(spec: str, options: dict, key: str) -> None:
    """Turn a yes/no parameter into a bool; any other word is refused (not taken as no)."""
    if key in options and not isinstance(options[key], bool):
        value = str(options[key]).lower()
        if value not in TRUE_WORDS | FALSE_WORDS:
            raise _bad_spec(spec, f"{key} must be one of {sorted(TRUE_WORDS | FALSE_WORDS)}, "
                                  f"got {options[key]!r}")
        options[key] = value in TRUE_WORDS


def open_source(spec: str, **overrides) -> Source:
    """The (not yet started) source a spec string names.

    Raises:
        ConfigError: the spec is malformed; the message lists the accepted forms.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _bad_spec(str(spec), "it is empty")
    spec = spec.strip()
    kind, sep, body = spec.partition(":")
    kind = kind.lower() if sep else ""
    if not sep and spec.partition("?")[0].lower() == "synthetic":
        kind, body = "synthetic", spec[len("synthetic") :]
    if kind == "synthetic":
        from dd_live.sources.synthetic import SyntheticSource

        state, params = _split_query(spec, body)
        options = _options(spec, params, SYNTHETIC_OPTIONS)
        for key in ("counter", "realtime", "viewer"):
            _as_bool(spec, options, key)
        if state:
            options["state"] = state
        return SyntheticSource(**{**options, **overrides})
    if kind == "brainflow":
        from dd_live.sources.brainflow import BrainFlowSource

        board, params = _split_query(spec, body)
        if not board:
            raise _bad_spec(spec, "no board given (brainflow:-1, brainflow:cyton...)")
        options = {k: params.pop(k) for k in list(params) if k in BRAINFLOW_OPTIONS}
        for key in ("debug", "dejitter"):
            _as_bool(spec, options, key)
        return BrainFlowSource(board, params or None, **{**options, **overrides})
    if kind in ("lsl", "lsl-type", "lsl-id"):
        from dd_live.sources.lsl import LSLSource

        target, params = _split_query(spec, body)
        if not target:
            raise _bad_spec(spec, f"no stream given after {kind}:")
        options = _options(spec, params, LSL_OPTIONS)
        for key in ("recover", "dejitter"):
            _as_bool(spec, options, key)
        key = {"lsl": "name", "lsl-type": "stype", "lsl-id": "source_id"}[kind]
        options[key] = target
        options = {**options, **overrides}
        return LSLSource(options.pop("name", None), **options)
    if kind == "bids":  # one recording of a BIDS data set, read through mne-bids
        from dd_live.sources.bids import BidsSelection, read_bids
        from dd_live.sources.replay import ReplaySource

        selection, params = BidsSelection.parse(spec, REPLAY_OPTIONS - {"board", "stream"})
        options = {key: _parse_value(value) for key, value in params.items()}
        _as_bool(spec, options, "loop")
        return ReplaySource(read_bids(selection), **{**options, **overrides})
    bare_path = not sep or len(kind) == 1 or "/" in kind or "\\" in kind  # C:\... too
    if kind == "file" or bare_path:
        from dd_live.sources.replay import ReplaySource

        path, params = _split_query(spec, body if kind == "file" else spec)
        if not path:
            raise _bad_spec(spec, "no path given after file:")
        if kind != "file" and not Path(path).exists():
            raise _bad_spec(spec, "it is no source kind, and no file or folder of that name "
                            "exists")
        options = _options(spec, params, REPLAY_OPTIONS)
        _as_bool(spec, options, "loop")
        return ReplaySource(path, **{**options, **overrides})
    raise _bad_spec(spec, f"unknown kind {kind!r}")
