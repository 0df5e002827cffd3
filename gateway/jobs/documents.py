"""Job documents as devices receive them: `${aws:iot:s3-presigned-url:<s3 url>}` placeholders become
presigned GET URLs on the gateway's own S3 endpoint (SigV4 query signing, as S3 presigned URLs)."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from gateway.awsapi.sigv4 import ALGORITHM, UNSIGNED_PAYLOAD, Credential, canonical_request, signature

PLACEHOLDER = re.compile(r"\$\{aws:iot:s3-presigned-url:([^}]+)\}")
_PATH_STYLE = re.compile(r"https?://s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?/([^/]+)/(.+)")
_VIRTUAL_HOST = re.compile(r"https?://([^/]+?)\.s3(?:[.-][a-z0-9-]+)?\.amazonaws\.com(?:\.cn)?/(.+)")


@dataclass(frozen=True)
class Presigner:
    """Signs GET URLs for objects of the local S3 endpoint."""

    endpoint: str  # e.g. http://127.0.0.1:4566
    access_key: str
    secret_key: str
    region: str

    def url(self, bucket: str, key: str, expires: int, now: dt.datetime | None = None) -> str:
        """A presigned GET URL for `bucket/key`, valid for `expires` seconds."""
        now = now or dt.datetime.now(dt.UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        credential = Credential(self.access_key, amz_date[:8], self.region, "s3")
        host = urlsplit(self.endpoint).netloc
        path = f"/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        params = {
            "X-Amz-Algorithm": ALGORITHM,
            "X-Amz-Credential": f"{self.access_key}/{credential.date}/{self.region}/s3/aws4_request",
            "X-Amz-Date": amz_date, "X-Amz-Expires": str(expires), "X-Amz-SignedHeaders": "host",
        }
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
        creq = canonical_request("GET", path, query, {"host": host}, ["host"], UNSIGNED_PAYLOAD, "s3")
        signed = signature(self.secret_key, credential, amz_date, creq)
        return f"{self.endpoint.rstrip('/')}{path}?{query}&X-Amz-Signature={signed}"


def s3_location(url: str) -> tuple[str, str] | None:
    """(bucket, key) of an S3 URL in path style or virtual-host style; None when it is neither."""
    for pattern in (_PATH_STYLE, _VIRTUAL_HOST):
        match = pattern.fullmatch(url)
        if match:
            return match.group(1), unquote(match.group(2))
    return None


def has_placeholders(document: str) -> bool:
    return PLACEHOLDER.search(document) is not None


def resolve(document: str, presigner: Presigner | None, expires: int) -> dict[str, Any]:
    """The parsed document with every presigned-URL placeholder in its strings replaced.

    Placeholders whose URL is not an S3 URL, or when there is no S3 endpoint, are left as they are.
    """

    def substitute(match: re.Match[str]) -> str:
        location = s3_location(match.group(1))
        if location is None or presigner is None:
            return match.group(0)
        return presigner.url(*location, expires=expires)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return PLACEHOLDER.sub(substitute, value)
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return walk(json.loads(document))
