"""The root of every component's exception hierarchy.

A user mistake raises a subclass of `EdgeloopError` whose message says what was wrong and what is
allowed; the CLI prints it on one line and exits non-zero, without a traceback.
"""


class EdgeloopError(Exception):
    """Base class for errors caused by input or state that a user can fix."""

    exit_code = 1


class ConfigError(EdgeloopError):
    """The configuration file or a flag is invalid."""
