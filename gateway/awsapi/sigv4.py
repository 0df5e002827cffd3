"""AWS Signature Version 4: signing (our CLI client) and verification (the API server).

Both sides build the canonical request with the same functions, so what botocore signs we verify,
and what we sign a real AWS endpoint accepts. Header auth and presigned query auth are supported.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_SKEW_SECONDS = 15 * 60
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


class SignatureError(Exception):
    """Why a request's signature was refused; `kind` selects the AWS error code the service returns."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "missing", "malformed", "unknown-key", "mismatch", "skewed", "expired"
        self.message = message


@dataclass(frozen=True)
class Credential:
    """The credential scope of a signed request."""

    access_key: str
    date: str
    region: str
    service: str


def _quote(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_uri(raw_path: str, service: str) -> str:
    """The canonical URI: S3 uses the path as sent; other services drop dot segments and empty
    segments (RFC 3986 5.2.4 plus AWS's rule), then percent-encode the encoded path again."""
    if service == "s3":
        return raw_path or "/"
    if not raw_path or raw_path == "/":
        return "/"
    segments: list[str] = []
    for segment in raw_path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    first = "/" if raw_path.startswith("/") else ""
    last = "/" if raw_path.endswith("/") and segments else ""
    return quote(first + "/".join(segments) + last, safe="/~")


def canonical_query(raw_query: str, exclude: str | None = None) -> str:
    """Sorted, uniformly re-encoded query parameters."""
    pairs = []
    for part in raw_query.split("&") if raw_query else ():
        key, _, value = part.partition("=")
        key = _quote(unquote(key.replace("+", " ")))
        if key == exclude:
            continue
        pairs.append((key, _quote(unquote(value.replace("+", " ")))))
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
    service: str,
    exclude_query: str | None = None,
) -> str:
    lines = [method.upper(), canonical_uri(raw_path, service), canonical_query(raw_query, exclude_query)]
    for name, value in zip(signed_headers, _header_values(headers, signed_headers), strict=True):
        lines.append(f"{name}:{' '.join(value.split())}")
    return "\n".join([*lines, "", ";".join(signed_headers), payload_hash])


def _header_values(headers: Mapping[str, str], names: Sequence[str]) -> list[str]:
    """The value of each lower-case header name (the last one sent when repeated, "" when absent)."""
    getall = getattr(headers, "getall", None)
    if getall is not None:  # a case-insensitive multidict (aiohttp's request headers): no copy needed
        return [(getall(name, None) or [""])[-1] for name in names]
    lowered = {k.lower(): v for k, v in headers.items()}
    return [lowered.get(name, "") for name in names]


