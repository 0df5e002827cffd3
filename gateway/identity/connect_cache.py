"""What CONNECTs read from the registry, remembered per client certificate and per registry generation.

A client certificate's parsed form (the X.509 object, its id, subject and issuer fields, alternative names) never
changes, so it is kept per DER. What the registry says about it (ACTIVE, its CA, its things, the policies of a
connection) holds until the registry generation changes, which every committed change does (revocation
included); callers compare with `Store.current_generation()`, so a change another process commits is seen at
the next CONNECT, as it was without the cache. Refusals are never remembered.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from cryptography import x509

from gateway.identity.pki import alt_names, certificate_id, name_fields
from gateway.identity.policy_document import PolicyDocument

CACHED_CERTIFICATES = 4096
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """A client certificate as parsed once: the fields policy variables read, shared by its connections."""

    der: bytes
    certificate: x509.Certificate
    certificate_id: str
    subject: Mapping[str, tuple[str, ...]]
    issuer: Mapping[str, tuple[str, ...]]
    subject_alt_names: Mapping[str, tuple[str, ...]]
    issuer_alt_names: Mapping[str, tuple[str, ...]]
    serial_number: str

    @classmethod
    def parse(cls, der: bytes, certificate: x509.Certificate) -> CertificateFacts:
        return cls(
            der, certificate, certificate_id(der), name_fields(certificate.subject), name_fields(certificate.issuer),
            alt_names(certificate), alt_names(certificate, issuer=True), str(certificate.serial_number),
        )


@dataclass(frozen=True, slots=True)
class ConnectionPolicies:
    """The registry's part of a principal for one thing (or none): its type, attributes and effective policies."""

    thing_type: str | None
    thing_attributes: Mapping[str, str]
    policies: tuple[PolicyDocument, ...]


class _Known:
    """One certificate: its facts, and what the registry said at `generation` (the authentication and, per thing
    the connection acts as, its policies)."""

    __slots__ = ("authenticated", "by_thing", "facts", "generation")

    def __init__(self, facts: CertificateFacts) -> None:
        self.facts = facts
        self.generation = -1
        self.authenticated: object = None
        self.by_thing: dict[str | None, ConnectionPolicies] = {}


class ConnectCache:
    """Bounded, thread-safe (CONNECTs are authenticated in worker threads); the oldest certificate goes first."""

    def __init__(self, size: int = CACHED_CERTIFICATES) -> None:
        self._size = size
        self._known: dict[bytes, _Known] = {}
        self._by_id: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def der_of(self, certificate_id: str) -> bytes | None:
        """The DER of a certificate seen lately, by its id (None when it is not in the cache)."""
        return self._by_id.get(certificate_id)

    def facts(self, der: bytes, parse: Callable[[bytes], x509.Certificate]) -> CertificateFacts:
        """The certificate's facts; `parse` (which may raise) runs only for a certificate not seen yet."""
        known = self._known.get(der)
        if known is not None:
            return known.facts
        facts = CertificateFacts.parse(der, parse(der))
        with self._lock:
            if der not in self._known:
                if len(self._known) >= self._size:
                    oldest = next(iter(self._known))
                    self._by_id.pop(self._known.pop(oldest).facts.certificate_id, None)
                self._known[der] = _Known(facts)
                self._by_id[facts.certificate_id] = der
        return facts

    def authenticated(self, facts: CertificateFacts, generation: int, read: Callable[[], T]) -> T:
        """`read()` (the registry's verdict, which raises on refusal), or its result from this generation."""
        known = self._current(facts, generation)
        if known is not None and known.authenticated is not None:
            return known.authenticated  # type: ignore[return-value]
        result = read()
        if known is not None:
            with self._lock:
                if known.generation == generation:  # not reset by a newer generation meanwhile
                    known.authenticated = result
        return result

    def policies(self, facts: CertificateFacts, thing: str | None, generation: int,
                 read: Callable[[], ConnectionPolicies]) -> ConnectionPolicies:
        """`read()`, or its result from this generation for the same certificate and thing."""
        known = self._current(facts, generation)
        found = known.by_thing.get(thing) if known is not None else None
        if found is None:
            found = read()
            if known is not None:
                with self._lock:
                    if known.generation == generation:
                        known.by_thing[thing] = found
        return found

    def _current(self, facts: CertificateFacts, generation: int) -> _Known | None:
        """The certificate's entry, emptied when it was filled at another generation (None once evicted)."""
        known = self._known.get(facts.der)
        if known is None or known.facts is not facts:
            return None
        if known.generation != generation:
            with self._lock:
                if known.generation != generation:
                    known.authenticated = None
                    known.by_thing = {}
                    known.generation = generation
        return known
