"""Registry errors that carry the AWS IoT error code and HTTP status of the matching control-plane error.

An HTTP front end renders any of them as AWS does: status `http_status`, body
``{"code": aws_code, "message": str(exc)}`` (see the botocore `iot` model).
"""

from __future__ import annotations

from gateway.identity.errors import ConflictError, NotFoundError, PolicyError, RegistryError, ValidationError


class InvalidRequest(ValidationError):
    aws_code = "InvalidRequestException"
    http_status = 400


class ResourceNotFound(NotFoundError):
    aws_code = "ResourceNotFoundException"
    http_status = 404


class ResourceAlreadyExists(ConflictError):
    aws_code = "ResourceAlreadyExistsException"
    http_status = 409


class VersionConflict(ConflictError):
    aws_code = "VersionConflictException"
    http_status = 409


class DeleteConflict(ConflictError):
    aws_code = "DeleteConflictException"
    http_status = 409


class CertificateState(ConflictError):
    aws_code = "CertificateStateException"
    http_status = 406


class CertificateValidation(ValidationError):
    aws_code = "CertificateValidationException"
    http_status = 400


class CertificateConflict(ConflictError):
    aws_code = "CertificateConflictException"
    http_status = 409


class MalformedPolicy(PolicyError):
    aws_code = "MalformedPolicyException"
    http_status = 400


class VersionsLimitExceeded(ConflictError):
    aws_code = "VersionsLimitExceededException"
    http_status = 409


class LimitExceeded(RegistryError):
    aws_code = "LimitExceededException"
    http_status = 410


def check_version(what: str, current: int, expected: int | None) -> None:
    """`VersionConflict` unless `expected` is None or the current version."""
    if expected is not None and expected != current:
        raise VersionConflict(f"{what} is at version {current}, not the expected {expected}")


def aws_error(exc: Exception) -> tuple[int, str]:
    """(HTTP status, AWS error code) for an identity error; unknown errors are an internal failure."""
    status = getattr(exc, "http_status", None)
    code = getattr(exc, "aws_code", None)
    if isinstance(status, int) and isinstance(code, str):
        return status, code
    return 500, "InternalFailureException"
