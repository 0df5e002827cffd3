"""The gateway's certificate authority: a root CA in `<home>/pki/`, the server certificate, device certificates.

Certificates are X.509 v3 with ECDSA P-256 (default) or RSA-2048 keys and SHA-256 signatures. A
certificate's id is the SHA-256 of its DER encoding in lower-case hex, as AWS IoT computes `certificateId`
(and the rules engine's `principal()`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import os
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeloop.config import PkiSection
from gateway.identity.awserrors import CertificateValidation
from gateway.identity.errors import PkiError
from gateway.storage.durable import atomic_write

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
SERVER_CERT_FILE = "server.pem"
SERVER_KEY_FILE = "server.key"
CLOCK_SKEW = dt.timedelta(hours=1)  # back-date notBefore so devices with a slightly late clock accept certs
SERVER_RENEW_BEFORE = dt.timedelta(days=30)


def generate_key(key_type: str) -> PrivateKey:
    """A new private key: "ec" is ECDSA P-256, "rsa" is RSA-2048."""
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise PkiError(f"key type must be 'ec' or 'rsa', not {key_type!r}")


def key_pem(key: PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_key_pem(key: PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_id(cert: x509.Certificate | bytes) -> str:
    """AWS IoT's certificate id: SHA-256 of the DER encoding, lower-case hex (a certificate or its DER)."""
    der = cert if isinstance(cert, bytes) else cert.public_bytes(serialization.Encoding.DER)
    return hashlib.sha256(der).hexdigest()


def load_certificate(data: str | bytes) -> x509.Certificate:
    """Parse one PEM (or DER) certificate; a malformed one is a `CertificateValidation` error."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if raw.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(raw)
        return x509.load_der_x509_certificate(raw)
    except ValueError as exc:
        raise CertificateValidation(f"not a valid X.509 certificate (PEM or DER expected): {exc}") from exc


def load_private_key(data: str | bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(data.encode() if isinstance(data, str) else data, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not a valid unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise PkiError(f"unsupported private key type {type(key).__name__}: use an EC or RSA key")
    return key


def is_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """True when `issuer`'s key signed `cert` (names match and the signature verifies)."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def validity_error(cert: x509.Certificate, now: dt.datetime | None = None) -> str | None:
    """"expired" or "not-yet-valid" when `now` is outside the certificate's validity, else None."""
    now = now or dt.datetime.now(dt.UTC)
    if now > cert.not_valid_after_utc:
        return "expired"
    if now < cert.not_valid_before_utc:
        return "not-yet-valid"
    return None


DN_FIELDS = {
    NameOID.COMMON_NAME: "CommonName", NameOID.ORGANIZATION_NAME: "Organization",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OrganizationalUnit", NameOID.COUNTRY_NAME: "Country",
    NameOID.STATE_OR_PROVINCE_NAME: "State", NameOID.SERIAL_NUMBER: "SerialNumber", NameOID.TITLE: "Title",
    NameOID.SURNAME: "Surname", NameOID.GIVEN_NAME: "GivenName", NameOID.INITIALS: "Initials",
    NameOID.PSEUDONYM: "Pseudonym", NameOID.GENERATION_QUALIFIER: "GenerationQualifier",
    NameOID.DN_QUALIFIER: "DistinguishedNameQualifier",
}  # fmt: skip
ALT_NAME_KINDS: dict[type[x509.GeneralName], str] = {
    x509.DNSName: "DNSName", x509.IPAddress: "IPAddress", x509.RFC822Name: "RFC822Name",
    x509.UniformResourceIdentifier: "UniformResourceIdentifier", x509.DirectoryName: "DirectoryName",
}


def name_fields(name: x509.Name) -> dict[str, tuple[str, ...]]:
    """A distinguished name as AWS policy variables see it: attribute name -> values in certificate order."""
    fields: dict[str, list[str]] = {}
    for attribute in name:
        label = DN_FIELDS.get(attribute.oid)
        if label is not None:
            value = attribute.value
            fields.setdefault(label, []).append(value if isinstance(value, str) else value.decode("latin-1"))
    return {k: tuple(v) for k, v in fields.items()}


