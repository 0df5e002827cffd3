"""Firehose's error codes (awsJson: ``{"__type": code, "message": …}``)."""

from __future__ import annotations

from gateway.awsapi.errors import AwsError


class FirehoseError(AwsError):
    """A Firehose error with AWS's code."""


def not_found(name: str, account: str) -> FirehoseError:
    return FirehoseError("ResourceNotFoundException", f"Firehose {name} under account {account} not found.")


def in_use(name: str, account: str) -> FirehoseError:
    return FirehoseError("ResourceInUseException", f"Firehose {name} under accountId {account} already exists")


def invalid(message: str) -> FirehoseError:
    return FirehoseError("InvalidArgumentException", message)


def slow_down() -> FirehoseError:
    return FirehoseError("ServiceUnavailableException", "Slow down.", 503, sender=False)
