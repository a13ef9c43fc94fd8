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