def alt_names(cert: x509.Certificate, issuer: bool = False) -> dict[str, tuple[str, ...]]:
    """Subject (or issuer) alternative names by kind: DNSName, IPAddress, RFC822Name, URI, DirectoryName."""
    extension: type[x509.IssuerAlternativeName | x509.SubjectAlternativeName] = (
        x509.IssuerAlternativeName if issuer else x509.SubjectAlternativeName)
    try:
        general_names = cert.extensions.get_extension_for_class(extension).value
    except x509.ExtensionNotFound:
        return {}
    found: dict[str, list[str]] = {}
    for general_name in general_names:
        kind = ALT_NAME_KINDS.get(type(general_name))
        if kind is not None:
            value = general_name.value
            text = value.rfc4514_string() if isinstance(value, x509.Name) else str(value)
            found.setdefault(kind, []).append(text)
    return {k: tuple(v) for k, v in found.items()}


def common_name(cert: x509.Certificate) -> str | None:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else None


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate the CA issued; `private_key_pem` is None when the caller supplied the key (a CSR)."""

    certificate_id: str
    certificate_pem: str
    public_key_pem: str
    private_key_pem: str | None


@dataclass(frozen=True)
class ServerCertificate:
    cert_path: Path
    key_path: Path
    names: tuple[str, ...]


class CertificateAuthority:
    """A root CA able to issue device and server certificates. Create or open one with `open()`."""

    def __init__(self, certificate: x509.Certificate, key: PrivateKey, settings: PkiSection) -> None:
        self.certificate = certificate
        self.key = key
        self.settings = settings
        self.certificate_pem = cert_pem(certificate)
        self.certificate_id = certificate_id(certificate)

    @classmethod
    def open(cls, pki_dir: Path, settings: PkiSection, create: bool = True) -> CertificateAuthority:
        """Load the CA from `pki_dir`, creating a new one first when there is none and `create` is set."""
        with _locked(pki_dir):
            cert_file, key_file = pki_dir / CA_CERT_FILE, pki_dir / CA_KEY_FILE
            if not cert_file.exists():
                if not create:
                    raise PkiError(f"no certificate authority in {pki_dir}: run `edgeloop pki init` first")
                cls._write(pki_dir, *cls._new_root(settings))
            return cls(load_certificate(cert_file.read_bytes()), load_private_key(key_file.read_bytes()), settings)

    @classmethod
    def import_existing(
        cls, pki_dir: Path, settings: PkiSection, cert_data: str, key_data: str
    ) -> CertificateAuthority:
        """Adopt an existing CA certificate and key (it must be a CA, valid now, and the key must match)."""
        cert, key = load_certificate(cert_data), load_private_key(key_data)
        if not is_ca(cert):
            raise PkiError("the certificate to import is not a CA certificate (basicConstraints CA:TRUE missing)")
        if public_key_pem(cert.public_key()) != public_key_pem(key.public_key()):  # type: ignore[arg-type]
            raise PkiError("the private key does not belong to the CA certificate")
        problem = validity_error(cert)
        if problem:
            raise PkiError(f"the CA certificate to import is {problem}")
        with _locked(pki_dir):
            cls._write(pki_dir, cert, key)
        return cls(cert, key, settings)

    @staticmethod
    def _new_root(settings: PkiSection) -> tuple[x509.Certificate, PrivateKey]:
        key = generate_key(settings.key_type)
        name = x509.Name([
            x509.NameAttribute(NameOID.COMMON_NAME, settings.ca_common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgeloop"),
        ])
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + dt.timedelta(days=settings.ca_validity_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        )
        return builder.sign(key, hashes.SHA256()), key

    @staticmethod
    def _write(pki_dir: Path, cert: x509.Certificate, key: PrivateKey) -> None:
        atomic_write(pki_dir / CA_KEY_FILE, key_pem(key).encode(), mode=0o600)
        atomic_write(pki_dir / CA_CERT_FILE, cert_pem(cert).encode(), mode=0o644)

    def issued(self, cert: x509.Certificate) -> bool:
        """True when this CA signed `cert`."""
        return is_issued_by(cert, self.certificate)

    def _leaf(
        self, subject: x509.Name, public_key: PublicKey, days: int, usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        now = dt.datetime.now(dt.UTC)
        not_after = min(now + dt.timedelta(days=days), self.certificate.not_valid_after_utc)
        is_rsa = isinstance(public_key, rsa.RSAPublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issue_device(self, name: str, public_key: PublicKey | None = None) -> IssuedCertificate:
        """A client-auth certificate with CN=`name`; a new key pair is made unless `public_key` is given."""
        key = None if public_key is not None else generate_key(self.settings.key_type)
        public = public_key if public_key is not None else key.public_key()  # type: ignore[union-attr]
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        cert = self._leaf(subject, public, self.settings.device_validity_days, ExtendedKeyUsageOID.CLIENT_AUTH)
        return IssuedCertificate(
            certificate_id(cert), cert_pem(cert), public_key_pem(public), key_pem(key) if key is not None else None
        )

    def sign_csr(self, csr_data: str | bytes) -> IssuedCertificate:
        """A client-auth certificate for a CSR: its subject and public key are kept, its signature checked."""
        raw = csr_data.encode() if isinstance(csr_data, str) else csr_data
        try:
            csr = x509.load_pem_x509_csr(raw)
        except ValueError as exc:
            raise CertificateValidation(f"not a valid PEM certificate signing request: {exc}") from exc
        if not csr.is_signature_valid:
            raise CertificateValidation("the certificate signing request's signature does not verify")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise CertificateValidation(f"unsupported key type {type(public).__name__} in CSR: use EC or RSA")
        cert = self._leaf(csr.subject, public, self.settings.device_validity_days, ExtendedKeyUsageOID.CLIENT_AUTH)
        return IssuedCertificate(certificate_id(cert), cert_pem(cert), public_key_pem(public), None)

    def ensure_server_certificate(self, pki_dir: Path, extra_names: Iterable[str] = ()) -> ServerCertificate:
        """The TLS server certificate in `pki_dir`, (re)issued when missing, from another CA, close to expiry
        or lacking one of the wanted names (localhost, loopback addresses, host names, configured SANs)."""
        names = server_names(self.settings, extra_names)
        cert_file, key_file = pki_dir / SERVER_CERT_FILE, pki_dir / SERVER_KEY_FILE
        with _locked(pki_dir):
            if cert_file.exists() and key_file.exists():
                current = load_certificate(cert_file.read_bytes())
                if self._server_certificate_fits(current, names):
                    return ServerCertificate(cert_file, key_file, names)
            key = generate_key(self.settings.key_type)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
            cert = self._leaf(
                subject, key.public_key(), self.settings.server_validity_days, ExtendedKeyUsageOID.SERVER_AUTH,
                [_general_name(n) for n in names],
            )
            atomic_write(key_file, key_pem(key).encode(), mode=0o600)
            atomic_write(cert_file, cert_pem(cert).encode(), mode=0o644)
        return ServerCertificate(cert_file, key_file, names)

    def _server_certificate_fits(self, cert: x509.Certificate, names: tuple[str, ...]) -> bool:
        if not self.issued(cert):
            return False
        if cert.not_valid_after_utc - dt.datetime.now(dt.UTC) < SERVER_RENEW_BEFORE:
            return False
        try:
            present = {
                str(n.value) for n in cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            }
        except x509.ExtensionNotFound:
            return False
        return {str(_general_name(n).value) for n in names} <= present


def server_names(settings: PkiSection, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Names the server certificate must carry: localhost and loopback, host names and addresses, extras."""
    names = ["localhost", "127.0.0.1", "::1"]
    if settings.include_host_addresses:
        names.extend(_host_names_and_addresses())
    names.extend(settings.server_sans)
    names.extend(extra)
    return tuple(dict.fromkeys(n for n in names if n))


def _host_names_and_addresses() -> list[str]:
    hostname = socket.gethostname()
    found = [hostname]
    with contextlib.suppress(OSError):
        for info in socket.getaddrinfo(hostname, None, proto=socket.IPPROTO_TCP):
            found.append(str(ipaddress.ip_address(str(info[4][0]).split("%")[0])))
    return found


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@contextlib.contextmanager
def _locked(pki_dir: Path) -> Iterator[None]:
    """Serialise CA and server-certificate creation between processes (the CLI and a running gateway)."""
    pki_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(pki_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
