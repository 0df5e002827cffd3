"""The certificate authority: CA files, device and server certificates, CSRs, checked with OpenSSL too."""

from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeloop.config import PkiSection
from gateway.identity.awserrors import CertificateValidation
from gateway.identity.errors import PkiError
from gateway.identity.pki import (
    CertificateAuthority,
    alt_names,
    certificate_id,
    key_pem,
    load_certificate,
    name_fields,
)

openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    return tmp_path / "pki"


@pytest.fixture
def ca(pki_dir: Path) -> CertificateAuthority:
    return CertificateAuthority.open(pki_dir, PkiSection(include_host_addresses=False))


def test_ca_is_created_once_with_a_private_key_only_the_owner_reads(pki_dir: Path, ca: CertificateAuthority) -> None:
    assert stat.S_IMODE((pki_dir / "ca.key").stat().st_mode) == 0o600
    again = CertificateAuthority.open(pki_dir, PkiSection())
    assert again.certificate_id == ca.certificate_id
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is True


def test_open_without_create_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="edgeloop pki init"):
        CertificateAuthority.open(tmp_path / "empty", PkiSection(), create=False)


@openssl
def test_device_certificate_verifies_with_openssl_and_id_is_its_sha256(
    tmp_path: Path, pki_dir: Path, ca: CertificateAuthority
) -> None:
    issued = ca.issue_device("sensor-7")
    cert = load_certificate(issued.certificate_pem)
    assert issued.certificate_id == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "sensor-7"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    path = tmp_path / "device.pem"
    path.write_text(issued.certificate_pem)
    verify = subprocess.run(
        ["openssl", "verify", "-purpose", "sslclient", "-CAfile", str(pki_dir / "ca.pem"), str(path)],
        capture_output=True, text=True, check=False,
    )
    assert verify.returncode == 0, verify.stderr
    fingerprint = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout
    assert fingerprint.split("=", 1)[1].strip().replace(":", "").lower() == issued.certificate_id
    key = serialization.load_pem_private_key(issued.private_key_pem.encode(), None)  # type: ignore[union-attr]
    assert isinstance(key, ec.EllipticCurvePrivateKey)


def test_rsa_key_type(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path / "pki", PkiSection(key_type="rsa"))
    issued = ca.issue_device("d")
    assert isinstance(load_certificate(issued.certificate_pem).public_key(), rsa.RSAPublicKey)
    assert ca.issued(load_certificate(issued.certificate_pem))


def test_certificate_of_another_ca_is_not_ours(tmp_path: Path, ca: CertificateAuthority) -> None:
    other = CertificateAuthority.open(tmp_path / "other", PkiSection())
    assert not ca.issued(load_certificate(other.issue_device("x").certificate_pem))


def _csr(name: str) -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme")]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM)


def test_csr_keeps_subject_and_key(ca: CertificateAuthority) -> None:
    key, csr = _csr("dev-9")
    issued = ca.sign_csr(csr)
    cert = load_certificate(issued.certificate_pem)
    assert issued.private_key_pem is None
    assert name_fields(cert.subject) == {"CommonName": ("dev-9",), "Organization": ("acme",)}
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()


def test_malformed_csr_is_a_validation_error(ca: CertificateAuthority) -> None:
    with pytest.raises(CertificateValidation, match="signing request"):
        ca.sign_csr("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_server_certificate_names_and_reissue(pki_dir: Path, ca: CertificateAuthority) -> None:
    first = ca.ensure_server_certificate(pki_dir)
    cert = load_certificate(first.cert_path.read_bytes())
    assert alt_names(cert) == {"DNSName": ("localhost",), "IPAddress": ("127.0.0.1", "::1")}
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    assert ca.ensure_server_certificate(pki_dir).cert_path.read_bytes() == first.cert_path.read_bytes()
    renamed = ca.ensure_server_certificate(pki_dir, ["gw.example.test"])
    assert "gw.example.test" in alt_names(load_certificate(renamed.cert_path.read_bytes()))["DNSName"]


def test_import_existing_ca(tmp_path: Path) -> None:
    source = CertificateAuthority.open(tmp_path / "src", PkiSection())
    imported = CertificateAuthority.import_existing(
        tmp_path / "dst", PkiSection(), source.certificate_pem, key_pem(source.key)
    )
    assert imported.certificate_id == source.certificate_id
    assert CertificateAuthority.open(tmp_path / "dst", PkiSection()).certificate_id == source.certificate_id
    stranger = CertificateAuthority.open(tmp_path / "x", PkiSection())
    with pytest.raises(PkiError, match="does not belong"):
        CertificateAuthority.import_existing(
            tmp_path / "y", PkiSection(), source.certificate_pem, key_pem(stranger.key)
        )
    leaf = source.issue_device("leaf")
    with pytest.raises(PkiError, match="not a CA"):
        CertificateAuthority.import_existing(
            tmp_path / "z", PkiSection(), leaf.certificate_pem, leaf.private_key_pem or ""
        )


def test_certificate_id_of_der_and_object_agree(ca: CertificateAuthority) -> None:
    cert = load_certificate(ca.issue_device("a").certificate_pem)
    assert certificate_id(cert) == certificate_id(cert.public_bytes(serialization.Encoding.DER))
    with pytest.raises(CertificateValidation):
        load_certificate("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
