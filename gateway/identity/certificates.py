"""Device certificates, registered (bring-your-own) CAs, and which things a certificate is attached to.

A certificate is identified by its SHA-256 (`certificateId`). Certificates issued by the gateway's own CA
and certificates signed by a registered CA can be registered; only ACTIVE ones may connect.
"""

from __future__ import annotations

import builtins
import sqlite3
from typing import Any

from cryptography import x509

from gateway.identity import names
from gateway.identity.awserrors import (
    CertificateState,
    CertificateValidation,
    DeleteConflict,
    InvalidRequest,
    ResourceAlreadyExists,
    ResourceNotFound,
)
from gateway.identity.pki import (
    CertificateAuthority,
    IssuedCertificate,
    cert_pem,
    certificate_id,
    is_ca,
    is_issued_by,
    load_certificate,
    validity_error,
)
from gateway.identity.store import Page, Store, require

SETTABLE_STATUSES = ("ACTIVE", "INACTIVE", "REVOKED")
REGISTER_STATUSES = ("ACTIVE", "INACTIVE", "PENDING_ACTIVATION", "REGISTER_INACTIVE")
EXCLUSIVE, NON_EXCLUSIVE = "EXCLUSIVE_THING", "NON_EXCLUSIVE_THING"
DEFAULT_COMMON_NAME = "AWS IoT Certificate"


