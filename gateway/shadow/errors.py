"""The shadow component's exceptions.

`ShadowRejection` is a request the Device Shadow service refuses: it carries AWS's numeric code and message,
published on a `/rejected` topic over MQTT and mapped to an AWS error type over HTTP.
"""

from __future__ import annotations

from edgeloop.errors import EdgeloopError


class ShadowError(EdgeloopError):
    """Base class of every shadow-service error."""


class ShadowRejection(ShadowError):
    """A refused shadow request: `code` is the HTTP-style status AWS puts in the error document."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class ShadowStoreError(ShadowError):
    """The shadow database could not be opened or written."""


def bad_request(message: str) -> ShadowRejection:
    return ShadowRejection(400, message)


def not_found(name: str) -> ShadowRejection:
    """AWS's 404 text names the shadow in quotes (the thing name for a classic shadow)."""
    return ShadowRejection(404, f"No shadow exists with name: '{name}'")


VERSION_CONFLICT = 409, "Version conflict"
TOO_LARGE = 413, "The payload exceeds the maximum size allowed"
UNSUPPORTED_ENCODING = 415, "Unsupported documented encoding; supported encoding is UTF-8"
TOO_MANY_REQUESTS = 429, "Too Many Requests"
INTERNAL_FAILURE = 500, "Internal service failure"


def rejection(pair: tuple[int, str]) -> ShadowRejection:
    return ShadowRejection(*pair)
