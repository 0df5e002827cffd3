"""Errors that an AWS-compatible API returns with AWS's own code, status and shape."""

from __future__ import annotations

from typing import Any

from edgeloop.errors import EdgeloopError


class AwsError(EdgeloopError):
    """An AWS error: `code` is AWS's error code (what boto3 maps to an exception class)."""

    def __init__(
        self,
        code: str,
        message: str,
        status: int = 400,
        *,
        sender: bool = True,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.sender = sender
        self.headers = headers or {}
        self.extra = extra or {}
