"""The dispatcher's exception hierarchy."""

from __future__ import annotations

from edgeloop.errors import EdgeloopError


class DispatchError(EdgeloopError):
    """Root of the rules dispatcher's errors."""


class RuleNotFoundError(DispatchError):
    """A rule name that has no rule file."""


class RuleExistsError(DispatchError):
    """Creating a rule whose file already exists."""


class JournalError(DispatchError):
    """The journal directory cannot be opened or written."""


class ActionError(DispatchError):
    """One action attempt failed; `retryable` says whether another attempt may succeed."""

    def __init__(self, message: str, code: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable
