"""Exceptions of dd-live. Every message says what was wrong and how to fix it."""


class DDLiveError(Exception):
    """Base class of every error dd-live raises on purpose."""


class ConfigError(DDLiveError, ValueError):
    """A setting is out of range or of the wrong kind."""


class SourceError(DDLiveError):
    """A source could not be opened or stopped delivering data."""


class StreamNotFoundError(SourceError):
    """No LSL stream (or board) matched what was asked for."""


class FileFormatError(SourceError, ValueError):
    """A file is missing, truncated, garbled or of an unsupported kind."""


class MontageError(DDLiveError, ValueError):
    """Channels or sampling rate of the data do not fit what the model expects."""


class CheckpointError(DDLiveError, ValueError):
    """A checkpoint is missing, unsafe or does not match the model."""


class GenerationError(DDLiveError):
    """The image generator could not be set up or failed while sampling."""


class MissingExtraError(DDLiveError, ImportError):
    """A feature needs an optional dependency group (a pip "extra") that is not installed."""


def require_extra(module: str, extra: str, feature: str, *, target: str = "dd-live") -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless ``module`` can be imported.

    ``feature`` says what needs it, e.g. ``"retrieval mode"``; the message says how to install
    it: ``pip install '<target>[<extra>]'`` (``target="-e ."`` for code run from a checkout).
    """
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise MissingExtraError(
            f"{feature} needs the '{module}' package, which is not installed; "
            f"install the extra: pip install {_quoted(target, extra)}"
        )


def _quoted(target: str, extra: str) -> str:
    if target.startswith("-e "):
        return f"-e '{target[3:]}[{extra}]'"
    return f"'{target}[{extra}]'"
