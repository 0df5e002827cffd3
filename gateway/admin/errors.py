"""The admin API's exception hierarchy: each error knows the HTTP status and code it is answered with."""

from __future__ import annotations

from typing import Any

from edgeloop.errors import EdgeloopError


class AdminError(EdgeloopError):
    """Root of the admin API's errors; answered as ``{"error": {"code", "message"}}`` with `status`."""

    status = 500
    code = "InternalError"

    def __init__(self, message: str, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details  # extra members of the error object (e.g. line and column of an SQL error)
        if code is not None:
            self.code = code

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.details}}


class BadRequest(AdminError):
    status = 400
    code = "BadRequest"


class Unauthenticated(AdminError):
    status = 401
    code = "Unauthenticated"


class NotFound(AdminError):
    status = 404
    code = "NotFound"


class MethodNotAllowed(AdminError):
    status = 405
    code = "MethodNotAllowed"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Conflict(AdminError):
    status = 409
    code = "Conflict"


class PayloadTooLarge(AdminError):
    status = 413
    code = "PayloadTooLarge"


class Unavailable(AdminError):
    status = 503
    code = "Unavailable"
