"""One exception hierarchy for everything tradeloom raises on purpose.

Every message says what failed, where, why and what to do. The CLI turns a
:class:`TradeloomError` into one line on stderr and an exit code; anything else is a bug
and is shown with its traceback.
"""

from __future__ import annotations


class TradeloomError(Exception):
    """Base class of every error tradeloom raises deliberately."""

    exit_code: int = 1


class ConfigError(TradeloomError):
    """The deployment config or the command line is wrong. Exit code 2."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class PluginError(TradeloomError):
    """A plugin could not be loaded or contributed an invalid component."""

    exit_code = 2


class DataError(TradeloomError):
    """Input data is missing or fails the quality checks. Exit code 2: the input is wrong.

    ``field`` names the setting to fix when one is to blame: relative to the data component
    (``"params.path"``) or, for the period, absolute (``"run.start"``).
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(message)


class OrderStateError(TradeloomError):
    """An order was asked to make a transition its state machine does not allow."""


class RunError(TradeloomError):
    """A run failed while executing (e.g. a strategy raised). Exit code 1."""

    exit_code = 1