@lru_cache(maxsize=64)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(f"AWS4{secret_key}".encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def signature(secret_key: str, credential: Credential, amz_date: str, creq: str) -> str:
    scope = f"{credential.date}/{credential.region}/{credential.service}/aws4_request"
    to_sign = f"{ALGORITHM}\n{amz_date}\n{scope}\n{hashlib.sha256(creq.encode()).hexdigest()}"
    key = signing_key(secret_key, credential.date, credential.region, credential.service)
    return hmac.digest(key, to_sign.encode(), "sha256").hex()


def parse_credential(value: str) -> Credential:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise SignatureError("malformed", f"Credential should be scoped to a valid region, not {value!r}")
    return Credential(*parts[:4])


def credential_of(headers: Mapping[str, str], query: Mapping[str, str]) -> Credential | None:
    """The credential scope a request claims, without verifying anything (used for routing)."""
    auth = headers.get("Authorization", "")
    try:
        if auth.startswith(ALGORITHM):
            return _parse_authorization(auth)[0]
        if "X-Amz-Credential" in query:
            return parse_credential(query["X-Amz-Credential"])
    except SignatureError:
        return None
    return None


@lru_cache(maxsize=64)
def _parse_authorization(auth: str) -> tuple[Credential, tuple[str, ...], str]:
    """(credential, signed header names, signature) of an Authorization header. Cached: the server routes a
    request by its credential scope, then verifies it, and both read the same header."""
    fields = _auth_fields(auth)
    return parse_credential(fields["Credential"]), tuple(fields["SignedHeaders"].split(";")), fields["Signature"]


def _auth_fields(auth: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in auth[len(ALGORITHM):].split(","):
        key, _, value = item.strip().partition("=")
        if key:
            fields[key] = value
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing:
        raise SignatureError("malformed", f"Authorization header requires '{missing[0]}' parameter")
    return fields


@lru_cache(maxsize=256)
def _amz_timestamp(value: str) -> float:
    """Seconds since the epoch of an X-Amz-Date (ISO 8601 basic, UTC). Cached: requests of one second share it."""
    try:
        return dt.datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError:
        raise SignatureError("malformed", f"X-Amz-Date must be in the ISO8601 basic format, not {value!r}") from None


def verify(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body_sha256: str | None,
    secrets: Mapping[str, str],
    now: dt.datetime | None = None,
) -> Credential:
    """Verify a request's SigV4 signature (header or presigned query); return its credential scope.

    `body_sha256` is the hex SHA-256 of the body when the caller has read it; it is used when the
    request carries no `x-amz-content-sha256` header.
    """
    now_ts = now.timestamp() if now is not None else time.time()
    auth = headers.get("Authorization")
    if auth is not None:
        if not auth.startswith(ALGORITHM):
            raise SignatureError("malformed", "Only AWS4-HMAC-SHA256 signatures are supported")
        credential, signed, provided = _parse_authorization(auth)
        amz_date = headers.get("X-Amz-Date") or ""
        if not amz_date:
            raise SignatureError("malformed", "Authorization requires an X-Amz-Date header")
        if abs(now_ts - _amz_timestamp(amz_date)) > MAX_SKEW_SECONDS:
            raise SignatureError("skewed", "Signature expired: the difference between the request time and the "
                                 "server's time is too large")
        payload_hash = headers.get("x-amz-content-sha256") or body_sha256 or EMPTY_SHA256
        exclude = None
    elif "X-Amz-Signature" in query:
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise SignatureError("malformed", "X-Amz-Algorithm must be AWS4-HMAC-SHA256")
        credential = parse_credential(query.get("X-Amz-Credential", ""))
        signed = tuple(query.get("X-Amz-SignedHeaders", "host").split(";"))
        provided = query["X-Amz-Signature"]
        amz_date = query.get("X-Amz-Date", "")
        when = _amz_timestamp(amz_date)
        try:
            expires = int(query.get("X-Amz-Expires", "0"))
        except ValueError:
            raise SignatureError("malformed", "X-Amz-Expires must be a number of seconds") from None
        if not 0 < expires <= MAX_PRESIGN_EXPIRES:
            raise SignatureError("malformed", "X-Amz-Expires must be between 1 and 604800 seconds")
        if now_ts > when + expires:
            raise SignatureError("expired", "Request has expired")
        payload_hash = headers.get("x-amz-content-sha256") or UNSIGNED_PAYLOAD
        exclude = "X-Amz-Signature"
    elif "Signature" in query and "AWSAccessKeyId" in query:
        return _verify_v2_query(method, raw_path, raw_query, headers, query, secrets, now_ts)
    else:
        raise SignatureError("missing", "Missing Authentication Token")
    secret = secrets.get(credential.access_key)
    if secret is None:
        raise SignatureError("unknown-key", "The AWS Access Key Id you provided does not exist in our records.")
    creq = canonical_request(method, raw_path, raw_query, headers, signed, payload_hash, credential.service, exclude)
    if not hmac.compare_digest(signature(secret, credential, amz_date, creq), provided):
        raise SignatureError("mismatch", "The request signature we calculated does not match the signature you "
                             "provided. Check your AWS Secret Access Key and signing method.")
    return credential


# Sub-resources that are part of an S3 SigV2 canonical resource (as botocore's HmacV1 signers list them).
_V2_SUBRESOURCES = frozenset(
    "accelerate acl cors defaultObjectAcl location logging partNumber policy requestPayment torrent versioning "
    "versionId versions website uploads uploadId response-content-type response-content-language response-expires "
    "response-cache-control response-content-disposition response-content-encoding delete lifecycle tagging "
    "restore storageClass notification replication analytics metrics inventory select select-type "
    "object-lock".split()
)


def _verify_v2_query(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                     query: Mapping[str, str], secrets: Mapping[str, str], now: float) -> Credential:
    """S3's legacy presigned URLs (SigV2 query auth), which botocore still generates by default for S3."""
    try:
        expires = int(query["Expires"])
    except ValueError:
        raise SignatureError("malformed", "Expires must be a Unix timestamp") from None
    if now > expires:
        raise SignatureError("expired", "Request has expired")
    secret = secrets.get(query["AWSAccessKeyId"])
    if secret is None:
        raise SignatureError("unknown-key", "The AWS Access Key Id you provided does not exist in our records.")
    lowered = {k.lower(): v for k, v in headers.items()}
    amz = "".join(f"{k}:{lowered[k].strip()}\n" for k in sorted(lowered) if k.startswith("x-amz-"))
    subresources = sorted(
        (k, unquote(v)) for k, _, v in (p.partition("=") for p in raw_query.split("&") if p)
        if k in _V2_SUBRESOURCES
    )
    resource = raw_path + ("?" + "&".join(f"{k}={v}" if v else k for k, v in subresources) if subresources else "")
    to_sign = "\n".join([method.upper(), lowered.get("content-md5", ""), lowered.get("content-type", ""),
                         str(expires), amz + resource])
    expected = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), hashlib.sha1).digest()).decode()
    if not hmac.compare_digest(expected, query["Signature"]):
        raise SignatureError("mismatch", "The request signature we calculated does not match the signature you "
                             "provided. Check your key and signing method.")
    return Credential(query["AWSAccessKeyId"], "", "us-east-1", "s3")


def sign_headers(
    method: str,
    url_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    now: dt.datetime | None = None,
) -> dict[str, str]:
    """Return `headers` plus X-Amz-Date, x-amz-content-sha256 and Authorization for a header-signed request."""
    now = now or dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    out = dict(headers)
    out["X-Amz-Date"] = amz_date
    out["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    signed = sorted(k.lower() for k in out)
    credential = Credential(access_key, amz_date[:8], region, service)
    creq = canonical_request(method, url_path, raw_query, out, signed, out["x-amz-content-sha256"], service)
    sig = signature(secret_key, credential, amz_date, creq)
    scope = f"{access_key}/{credential.date}/{region}/{service}/aws4_request"
    out["Authorization"] = f"{ALGORITHM} Credential={scope}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    return out
