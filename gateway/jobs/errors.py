"""Errors of the jobs component.

Control-plane errors carry the AWS IoT error code and HTTP status (the botocore `iot` model);
device-side rejections (`JobRejection`) carry the code of the MQTT jobs API's `/rejected` document.
"""

from __future__ import annotations

from typing import Any

from edgeloop.errors import EdgeloopError


class JobsError(EdgeloopError):
    """Root of the jobs errors; `aws_code`/`http_status` say how the control plane answers."""

    aws_code = "InternalFailureException"
    http_status = 500


class InvalidRequest(JobsError):
    aws_code = "InvalidRequestException"
    http_status = 400


class ResourceNotFound(JobsError):
    aws_code = "ResourceNotFoundException"
    http_status = 404


class ResourceAlreadyExists(JobsError):
    aws_code = "ResourceAlreadyExistsException"
    http_status = 409


class InvalidStateTransition(JobsError):
    aws_code = "InvalidStateTransitionException"
    http_status = 409


class VersionConflict(JobsError):
    aws_code = "VersionConflictException"
    http_status = 409


class LimitExceeded(JobsError):
    aws_code = "LimitExceededException"
    http_status = 410


# Codes of the device API's rejected documents (awsiot.iotjobs.RejectedErrorCode).
INVALID_TOPIC = "InvalidTopic"
INVALID_JSON = "InvalidJson"
INVALID_REQUEST = "InvalidRequest"
INVALID_STATE_TRANSITION = "InvalidStateTransition"
RESOURCE_NOT_FOUND = "ResourceNotFound"
VERSION_MISMATCH = "VersionMismatch"
INTERNAL_ERROR = "InternalError"
TERMINAL_STATE_REACHED = "TerminalStateReached"


class JobRejection(JobsError):
    """A device request refused with `code`; `execution_state` is included for state/version errors."""

    def __init__(self, code: str, message: str, execution_state: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.execution_state = execution_state
