"""Errors of fleet provisioning.

Control-plane errors carry the AWS IoT error code and HTTP status; `ProvisioningRejection` is what the
MQTT API publishes on `.../rejected`: ``{"statusCode", "errorCode", "errorMessage"}``.
"""

from __future__ import annotations

from edgeloop.errors import EdgeloopError


class ProvisioningError(EdgeloopError):
    """Root of the provisioning errors; `aws_code`/`http_status` say how the control plane answers."""

    aws_code = "InternalFailureException"
    http_status = 500


class InvalidRequest(ProvisioningError):
    aws_code = "InvalidRequestException"
    http_status = 400


class ResourceNotFound(ProvisioningError):
    aws_code = "ResourceNotFoundException"
    http_status = 404


class ResourceAlreadyExists(ProvisioningError):
    aws_code = "ResourceAlreadyExistsException"
    http_status = 409


class TemplateError(InvalidRequest):
    """A template body that cannot be parsed or evaluated (also raised for missing parameters)."""


# errorCode values of the MQTT API's rejected documents.
INVALID_PAYLOAD = "InvalidPayload"
INVALID_PARAMETERS = "InvalidParameters"
INVALID_TOKEN = "InvalidCertificateOwnershipToken"
NOT_FOUND = "ResourceNotFound"
CONFLICT = "ResourceConflict"
ACCESS_DENIED = "AccessDenied"
INTERNAL_FAILURE = "InternalFailure"


class ProvisioningRejection(ProvisioningError):
    """A refused MQTT request: `status_code` (HTTP-like), `error_code` and a message."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message

    def document(self) -> dict[str, object]:
        return {"statusCode": self.status_code, "errorCode": self.error_code, "errorMessage": self.message}
