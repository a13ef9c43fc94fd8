"""Where the window remembers things (QSettings), and what it remembers.

By default only view preferences are kept between runs: the layout (window geometry, dock,
splitters, picture-first or signals-first), the trace span and scale, filtered or raw, and
per-channel gains. The setup (source, filter, windows, model, recording) is kept only when the
user ticks *Settings → Remember this setup*; a setting given on the command line still wins.
"""

from __future__ import annotations

from PySide6 import QtCore

ORGANIZATION = "dd-live"
APPLICATION = "dd-live"
REMEMBER_SETUP_KEY = "setup/remember"


def default_settings() -> QtCore.QSettings:
    """The user's remembered settings (organisation and application ``dd-live``)."""
    return QtCore.QSettings(ORGANIZATION, APPLICATION)


def remembers_setup(settings: QtCore.QSettings) -> bool:
    return str(settings.value(REMEMBER_SETUP_KEY, "false")).lower() == "true"


def reset_settings(settings: QtCore.QSettings | None = None) -> str:
    """Forget everything remembered; returns the settings file's path (for a message)."""
    settings = settings if settings is not None else default_settings()
    settings.clear()
    settings.sync()
    return settings.fileName()
