"""TLS contexts built from the gateway's PKI: the mutual-TLS server side and a device's client side."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from gateway.identity.registry import Registry


def server_context(
    cert_path: Path, key_path: Path, trusted_ca_pems: Sequence[str], alpn: Sequence[str] = (),
    *, require_certificate: bool = True,
) -> ssl.SSLContext:
    """A TLS ≥ 1.2 server context that requires a client certificate chaining to one of `trusted_ca_pems`.

    The handshake only proves the chain; whether the certificate is registered and ACTIVE is
    `Registry.authenticate`'s decision on the DER from `getpeercert(binary_form=True)`.
    With `require_certificate=False` (CERT_OPTIONAL) a client may present none, but one it presents must
    still chain to a trusted CA; the listener then decides per request what a certificate-less client may do.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED if require_certificate else ssl.CERT_OPTIONAL
    context.load_cert_chain(cert_path, key_path)
    context.load_verify_locations(cadata="\n".join(trusted_ca_pems))
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context


def gateway_server_context(
    registry: Registry, alpn: Sequence[str] = (), *, require_certificate: bool = True
) -> ssl.SSLContext:
    """`server_context` with the gateway's server certificate (made or renewed as needed) and trusted CAs."""
    server = registry.server_certificate()
    return server_context(server.cert_path, server.key_path, registry.certs.trusted_ca_pems(), alpn,
                          require_certificate=require_certificate)


def client_context(
    ca_file: Path, cert_file: Path, key_file: Path, alpn: Sequence[str] = ()
) -> ssl.SSLContext:
    """A device's TLS context: trusts the gateway CA, verifies the host name, presents its certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if alpn:
        context.set_alpn_protocols(list(alpn))
    return context