class Certificates:
    """Certificates and CAs in the registry, and certificate-to-thing attachments."""

    def __init__(self, store: Store, ca: CertificateAuthority, auto_register_default: bool = False) -> None:
        self.store = store
        self.arns = store.arns
        self.ca = ca
        self.auto_register_default = auto_register_default

    # -- device certificates -------------------------------------------------------------------------

    def create_keys_and_certificate(
        self, set_as_active: bool = False, common_name: str = DEFAULT_COMMON_NAME
    ) -> dict[str, Any]:
        """A new key pair and a certificate from the gateway CA (AWS's CreateKeysAndCertificate)."""
        issued = self.ca.issue_device(common_name)
        self._insert_issued(issued, set_as_active)
        return {
            **self._ids(issued.certificate_id), "certificatePem": issued.certificate_pem,
            "keyPair": {"PublicKey": issued.public_key_pem, "PrivateKey": issued.private_key_pem},
        }

    def create_from_csr(self, csr_pem: str, set_as_active: bool = False) -> dict[str, Any]:
        """A certificate from the gateway CA for a device-held key (AWS's CreateCertificateFromCsr)."""
        issued = self.ca.sign_csr(csr_pem)
        self._insert_issued(issued, set_as_active)
        return {**self._ids(issued.certificate_id), "certificatePem": issued.certificate_pem}

    def _insert_issued(self, issued: IssuedCertificate, set_as_active: bool) -> None:
        now = self.store.now()
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
                (issued.certificate_id, issued.certificate_pem, "ACTIVE" if set_as_active else "INACTIVE",
                 self.ca.certificate_id, now, now),
            )

    def register(self, certificate_pem: str, ca_certificate_pem: str | None = None,
                 status: str = "INACTIVE") -> dict[str, Any]:
        """Register a certificate signed by the gateway CA or a registered CA (AWS's RegisterCertificate)."""
        if status not in REGISTER_STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(REGISTER_STATUSES)}, not {status!r}")
        cert = load_certificate(certificate_pem)
        problem = validity_error(cert)
        if problem:
            raise CertificateValidation(f"the certificate is {problem}")
        ca_id = self.issuer_id(cert)
        if ca_id is None:
            raise CertificateValidation(
                "the certificate is not signed by the gateway CA or a registered CA: register its CA first"
            )
        if ca_certificate_pem is not None and ca_id != certificate_id(load_certificate(ca_certificate_pem)):
            raise CertificateValidation("the certificate was not issued by the given CA certificate")
        cert_id = certificate_id(cert)
        now = self.store.now()
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM certificates WHERE id = ?", (cert_id,)).fetchone():
                raise ResourceAlreadyExists(f"certificate {cert_id} is already registered")
            db.execute(
                "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?)",
                (cert_id, cert_pem(cert), status, ca_id, now, now),
            )
        return self._ids(cert_id)

    def describe(self, cert_id: str) -> dict[str, Any]:
        cert_id = names.certificate_id(cert_id)
        with self.store.transaction(write=False) as db:
            row = _cert_row(db, cert_id)
        cert = load_certificate(row["pem"])
        return {
            **self._ids(cert_id), "caCertificateId": row["ca_id"], "status": row["status"],
            "certificatePem": row["pem"], "ownedBy": self.arns.account_id, "creationDate": row["created"],
            "lastModifiedDate": row["modified"], "customerVersion": 1, "generationId": str(row["modified"]),
            "validity": _validity(cert), "certificateMode": "DEFAULT",
        }

    def resolve(self, prefix: str, ca: bool = False) -> str:
        """The full id of the one certificate (or registered CA) whose id starts with `prefix` (≥ 6 hex digits)."""
        text = prefix.lower().removeprefix("0x")
        if len(text) < 6 or any(c not in "0123456789abcdef" for c in text):
            raise InvalidRequest(f"invalid certificate id {prefix!r}: give at least 6 of its hexadecimal digits")
        table, what = ("ca_certificates", "CA certificate") if ca else ("certificates", "certificate")
        with self.store.transaction(write=False) as db:
            rows = db.execute(f"SELECT id FROM {table} WHERE substr(id, 1, ?) = ? LIMIT 2", (len(text), text))
            found = [r["id"] for r in rows]
        if not found:
            raise ResourceNotFound(f"no {what} id starts with {text}")
        if len(found) > 1:
            raise InvalidRequest(f"more than one {what} id starts with {text}: give more digits")
        return str(found[0])

    def status(self, cert_id: str) -> str | None:
        """The certificate's status, or None when it is not registered."""
        with self.store.transaction(write=False) as db:
            row = db.execute("SELECT status FROM certificates WHERE id = ?", (cert_id,)).fetchone()
        return None if row is None else str(row["status"])

    def list(self, ca_certificate_id: str | None = None, next_token: str | None = None,
             max_results: int | None = None) -> Page:
        where, params = [], []
        if ca_certificate_id is not None:
            where.append("ca_id = ?")
            params.append(names.certificate_id(ca_certificate_id))
        rows, token = self.store.page(
            "SELECT id, status, created FROM certificates", "id", where, params, next_token, max_results
        )
        return Page([{**self._ids(r["id"]), "status": r["status"], "certificateMode": "DEFAULT",
                      "creationDate": r["created"]} for r in rows], token)

    def update_status(self, cert_id: str, new_status: str) -> None:
        """Activate, deactivate or revoke; a revoked certificate stays revoked."""
        cert_id = names.certificate_id(cert_id)
        if new_status not in SETTABLE_STATUSES:
            raise InvalidRequest(f"new status must be one of {', '.join(SETTABLE_STATUSES)}, not {new_status!r}")
        with self.store.transaction() as db:
            row = _cert_row(db, cert_id)
            if row["status"] == "REVOKED" and new_status != "REVOKED":
                raise CertificateState(f"certificate {cert_id} is revoked and cannot be made {new_status}")
            db.execute(
                "UPDATE certificates SET status = ?, modified = ? WHERE id = ?", (new_status, self.store.now(), cert_id)
            )

    def delete(self, cert_id: str, force: bool = False) -> None:
        """Delete an INACTIVE or REVOKED certificate attached to no thing; `force` also detaches policies."""
        cert_id = names.certificate_id(cert_id)
        with self.store.transaction() as db:
            row = _cert_row(db, cert_id)
            if row["status"] == "ACTIVE":
                raise CertificateState(f"certificate {cert_id} is ACTIVE: deactivate or revoke it before deleting")
            if db.execute("SELECT 1 FROM thing_principals WHERE certificate_id = ?", (cert_id,)).fetchone():
                raise DeleteConflict(f"certificate {cert_id} is attached to a thing: detach it first")
            attached = db.execute("SELECT 1 FROM policy_targets WHERE kind = 'cert' AND target = ?", (cert_id,))
            if attached.fetchone() and not force:
                raise DeleteConflict(f"certificate {cert_id} has policies attached: detach them or force the delete")
            db.execute("DELETE FROM policy_targets WHERE kind = 'cert' AND target = ?", (cert_id,))
            db.execute("DELETE FROM certificates WHERE id = ?", (cert_id,))

    # -- registered CAs ------------------------------------------------------------------------------

    def register_ca(self, ca_certificate_pem: str, set_as_active: bool = False,
                    allow_auto_registration: bool | None = None) -> dict[str, Any]:
        """Register a CA whose device certificates may then be registered (or auto-registered)."""
        cert = load_certificate(ca_certificate_pem)
        if not is_ca(cert):
            raise CertificateValidation("not a CA certificate: basicConstraints CA:TRUE is missing")
        problem = validity_error(cert)
        if problem:
            raise CertificateValidation(f"the CA certificate is {problem}")
        ca_id = certificate_id(cert)
        if ca_id == self.ca.certificate_id:
            raise InvalidRequest("that is the gateway's own CA: it is always trusted and needs no registration")
        auto = self.auto_register_default if allow_auto_registration is None else allow_auto_registration
        now = self.store.now()
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM ca_certificates WHERE id = ?", (ca_id,)).fetchone():
                raise ResourceAlreadyExists(f"CA certificate {ca_id} is already registered")
            db.execute(
                "INSERT INTO ca_certificates VALUES (?, ?, ?, ?, ?, ?)",
                (ca_id, cert_pem(cert), "ACTIVE" if set_as_active else "INACTIVE",
                 "ENABLE" if auto else "DISABLE", now, now),
            )
        return {"certificateArn": self.arns.ca_cert(ca_id), "certificateId": ca_id}

    def describe_ca(self, ca_certificate_id: str) -> dict[str, Any]:
        ca_id = names.certificate_id(ca_certificate_id)
        with self.store.transaction(write=False) as db:
            row = _ca_row(db, ca_id)
        return {
            "certificateArn": self.arns.ca_cert(ca_id), "certificateId": ca_id, "status": row["status"],
            "certificatePem": row["pem"], "ownedBy": self.arns.account_id, "creationDate": row["created"],
            "autoRegistrationStatus": row["auto_registration"], "lastModifiedDate": row["modified"],
            "customerVersion": 1, "generationId": str(row["modified"]),
            "validity": _validity(load_certificate(row["pem"])), "certificateMode": "DEFAULT",
        }

    def list_cas(self, next_token: str | None = None, max_results: int | None = None) -> Page:
        rows, token = self.store.page(
            "SELECT id, status, created FROM ca_certificates", "id", next_token=next_token, max_results=max_results
        )
        return Page([{"certificateArn": self.arns.ca_cert(r["id"]), "certificateId": r["id"], "status": r["status"],
                      "creationDate": r["created"]} for r in rows], token)

    def update_ca(self, ca_certificate_id: str, new_status: str | None = None,
                  auto_registration: bool | None = None) -> None:
        ca_id = names.certificate_id(ca_certificate_id)
        if new_status not in (None, "ACTIVE", "INACTIVE"):
            raise InvalidRequest(f"CA status must be ACTIVE or INACTIVE, not {new_status!r}")
        with self.store.transaction() as db:
            row = _ca_row(db, ca_id)
            auto = row["auto_registration"] if auto_registration is None else (
                "ENABLE" if auto_registration else "DISABLE")
            db.execute(
                "UPDATE ca_certificates SET status = ?, auto_registration = ?, modified = ? WHERE id = ?",
                (new_status or row["status"], auto, self.store.now(), ca_id),
            )

    def delete_ca(self, ca_certificate_id: str) -> None:
        ca_id = names.certificate_id(ca_certificate_id)
        with self.store.transaction() as db:
            if _ca_row(db, ca_id)["status"] != "INACTIVE":
                raise CertificateState(f"CA certificate {ca_id} is ACTIVE: deactivate it before deleting")
            db.execute("DELETE FROM ca_certificates WHERE id = ?", (ca_id,))

    def trusted_ca_pems(self) -> builtins.list[str]:
        """PEMs a TLS listener should trust: the gateway CA and every ACTIVE registered CA."""
        with self.store.transaction(write=False) as db:
            rows = db.execute("SELECT pem FROM ca_certificates WHERE status = 'ACTIVE' ORDER BY id").fetchall()
        return [self.ca.certificate_pem, *(r["pem"] for r in rows)]

    def issuer_id(self, cert: x509.Certificate) -> str | None:
        """Id of the gateway CA or registered CA (any status) that signed `cert`, or None."""
        if self.ca.issued(cert):
            return self.ca.certificate_id
        with self.store.transaction(write=False) as db:
            rows = db.execute("SELECT id, pem FROM ca_certificates").fetchall()
        for row in rows:
            if is_issued_by(cert, load_certificate(row["pem"])):
                return str(row["id"])
        return None

    def ca_state(self, ca_id: str) -> tuple[str, bool]:
        """(status, auto-registration enabled) of a CA id; the gateway CA is always ACTIVE and never
        auto-registers (its certificates are registered when issued)."""
        if ca_id == self.ca.certificate_id:
            return "ACTIVE", False
        with self.store.transaction(write=False) as db:
            row = _ca_row(db, ca_id)
        return str(row["status"]), row["auto_registration"] == "ENABLE"

    # -- thing attachments ---------------------------------------------------------------------------

    def attach_thing(self, thing: str, principal: str, exclusive: bool = False) -> None:
        """Attach a certificate (ARN or id) to a thing. An exclusive attachment is the certificate's only one."""
        cert_id = self.arns.parse_principal(principal)
        with self.store.transaction() as db:
            require(db, "things", "name", thing, "thing")
            _cert_row(db, cert_id)
            others = db.execute(
                "SELECT thing, type FROM thing_principals WHERE certificate_id = ? AND thing != ?", (cert_id, thing)
            ).fetchall()
            if any(r["type"] == EXCLUSIVE for r in others) or (exclusive and others):
                holder = others[0]["thing"]
                raise InvalidRequest(
                    f"certificate {cert_id} is attached to thing {holder} and an exclusive attachment allows one"
                )
            db.execute(
                "INSERT OR REPLACE INTO thing_principals VALUES (?, ?, ?)",
                (thing, cert_id, EXCLUSIVE if exclusive else NON_EXCLUSIVE),
            )

    def detach_thing(self, thing: str, principal: str) -> None:
        cert_id = self.arns.parse_principal(principal)
        with self.store.transaction() as db:
            require(db, "things", "name", thing, "thing")
            db.execute("DELETE FROM thing_principals WHERE thing = ? AND certificate_id = ?", (thing, cert_id))

    def thing_principals(self, thing: str) -> builtins.list[dict[str, str]]:
        """[{principal: certificate ARN, thingPrincipalType}] of a thing (ListThingPrincipalsV2)."""
        with self.store.transaction(write=False) as db:
            require(db, "things", "name", thing, "thing")
            rows = db.execute(
                "SELECT certificate_id, type FROM thing_principals WHERE thing = ? ORDER BY certificate_id", (thing,)
            ).fetchall()
        return [{"principal": self.arns.cert(r["certificate_id"]), "thingPrincipalType": r["type"]} for r in rows]

    def principal_things(self, principal: str) -> builtins.list[str]:
        """Names of the things a certificate (ARN or id) is attached to."""
        cert_id = self.arns.parse_principal(principal)
        with self.store.transaction(write=False) as db:
            rows = db.execute(
                "SELECT thing FROM thing_principals WHERE certificate_id = ? ORDER BY thing", (cert_id,)
            ).fetchall()
        return [r["thing"] for r in rows]

    def _ids(self, cert_id: str) -> dict[str, str]:
        return {"certificateArn": self.arns.cert(cert_id), "certificateId": cert_id}


def _validity(cert: x509.Certificate) -> dict[str, float]:
    return {"notBefore": cert.not_valid_before_utc.timestamp(), "notAfter": cert.not_valid_after_utc.timestamp()}


def _cert_row(db: sqlite3.Connection, cert_id: str) -> sqlite3.Row:
    return require(db, "certificates", "id", cert_id, "certificate")


def _ca_row(db: sqlite3.Connection, ca_id: str) -> sqlite3.Row:
    return require(db, "ca_certificates", "id", ca_id, "CA certificate")
