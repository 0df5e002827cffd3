"""The identity registry: one object that opens the CA and `registry.db`, and answers the gateway's questions.

- `provision_thing` / `provision_fleet`: a thing with a ready device identity (certificate, key, policy).
- `authenticate(der)`: the registered, ACTIVE certificate behind a TLS client certificate, or why not.
- `principal(auth, client_id)`: the connection as the policy engine sees it, with its effective policies;
  `generation()` changes whenever the registry does, so authorization caches know when to rebuild.

Blocking (SQLite, signatures): from asyncio call it with `asyncio.to_thread`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edgeloop.config import Config
from gateway.identity.awserrors import CertificateValidation, ResourceAlreadyExists
from gateway.identity.certificates import Certificates
from gateway.identity.connect_cache import CertificateFacts, ConnectCache, ConnectionPolicies
from gateway.identity.errors import AuthenticationError, NotFoundError, RegistryError
from gateway.identity.groups import ThingGroups
from gateway.identity.names import Arns
from gateway.identity.pki import (
    CertificateAuthority,
    ServerCertificate,
    cert_pem,
    load_certificate,
    validity_error,
)
from gateway.identity.policy_defaults import DEV_ALLOW_ALL_POLICY, default_thing_policy
from gateway.identity.policy_document import PolicyDocument
from gateway.identity.policy_principal import NO_VALUES, Principal
from gateway.identity.policy_store import Policies
from gateway.identity.store import Store
from gateway.identity.things import Things, ThingTypes
from gateway.storage.durable import atomic_write

log = logging.getLogger("edgeloop.identity")

PKI_DIR = "pki"
REGISTRY_FILE = "registry.db"
DEFAULT_THING_POLICY = "edgeloop-thing"
DEV_POLICY = "dev-allow-all"
_NAME_PLACEHOLDER = "edgeloop-thing-name"


def shared_thing_policy() -> str:
    """The default per-thing policy written once for every thing with `${iot:Connection.Thing.ThingName}`."""
    return default_thing_policy(_NAME_PLACEHOLDER).replace(_NAME_PLACEHOLDER, "${iot:Connection.Thing.ThingName}")


# Policies created on first use: the development allow-all one and the shared default thing policy.
BUILTIN_POLICIES: dict[str, Callable[[], str]] = {
    DEV_POLICY: lambda: DEV_ALLOW_ALL_POLICY,
    DEFAULT_THING_POLICY: shared_thing_policy,
}

RegistryListener = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class AuthenticatedCertificate:
    """A registered, ACTIVE client certificate and the things it is attached to."""

    certificate_id: str
    certificate_arn: str
    certificate: x509.Certificate
    things: tuple[str, ...]

    def thing_for(self, client_id: str) -> str | None:
        """The thing a connection acts as: its client id, when the certificate is attached to that thing."""
        return client_id if client_id in self.things else None


@dataclass(frozen=True)
class DeviceIdentity:
    """What a device needs to connect: its certificate, private key and the CA that signs the server."""

    thing_name: str
    thing_arn: str
    certificate_id: str
    certificate_arn: str
    certificate_pem: str
    private_key_pem: str | None
    ca_pem: str

    def write(self, directory: Path, durable: bool = True) -> dict[str, Path]:
        """Write `<thing>.cert.pem`, `<thing>.private.key` (0600) and `root-CA.pem` into `directory`
        (each fsynced unless `durable` is off, for callers that sync many identities at once)."""
        directory.mkdir(parents=True, exist_ok=True)
        files = {"certificate": directory / f"{self.thing_name}.cert.pem", "ca": directory / "root-CA.pem"}
        atomic_write(files["certificate"], self.certificate_pem.encode(), mode=0o644, durable=durable)
        atomic_write(files["ca"], self.ca_pem.encode(), mode=0o644, durable=durable)
        if self.private_key_pem is not None:
            files["private_key"] = directory / f"{self.thing_name}.private.key"
            atomic_write(files["private_key"], self.private_key_pem.encode(), mode=0o600, durable=durable)
        return files


class Registry:
    """The CA, the server certificate and the registry database of one data directory."""

    def __init__(self, home: Path, config: Config, create_ca: bool = True) -> None:
        self.home = home
        self.config = config
        self.pki_dir = home / PKI_DIR
        self.ca = CertificateAuthority.open(self.pki_dir, config.pki, create=create_ca)
        self.store = Store(home / REGISTRY_FILE, Arns(config.aws.region, config.aws.account_id))
        os.chmod(self.store.path, 0o600)
        self.arns = self.store.arns
        self.things = Things(self.store)
        self.types = ThingTypes(self.store)
        self.groups = ThingGroups(self.store)
        self.certs = Certificates(self.store, self.ca, auto_register_default=config.pki.auto_register)
        self.policies = Policies(self.store)
        self._listeners: list[RegistryListener] = []
        self._connects = ConnectCache()
        self._dev_policy: tuple[int, tuple[PolicyDocument, ...]] | None = None

    @classmethod
    def open(cls, config: Config, create_ca: bool = True) -> Registry:
        return cls(config.home, config, create_ca=create_ca)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: RegistryListener) -> None:
        """Call `listener(topic, payload)` for registry events AWS publishes (certificate auto-registration).

        It runs in the thread that called the registry (often a worker thread): hand over to the event
        loop with `loop.call_soon_threadsafe`."""
        self._listeners.append(listener)

    def server_certificate(self, extra_names: Iterable[str] = ()) -> ServerCertificate:
        return self.ca.ensure_server_certificate(self.pki_dir, extra_names)

    def ensure_builtin_policy(self, name: str) -> None:
        """Create one of `BUILTIN_POLICIES` when it does not exist yet (without writing when it does)."""
        try:
            self.policies.get(name)
        except NotFoundError:
            with contextlib.suppress(ResourceAlreadyExists):  # created meanwhile by another process
                self.policies.create(name, BUILTIN_POLICIES[name]())

    def provision_thing(
        self, name: str, policies: Sequence[str] = (DEFAULT_THING_POLICY,), thing_type: str | None = None,
        attributes: dict[str, str] | None = None, groups: Sequence[str] = (), csr_pem: str | None = None,
    ) -> DeviceIdentity:
        """Create (or reuse) a thing and give it a new ACTIVE certificate with `policies` attached.

        The key pair is made here unless the device sends a CSR; built-in policies are created on demand.
        All of it happens in one transaction: on any error nothing is left behind.
        """
        with self.store.transaction():
            thing = self.things.create(name, thing_type, attributes)
            for group in groups:
                self.groups.add_thing(group, name)
            if csr_pem is None:
                cert = self.certs.create_keys_and_certificate(set_as_active=True, common_name=name)
                private_key = cert["keyPair"]["PrivateKey"]
            else:
                cert = self.certs.create_from_csr(csr_pem, set_as_active=True)
                private_key = None
            for policy in policies:
                if policy in BUILTIN_POLICIES:
                    self.ensure_builtin_policy(policy)
                self.policies.attach(policy, cert["certificateArn"])
            self.certs.attach_thing(name, cert["certificateArn"])
        return DeviceIdentity(
            name, thing["thingArn"], cert["certificateId"], cert["certificateArn"], cert["certificatePem"],
            private_key, self.ca.certificate_pem,
        )

    def provision_fleet(self, names: Iterable[str], **options: Any) -> list[DeviceIdentity]:
        """`provision_thing` for many things in one transaction (one fsync for the whole fleet)."""
        with self.store.transaction():
            return [self.provision_thing(name, **options) for name in names]

    def authenticate(self, der: bytes) -> AuthenticatedCertificate:
        """The principal behind a TLS client certificate (DER), or `AuthenticationError` saying why not.

        A certificate from a registered CA with auto-registration enabled that is seen for the first time
        is registered PENDING_ACTIVATION (and announced on `$aws/events/certificates/registered/<ca>`);
        that connection is still refused. The verdict is remembered until the registry generation changes.
        """
        return self._authenticate(self._certificate_facts(der), self.store.current_generation())

    def _certificate_facts(self, der: bytes) -> CertificateFacts:
        if not der:
            raise AuthenticationError("no-certificate", "the client presented no certificate")
        facts = self._connects.facts(der, _parse_client_certificate)
        problem = validity_error(facts.certificate)
        if problem:
            raise AuthenticationError(problem, f"client certificate is {problem}")
        return facts

    def _authenticate(self, facts: CertificateFacts, generation: int) -> AuthenticatedCertificate:
        return self._connects.authenticated(facts, generation, lambda: self._read_authentication(facts))

    def _read_authentication(self, facts: CertificateFacts) -> AuthenticatedCertificate:
        cert, cert_id = facts.certificate, facts.certificate_id
        status = self.certs.status(cert_id)
        if status is None:
            self._first_contact(cert, cert_id)
        ca_id = self.certs.describe(cert_id)["caCertificateId"]
        try:
            ca_status = self.certs.ca_state(ca_id)[0]
        except NotFoundError:
            ca_status = "DELETED"
        if ca_status != "ACTIVE":
            raise AuthenticationError("unknown-ca", f"certificate {cert_id} was issued by a CA that is {ca_status}")
        if status != "ACTIVE":
            reason = {"REVOKED": "revoked", "PENDING_ACTIVATION": "pending-activation"}.get(status or "", "inactive")
            raise AuthenticationError(reason, f"certificate {cert_id} is {status}, only ACTIVE may connect")
        things = tuple(self.certs.principal_things(cert_id))
        return AuthenticatedCertificate(cert_id, self.arns.cert(cert_id), cert, things)

    def _first_contact(self, cert: x509.Certificate, cert_id: str) -> None:
        ca_id = self.certs.issuer_id(cert)
        if ca_id is None:
            raise AuthenticationError("unknown-ca", f"certificate {cert_id} is not signed by a known CA")
        ca_status, auto_register = self.certs.ca_state(ca_id)
        if ca_status != "ACTIVE" or not auto_register:
            raise AuthenticationError("unregistered", f"certificate {cert_id} is not registered")
        self.certs.register(cert_pem(cert), status="PENDING_ACTIVATION")
        description = self.certs.describe(cert_id)
        log.info("event=certificate_auto_registered certificate_id=%s ca_certificate_id=%s", cert_id, ca_id)
        self._emit(f"$aws/events/certificates/registered/{ca_id}", {
            "certificateId": cert_id, "caCertificateId": ca_id, "timestamp": int(description["creationDate"] * 1000),
            "certificateStatus": "PENDING_ACTIVATION", "awsAccountId": self.arns.account_id,
            "certificateRegistrationTimestamp": str(int(description["creationDate"] * 1000)),
        })
        raise AuthenticationError("pending-activation", f"certificate {cert_id} was registered and awaits activation")

    def _emit(self, topic: str, payload: dict[str, Any]) -> None:
        for listener in self._listeners:
            try:
                listener(topic, payload)
            except Exception:
                log.exception("event=registry_listener_failed topic=%s", topic)

    def generation(self) -> int:
        """Changes whenever the registry changes (here or in another process): flush authorization caches."""
        return self.store.generation()

    def effective_policies(self, auth: AuthenticatedCertificate, client_id: str) -> list[str]:
        """Names of every policy for a connection: the certificate's, plus those of the thing's groups and
        their ancestors when the client id is the name of a thing the certificate is attached to."""
        found = self.policies.attached_to(auth.certificate_arn)
        thing = auth.thing_for(client_id)
        if thing is not None:
            for group in self.groups.groups_of(thing, inherited=True):
                found.extend(self.policies.attached_to(self.arns.thing_group(group)))
        return list(dict.fromkeys(found))

    def principal(
        self, auth: AuthenticatedCertificate, client_id: str, source_ip: str | None = None
    ) -> Principal:
        """The connection as the policy engine sees it (built once at CONNECT; read afresh from the registry)."""
        cert = auth.certificate
        facts = CertificateFacts.parse(cert.public_bytes(Encoding.DER), cert)
        return self._principal(facts, auth, client_id, source_ip, self._read_policies(auth, client_id))

    def _principal(
        self, facts: CertificateFacts, auth: AuthenticatedCertificate, client_id: str, source_ip: str | None,
        found: ConnectionPolicies,
    ) -> Principal:
        thing_name = auth.thing_for(client_id)
        return Principal(
            client_id=client_id, certificate_id=auth.certificate_id, thing_name=thing_name,
            thing_type=found.thing_type, thing_attributes=found.thing_attributes, is_attached=thing_name is not None,
            subject=facts.subject, issuer=facts.issuer, subject_alt_names=facts.subject_alt_names,
            issuer_alt_names=facts.issuer_alt_names, serial_number=facts.serial_number, source_ip=source_ip,
            policies=found.policies,
        )

    def _read_policies(self, auth: AuthenticatedCertificate, client_id: str) -> ConnectionPolicies:
        with self.store.transaction(write=False):
            thing_name = auth.thing_for(client_id)
            thing = self.things.describe(thing_name) if thing_name is not None else {}
            documents = tuple(
                PolicyDocument.parse(self.policies.document(n)) for n in self.effective_policies(auth, client_id)
            )
        return ConnectionPolicies(thing.get("thingTypeName"), thing.get("attributes") or NO_VALUES, documents)

    def connect_principal(self, der: bytes, client_id: str, source_ip: str | None = None) -> Principal:
        """`authenticate` then `principal`: what CONNECT needs, and a `refresh` for an authorization session
        (it raises `AuthenticationError` once the certificate is revoked or deactivated).

        Registry reads are remembered per certificate until the registry generation changes; the certificate's
        validity period is checked every time."""
        facts = self._certificate_facts(der)
        generation = self.store.current_generation()
        auth = self._authenticate(facts, generation)
        thing = auth.thing_for(client_id)
        found = self._connects.policies(facts, thing, generation, lambda: self._read_policies(auth, client_id))
        return self._principal(facts, auth, client_id, source_ip, found)

    def renew_connect_principal(self, principal: Principal) -> Principal:
        """`connect_principal` again for a live connection's principal, its certificate found by id: one `renew`
        function for every mutual-TLS session, instead of a closure holding each connection's DER."""
        cert_id = principal.certificate_id or ""
        der = self._connects.der_of(cert_id)
        if der is None:
            try:
                der = load_certificate(self.certs.describe(cert_id)["certificatePem"]).public_bytes(Encoding.DER)
            except RegistryError as exc:
                raise AuthenticationError("unregistered", f"certificate {cert_id!r} is not registered: {exc}") from exc
        return self.connect_principal(der, principal.client_id, principal.source_ip)

    def dev_principal(self, client_id: str, source_ip: str | None = None) -> Principal:
        """The principal of a plain (development) MQTT connection: it gets the policy `mqtt.dev_policy`
        (read once per registry generation)."""
        return Principal(client_id=client_id, source_ip=source_ip, policies=self._dev_policies())

    def renew_dev_principal(self, principal: Principal) -> Principal:
        """`dev_principal` for the same client id and address: one `renew` function for every dev session."""
        return self.dev_principal(principal.client_id, principal.source_ip)

    def _dev_policies(self) -> tuple[PolicyDocument, ...]:
        generation = self.store.current_generation()
        cached = self._dev_policy
        if cached is not None and cached[0] == generation:
            return cached[1]
        name = self.config.mqtt.dev_policy
        if name in BUILTIN_POLICIES:
            self.ensure_builtin_policy(name)
        documents = (PolicyDocument.parse(self.policies.document(name)),)
        self._dev_policy = (generation, documents)
        return documents


def _parse_client_certificate(der: bytes) -> x509.Certificate:
    try:
        return load_certificate(der)
    except CertificateValidation as exc:
        raise AuthenticationError("unregistered", f"unreadable client certificate: {exc}") from exc
