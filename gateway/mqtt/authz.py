"""Authentication and authorization glue between listeners and the identity component.

A listener's authenticator turns a CONNECT (plus the TLS client certificate, or the access key that signed a
SigV4 WebSocket upgrade) into a `PolicyAuth`: the connection's `AuthorizationSession`, re-bound whenever the
registry generation changes.
The registry calls are blocking (SQLite); connections run authenticators in a worker thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gateway.identity.policy import DEV_ALLOW_ALL_POLICY, AuthorizationSession, Authorizer, PolicyDocument, Principal
from gateway.mqtt.packets import Connect

if TYPE_CHECKING:
    from gateway.identity.registry import Registry
    from gateway.mqtt.connection import MqttConnection


class PolicyAuth:
    """`ConnectionAuth` backed by an identity `AuthorizationSession`."""

    __slots__ = ("allowed", "principal_id", "session")

    def __init__(self, session: AuthorizationSession, principal_id: str | None) -> None:
        self.session = session
        self.principal_id = principal_id
        # `allowed(action, resource) -> bool` is the session's own method: one call less on the hot path.
        self.allowed: Callable[[str, str], bool] = session.allowed

    @property
    def principal(self) -> Any:
        return self.session.principal

    def revoked(self) -> str | None:
        """Why the connection may no longer continue (certificate revoked / inactive, Connect denied), or None."""
        client_id = self.session.principal.client_id
        still_connects = self.session.allowed("iot:Connect", client_id)
        if self.session.revoked is not None:
            return str(self.session.revoked)
        if not still_connects:
            return f"policy no longer allows iot:Connect for client id {client_id!r}"
        return None


def peer_certificate(transport: Any) -> bytes:
    """DER of the TLS client certificate of a transport (b"" when there is none)."""
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return b""
    return ssl_object.getpeercert(binary_form=True) or b""


class CertificateAuthenticator:
    """Mutual-TLS listeners: certificate -> registry (ACTIVE only) -> principal with its policies."""

    def __init__(self, registry: Registry, authorizer: Authorizer) -> None:
        self.registry = registry
        self.authorizer = authorizer
        # One function re-reads every session's principal (no closure, no copy of the DER per connection).
        self._renew = registry.renew_connect_principal

    def __call__(self, conn: MqttConnection, connect: Connect) -> PolicyAuth:
        der = peer_certificate(conn.transport)
        client_id = conn.client_id or connect.client_id
        return self.for_certificate(der, client_id, conn.peer)

    def for_https(self, der: bytes, source_ip: str | None) -> PolicyAuth:
        """HTTPS publish has no client id: act as the certificate's thing when it is attached to exactly one."""
        things = self.registry.authenticate(der).things
        return self.for_certificate(der, things[0] if len(things) == 1 else "", source_ip)

    def for_certificate(self, der: bytes, client_id: str, source_ip: str | None) -> PolicyAuth:
        registry = self.registry
        principal = registry.connect_principal(der, client_id, source_ip)
        session = self.authorizer.session(principal, registry.generation, renew=self._renew)
        return PolicyAuth(session, principal.certificate_id)


@dataclasses.dataclass(frozen=True)
class SigV4Authenticator:
    """SigV4 WebSocket connections: the principal is the access key that signed the upgrade (an IAM-style
    identity, not a thing). IAM policies do not exist here, so its rights are the IoT policy `policy_name`
    (`mqtt.sigv4_policy`; empty = the built-in allow-all), evaluated by the policy engine like any other.

    One instance per listener; `for_access_key` binds it to a connection's verified access key.
    """

    registry: Registry
    authorizer: Authorizer
    policy_name: str = ""
    access_key: str = ""

    def for_access_key(self, access_key: str) -> SigV4Authenticator:
        return dataclasses.replace(self, access_key=access_key)

    def __call__(self, conn: MqttConnection, connect: Connect) -> PolicyAuth:
        client_id = conn.client_id or connect.client_id
        source_ip = conn.peer

        def principal() -> Principal:
            return Principal(client_id=client_id, source_ip=source_ip, policies=self.policies(),
                             access_key=self.access_key)

        if not self.policy_name:
            return PolicyAuth(self.authorizer.session(principal(), _no_generation), self.access_key)
        generation = self.registry.generation
        return PolicyAuth(self.authorizer.session(principal(), generation, principal), self.access_key)

    def policies(self) -> tuple[PolicyDocument, ...]:
        """The policy documents of a SigV4 principal (blocking: a registry read for a named policy)."""
        from gateway.identity.registry import BUILTIN_POLICIES

        name = self.policy_name
        if not name:
            return _allow_all()
        if name in BUILTIN_POLICIES:
            self.registry.ensure_builtin_policy(name)
        return (PolicyDocument.parse(self.registry.policies.document(name)),)


@lru_cache(maxsize=1)
def _allow_all() -> tuple[PolicyDocument, ...]:
    return (PolicyDocument.parse(DEV_ALLOW_ALL_POLICY),)


class DevAuthenticator:
    """The plain development listener: anonymous / username clients get the explicit dev principal."""

    def __init__(self, registry: Registry | None, authorizer: Authorizer) -> None:
        self.registry = registry
        self.authorizer = authorizer
        self._builtin = _allow_all()
        # One function re-reads every dev session's principal (no closure per connection).
        self._renew = registry.renew_dev_principal if registry is not None else None

    def __call__(self, conn: MqttConnection, connect: Connect) -> PolicyAuth:
        registry = self.registry
        client_id = conn.client_id or connect.client_id
        if registry is None:  # no identity store at all: the built-in allow-all dev policy
            principal = Principal(client_id=client_id, source_ip=conn.peer, policies=self._builtin)
            session = self.authorizer.session(principal, _no_generation)
            return PolicyAuth(session, _dev_principal_id(connect.username))
        principal = registry.dev_principal(client_id, conn.peer)
        session = self.authorizer.session(principal, registry.generation, renew=self._renew)
        return PolicyAuth(session, _dev_principal_id(connect.username))


@lru_cache(maxsize=256)
def _dev_principal_id(username: str | None) -> str:
    """`dev:<username>`, one string for the connections of one user name."""
    return f"dev:{username or 'anonymous'}"


def _no_generation() -> int:
    return 0
