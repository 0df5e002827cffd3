"""Errors of the identity component: PKI, registry and policies."""

from edgeloop.errors import EdgeloopError


class IdentityError(EdgeloopError):
    """PKI, registry and policy errors."""


class PkiError(IdentityError): ...


class RegistryError(IdentityError): ...  # not found / conflict / invalid name etc.


class NotFoundError(RegistryError): ...


class ConflictError(RegistryError): ...


class ValidationError(RegistryError): ...


class PolicyError(IdentityError): ...  # invalid policy document


class AuthenticationError(IdentityError):
    """Certificate rejected at connect.

    `reason` is one of "unknown-ca", "expired", "not-yet-valid", "revoked", "inactive",
    "pending-activation", "unregistered", "no-certificate".
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
