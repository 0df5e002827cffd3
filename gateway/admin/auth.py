"""Who may use the admin API: a request signed (SigV4) with the configured API credentials, or one carrying
``Authorization: Bearer <token>`` with the token kept in ``<home>/admin-token`` (mode 0600).

The body is read here, because a SigV4 signature covers it: a request is admitted with its body or not at all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from gateway.admin.errors import PayloadTooLarge, Unauthenticated
from gateway.awsapi import sigv4
from gateway.storage.durable import atomic_write, fsync_dir

log = logging.getLogger("edgeloop.admin")

TOKEN_FILE = "admin-token"
TOKEN_BYTES = 32
TOKEN_MODE = 0o600
MAX_BODY = 1024 * 1024  # rule payloads and test messages (a 128 KiB MQTT payload in base64) fit easily
SIGNED_BODY_CAP = 64 * 1024 * 1024  # what is hashed to check a signature before answering "too large"
CHUNK = 64 * 1024


def token_path(home: Path) -> Path:
    """Where the admin bearer token is kept."""
    return home / TOKEN_FILE


def ensure_token(home: Path) -> str:
    """The admin token of data directory `home`, created (32 random bytes, URL-safe, mode 0600) when missing.
    A token file readable by others is tightened to 0600."""
    path = token_path(home)
    token = _read_token(path)
    if token:
        return token
    home.mkdir(parents=True, exist_ok=True)
    fresh = secrets.token_urlsafe(TOKEN_BYTES)
    if path.exists():  # empty or blank (e.g. cut short by a crash): replace it
        atomic_write(path, (fresh + "\n").encode("ascii"), mode=TOKEN_MODE)
        return fresh
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    atomic_write(tmp, (fresh + "\n").encode("ascii"), mode=TOKEN_MODE)
    try:
        os.link(tmp, path)  # fails when another process created the file first: then its token wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    fsync_dir(home)
    token = _read_token(path)
    if not token:
        raise OSError(f"cannot create the admin token file {path}")
    log.info("event=admin_token_created path=%s", path)
    return token


def _read_token(path: Path) -> str | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    if st.st_mode & 0o077:
        log.warning("event=admin_token_mode_fixed path=%s mode=%o", path, st.st_mode & 0o777)
        os.chmod(path, TOKEN_MODE)
    return path.read_text("utf-8", errors="replace").strip() or None


@dataclass(frozen=True)
class Caller:
    """An admitted request: how it authenticated and, for SigV4, the access key."""

    scheme: str  # "bearer" or "sigv4"
    access_key: str | None
    body: bytes


class AdminAuth:
    """Admits requests made with the bearer token or signed with one of `secrets` (access key -> secret)."""

    def __init__(self, token: str, secrets: Mapping[str, str], max_body: int = MAX_BODY) -> None:
        self._token = token.encode("utf-8", "surrogateescape")
        self._secrets = secrets
        self.max_body = max_body

    async def admit(self, request: web.BaseRequest) -> Caller:
        """The caller and the request's body; Unauthenticated or PayloadTooLarge when refused."""
        auth = request.headers.get("Authorization", "")
        scheme, _, credentials = auth.partition(" ")
        if scheme.lower() == "bearer":
            if not hmac.compare_digest(credentials.strip().encode("utf-8", "surrogateescape"), self._token):
                raise Unauthenticated("the bearer token is not this gateway's admin token")
            return Caller("bearer", None, await self._read_body(request, self.max_body))
        presigned = not auth and "X-Amz-Signature" in request.query
        if not (auth.startswith(sigv4.ALGORITHM) or presigned):
            raise Unauthenticated("send Authorization: Bearer <the token in the data directory's admin-token file> "
                                  "or sign the request (SigV4) with the gateway's API credentials")
        body = await self._read_body(request, SIGNED_BODY_CAP)
        digest = hashlib.sha256(body).hexdigest()
        declared = request.headers.get("x-amz-content-sha256")
        if declared is not None and declared != digest and (body or declared != sigv4.UNSIGNED_PAYLOAD):
            raise Unauthenticated("x-amz-content-sha256 does not match the body: the body must be signed")
        if declared is None and presigned and body:
            raise Unauthenticated("a presigned request cannot carry a body: sign the Authorization header instead")
        url = request.rel_url
        try:
            credential = sigv4.verify(request.method, url.raw_path, url.raw_query_string, request.headers,
                                      request.query, digest, self._secrets)
        except sigv4.SignatureError as exc:
            raise Unauthenticated(f"signature refused ({exc.kind}): {exc.message}") from None
        if len(body) > self.max_body:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        return Caller("sigv4", credential.access_key, body)

    async def _read_body(self, request: web.BaseRequest, cap: int) -> bytes:
        """The body, up to `cap` bytes (beyond it: PayloadTooLarge, without reading the rest)."""
        length = request.content_length
        if length is not None and length > cap:
            raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > cap:
                raise PayloadTooLarge(f"the request body is larger than {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)
