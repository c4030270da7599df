"""The exceptions drumtx raises for problems a user can fix.

cli.main prints a DrumtxError as an ``error:`` line plus a ``hint:`` line and exits with
the error's ``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class DrumtxError(Exception):
    """Base class: a message for the user, an optional next step, an exit code."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(DrumtxError):
    """drumtx.toml, a profile, a --set override or a command-line value is wrong."""

    exit_code = 2


class StorageError(DrumtxError):
    """A storage root is missing, unreadable, read-only or short of space."""

    exit_code = 3


class AudioError(DrumtxError):
    """An audio file cannot be decoded or holds unusable samples."""


class DataError(DrumtxError):
    """A dataset index, MIDI file or processed store is malformed or inconsistent."""


class CheckpointError(DrumtxError):
    """A checkpoint is missing, truncated, foreign, or from an incompatible version."""
