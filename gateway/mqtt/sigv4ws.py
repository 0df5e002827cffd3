"""MQTT over WebSocket authenticated with SigV4, as AWS IoT accepts it on its device endpoint.

What the AWS IoT Device SDK v2 (`websockets_with_default_aws_signing`, awscrt 0.36) sends, captured:

    GET /mqtt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=<key>%2F<date>%2F<region>%2Fiotdevicegateway%2F
        aws4_request&X-Amz-Date=<date>&X-Amz-SignedHeaders=connection%3Bhost[&X-Amz-Security-Token=<token>]
        &X-Amz-Signature=<hex>
    Host: <endpoint without the port>    Connection: Upgrade    Upgrade: websocket

- The signature is in the query string; no `X-Amz-Expires`: such a URL is valid within the 15-minute skew
  window around `X-Amz-Date` (with `X-Amz-Expires`, until date + expires; never dated more than 15 minutes ahead).
- The payload hash is the SHA-256 of the empty body, not S3's `UNSIGNED-PAYLOAD`.
- `X-Amz-Security-Token` is appended after signing (AWS IoT does not sign it). botocore's `SigV4QueryAuth` signs
  it: both are accepted. The token itself is not checked: the configured credentials are long-term keys.
- A header-signed upgrade (`Authorization: AWS4-HMAC-SHA256 ...`) is verified the same way.

The signature is checked by `gateway.awsapi.sigv4.verify` against the configured API credentials.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from multidict import CIMultiDict

from edgeloop.config import ApiSection
from gateway.awsapi import sigv4
from gateway.mqtt.errors import MqttError

if TYPE_CHECKING:
    from gateway.mqtt.authz import SigV4Authenticator

log = logging.getLogger("edgeloop.mqtt")

SERVICE = "iotdevicegateway"
SECURITY_TOKEN = "X-Amz-Security-Token"
DEFAULT_SECRET_KEY = ApiSection().secret_key
FAILURE_REASONS = ("off", "malformed", "wrong_scope", "unknown_key", "mismatch", "expired", "skewed")
COUNTERS = ("sigv4_failures", *(f"sigv4_failures_{reason}" for reason in FAILURE_REASONS))
_KIND_REASONS = {"missing": "malformed", "malformed": "malformed", "unknown-key": "unknown_key",
                 "mismatch": "mismatch", "expired": "expired", "skewed": "skewed"}


class WebSocketAuthError(MqttError):
    """A WebSocket upgrade refused before it happened: `reason` is one of `FAILURE_REASONS` (or
    `no_certificate`), `status` the HTTP status the client gets."""

    def __init__(self, reason: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


@dataclass(frozen=True)
class SigV4Gate:
    """Whether SigV4 WebSocket connections are accepted, and if not, why (a sentence for logs and clients)."""

    enabled: bool
    why_off: str = ""


def sigv4_gate(setting: bool, api: ApiSection, bound_hosts: Iterable[str]) -> SigV4Gate:
    """Secure by default: on when `setting` is true and either the listener is bound to loopback only or the API
    credentials are not the built-in defaults (anyone who read the docs knows those)."""
    if not setting:
        return SigV4Gate(False, "mqtt.sigv4_websocket = false; set it to true to turn it on")
    if not api.access_key or not api.secret_key:
        return SigV4Gate(False, "api.access_key / api.secret_key are empty; set both to turn it on")
    hosts = list(bound_hosts)
    if hosts and all(_is_loopback(host) for host in hosts):
        return SigV4Gate(True)
    if api.secret_key == DEFAULT_SECRET_KEY:
        return SigV4Gate(False, f"api.secret_key is the built-in default and the device listener is bound to "
                                f"{', '.join(hosts) or 'all addresses'}, not to loopback only; set "
                                f"api.access_key and api.secret_key to turn it on")
    return SigV4Gate(True)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def is_signed(headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
    """Whether a request carries a SigV4 signature (query string or Authorization header)."""
    return "X-Amz-Signature" in query or headers.get("Authorization", "").startswith(sigv4.ALGORITHM)


def verify_upgrade(raw_path: str, raw_query: str, headers: Mapping[str, str], query: Mapping[str, str],
                   secrets: Mapping[str, str], region: str, now: dt.datetime | None = None) -> sigv4.Credential:
    """Verify a signed `GET /mqtt` upgrade as AWS IoT does; return its credential scope, or raise
    `WebSocketAuthError` saying what was wrong."""
    credential = sigv4.credential_of(headers, query)
    if credential is None:
        raise WebSocketAuthError("malformed", "the SigV4 signature has no valid X-Amz-Credential / Authorization")
    if credential.service != SERVICE or credential.region != region:
        raise WebSocketAuthError("wrong_scope", f"Credential should be scoped to region {region!r} and service "
                                 f"{SERVICE!r}, not {credential.region!r} / {credential.service!r}")
    signed_headers = CIMultiDict(headers)
    signed_headers.setdefault("x-amz-content-sha256", sigv4.EMPTY_SHA256)
    params = dict(query)
    if "X-Amz-Signature" in params:
        _check_not_ahead(params.get("X-Amz-Date", ""), now)
        params.setdefault("X-Amz-Expires", str(sigv4.MAX_SKEW_SECONDS))
    variants = [raw_query]
    if SECURITY_TOKEN in params:  # appended after signing (AWS IoT, awscrt), or signed (botocore)
        variants.insert(0, _without(raw_query, SECURITY_TOKEN))
    for attempt, variant in enumerate(variants, 1):
        try:
            return sigv4.verify("GET", raw_path, variant, signed_headers, params, sigv4.EMPTY_SHA256, secrets, now)
        except sigv4.SignatureError as exc:
            if exc.kind == "mismatch" and attempt < len(variants):
                continue
            raise WebSocketAuthError(_KIND_REASONS.get(exc.kind, "malformed"), exc.message) from None
    raise AssertionError("unreachable: the last variant returns or raises")


def _check_not_ahead(amz_date: str, now: dt.datetime | None) -> None:
    try:
        when = dt.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise WebSocketAuthError("malformed", f"X-Amz-Date must be in the ISO8601 basic format, not {amz_date!r}"
                                 ) from None
    now_ts = now.timestamp() if now is not None else time.time()
    if when - now_ts > sigv4.MAX_SKEW_SECONDS:
        raise WebSocketAuthError("skewed", "Signature not yet current: X-Amz-Date is more than 15 minutes ahead of "
                                 "the server's time")


def _without(raw_query: str, name: str) -> str:
    return "&".join(p for p in raw_query.split("&") if unquote(p.partition("=")[0]) != name)


@dataclass(frozen=True)
class SigV4WebSocket:
    """Everything the HTTPS app needs to admit a signed upgrade: the gate, the credentials and the principal."""

    gate: SigV4Gate
    secrets: Mapping[str, str]
    region: str
    authenticator: SigV4Authenticator

    def admit(self, raw_path: str, raw_query: str, headers: Mapping[str, str],
              query: Mapping[str, str]) -> SigV4Authenticator:
        """The connection's authenticator (bound to the signing access key), or `WebSocketAuthError`."""
        if not self.gate.enabled:
            raise WebSocketAuthError("off", f"SigV4 WebSocket is off: {self.gate.why_off}")
        credential = verify_upgrade(raw_path, raw_query, headers, query, self.secrets, self.region)
        return self.authenticator.for_access_key(credential.access_key)


def count_refusal(metrics: MutableMapping[str, int], peer: str | None, exc: WebSocketAuthError,
                  access_key: str | None) -> None:
    """Count a refused signed upgrade in `sigv4_failures` and `sigv4_failures_<reason>`, and log it."""
    metrics["sigv4_failures"] += 1
    metrics[f"sigv4_failures_{exc.reason}"] += 1
    log.info("event=sigv4_refused listener=https peer=%s reason=%s access_key=%s detail=%r", peer, exc.reason,
             access_key, exc.message)


__all__ = ["COUNTERS", "FAILURE_REASONS", "SigV4Gate", "SigV4WebSocket", "WebSocketAuthError", "count_refusal",
           "is_signed", "sigv4_gate", "verify_upgrade"]
