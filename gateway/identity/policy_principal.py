"""The connecting client as policies see it: everything policy variables and condition keys can refer to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.identity.policy_document import PolicyDocument

NO_VALUES: Mapping[str, Any] = MappingProxyType({})
"""The default of every mapping field: one shared, read-only empty mapping (not a new dict per principal)."""


def _no_values() -> Mapping[str, Any]:
    return NO_VALUES


@dataclass(frozen=True, slots=True)
class Principal:
    """Built once at CONNECT by the identity side; immutable for the life of the connection.

    `subject`/`issuer` map X.509 attribute names (`CommonName`, `Organization`, ...) to their values in
    certificate order; `subject_alt_names`/`issuer_alt_names` use the keys `DNSName`, `IPAddress`,
    `RFC822Name`, `UniformResourceIdentifier` and `DirectoryName`. `serial_number` is the decimal string.
    `policies` is the effective set: certificate policies plus, when the client id equals the thing name,
    the policies of the thing's groups and their ancestors.
    """

    client_id: str
    certificate_id: str | None = None
    thing_name: str | None = None
    thing_type: str | None = None
    thing_attributes: Mapping[str, str] = field(default_factory=_no_values)
    is_attached: bool = False
    subject: Mapping[str, tuple[str, ...]] = field(default_factory=_no_values)
    issuer: Mapping[str, tuple[str, ...]] = field(default_factory=_no_values)
    subject_alt_names: Mapping[str, tuple[str, ...]] = field(default_factory=_no_values)
    issuer_alt_names: Mapping[str, tuple[str, ...]] = field(default_factory=_no_values)
    serial_number: str | None = None
    source_ip: str | None = None
    policies: tuple[PolicyDocument, ...] = ()
    access_key: str | None = None  # a SigV4 (IAM-style) connection's identity: the access key that signed it
