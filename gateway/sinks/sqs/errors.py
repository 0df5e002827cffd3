"""SQS errors with AWS's codes: the JSON shape name plus the legacy query code botocore maps exceptions from."""

from __future__ import annotations

from gateway.awsapi.errors import AwsError

# JSON shape name (``__type``) -> (legacy query code sent in ``x-amzn-query-error``, HTTP status)
_LEGACY: dict[str, tuple[str, int]] = {
    "QueueDoesNotExist": ("AWS.SimpleQueueService.NonExistentQueue", 400),
    "QueueNameExists": ("QueueAlreadyExists", 400),
    "QueueDeletedRecently": ("AWS.SimpleQueueService.QueueDeletedRecently", 400),
    "PurgeQueueInProgress": ("AWS.SimpleQueueService.PurgeQueueInProgress", 403),
    "MessageNotInflight": ("AWS.SimpleQueueService.MessageNotInflight", 400),
    "BatchEntryIdsNotDistinct": ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400),
    "EmptyBatchRequest": ("AWS.SimpleQueueService.EmptyBatchRequest", 400),
    "TooManyEntriesInBatchRequest": ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400),
    "InvalidBatchEntryId": ("AWS.SimpleQueueService.InvalidBatchEntryId", 400),
    "BatchRequestTooLong": ("AWS.SimpleQueueService.BatchRequestTooLong", 400),
    "UnsupportedOperation": ("AWS.SimpleQueueService.UnsupportedOperation", 400),
    "OverLimit": ("OverLimit", 403),
    "ResourceNotFoundException": ("ResourceNotFoundException", 404),
}


class SqsError(AwsError):
    """An SQS error. `code` is the JSON shape name; `query_code` the legacy code of the query protocol."""

    def __init__(self, code: str, message: str, status: int | None = None) -> None:
        query_code, default_status = _LEGACY.get(code, (code, 400))
        status = status or default_status
        super().__init__(code, message, status, sender=status < 500,
                         headers={"x-amzn-query-error": f"{query_code};{'Sender' if status < 500 else 'Receiver'}"})
        self.query_code = query_code


def query_code_of(error: AwsError) -> str:
    """The legacy code for any AwsError (signature failures and internal errors keep their own code)."""
    return error.query_code if isinstance(error, SqsError) else _LEGACY.get(error.code, (error.code, 0))[0]


def queue_does_not_exist() -> SqsError:
    return SqsError("QueueDoesNotExist", "The specified queue does not exist.")


def invalid_parameter(message: str) -> SqsError:
    return SqsError("InvalidParameterValue", message)


def missing_parameter(name: str) -> SqsError:
    return SqsError("MissingParameter", f"The request must contain the parameter {name}.")
