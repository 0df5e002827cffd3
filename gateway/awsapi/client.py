"""A small synchronous SigV4 client, so our CLI can talk to the running gateway without boto3."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from edgeloop.config import Config
from gateway.awsapi import sigv4
from gateway.awsapi.errors import AwsError


class AwsClient:
    """Signed requests to an AWS-compatible endpoint (ours by default)."""

    def __init__(self, endpoint: str, access_key: str, secret_key: str, region: str = "us-east-1",
                 timeout: float = 30.0) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.timeout = timeout

    @classmethod
    def for_config(cls, config: Config) -> AwsClient:
        """A client for the gateway that `config` describes."""
        host = config.api.host if config.api.host not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        return cls(f"http://{host}:{config.api.port}", config.api.access_key, config.api.secret_key,
                   config.aws.region)

    def request(self, service: str, method: str, path: str, query: dict[str, str] | None = None,
                body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Send one signed request; return (status, headers, body) for any HTTP status."""
        raw_path = quote(path, safe="/~") if service != "s3" else quote(path, safe="/~!$&'()*+,;=:@")
        raw_query = urlencode(sorted((query or {}).items()), quote_via=quote)
        host = urlsplit(self.endpoint).netloc
        signed = sigv4.sign_headers(method, raw_path, raw_query, {"Host": host, **(headers or {})}, body,
                                    self.access_key, self.secret_key, self.region, service)
        url = self.endpoint + raw_path + (f"?{raw_query}" if raw_query else "")
        req = urllib.request.Request(url, data=body if method not in ("GET", "HEAD") else None, method=method,
                                     headers=signed)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()
        except (urllib.error.URLError, OSError) as exc:
            raise AwsError("EndpointUnreachable", f"cannot reach {self.endpoint}: {exc}. Is the gateway running "
                           "(edgeloop gateway run)?", 503, sender=False) from None

    def json(self, service: str, target: str, body: dict[str, Any],
             content_type: str = "application/x-amz-json-1.1") -> dict[str, Any]:
        """Call an awsJson operation (`target` like "Kinesis_20131202.ListStreams"); raise AwsError on failure."""
        status, _, data = self.request(service, "POST", "/", body=json.dumps(body).encode(),
                                       headers={"X-Amz-Target": target, "Content-Type": content_type})
        parsed: dict[str, Any] = json.loads(data) if data else {}
        if status >= 300:
            code = str(parsed.get("__type", "UnknownError")).rsplit("#", 1)[-1]
            raise AwsError(code, str(parsed.get("message") or parsed.get("Message") or ""), status)
        return parsed
