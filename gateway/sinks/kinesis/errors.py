"""Kinesis errors with AWS's codes and message texts (what boto3 turns into the same exception classes)."""

from __future__ import annotations

from gateway.awsapi.errors import AwsError


class KinesisError(AwsError):
    """An error of the emulated Kinesis Data Streams service."""


def stream_not_found(name: str, account: str) -> KinesisError:
    return KinesisError("ResourceNotFoundException", f"Stream {name} under account {account} not found.")


def stream_exists(name: str, account: str) -> KinesisError:
    return KinesisError("ResourceInUseException", f"Stream {name} under account {account} already exists.")


def shard_not_found(shard_id: str, name: str, account: str) -> KinesisError:
    return KinesisError("ResourceNotFoundException",
                        f"Shard {shard_id} in stream {name} under account {account} does not exist")


def invalid_argument(message: str) -> KinesisError:
    return KinesisError("InvalidArgumentException", message)


def limit_exceeded(message: str) -> KinesisError:
    return KinesisError("LimitExceededException", message)


def throughput_exceeded(shard_id: str, name: str, account: str) -> KinesisError:
    return KinesisError("ProvisionedThroughputExceededException",
                        f"Rate exceeded for shard {shard_id} in stream {name} under account {account}.")


def validation(value: object, member: str, constraint: str) -> KinesisError:
    """AWS's model-constraint error, e.g. a partition key longer than 256 characters."""
    shown = "null" if value is None else f"'{value}'"
    return KinesisError("ValidationException",
                        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy "
                        f"constraint: {constraint}")


def serialization(message: str) -> KinesisError:
    """The request body is not the JSON shape the operation takes."""
    return KinesisError("SerializationException", message)
