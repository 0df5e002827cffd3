"""Object-level S3 operations on the wire: PutObject, CopyObject, GetObject (ranges, conditions), Head, Delete."""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web

from gateway.sinks.s3 import errors
from gateway.sinks.s3.checksums import ALGORITHMS
from gateway.sinks.s3.engine import MAX_OBJECT
from gateway.sinks.s3.http_bucket import xml
from gateway.sinks.s3.model import NULL_VERSION, ObjectVersion
from gateway.sinks.s3.xmlshapes import document, http_date, iso

if TYPE_CHECKING:
    from gateway.sinks.s3.blobs import Body
    from gateway.sinks.s3.wire import Handler, S3Call

STORED_HEADERS = ("cache-control", "content-disposition", "content-encoding", "content-language", "expires")
RESPONSE_OVERRIDES = {"response-content-type": "Content-Type", "response-content-language": "Content-Language",
                      "response-expires": "Expires", "response-cache-control": "Cache-Control",
                      "response-content-disposition": "Content-Disposition",
                      "response-content-encoding": "Content-Encoding"}
READ_CHUNK = 256 * 1024


def user_metadata(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-amz-meta-"):]: v for k, v in headers.items() if k.startswith("x-amz-meta-")}


def stored_headers(headers: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in headers.items() if k in STORED_HEADERS}
    if "content-encoding" in out:  # aws-chunked is a transfer detail, not the object's encoding
        parts = [p.strip() for p in out["content-encoding"].split(",") if p.strip() != "aws-chunked"]
        if parts:
            out["content-encoding"] = ",".join(parts)
        else:
            del out["content-encoding"]
    return out


def claimed_checksums(headers: dict[str, str]) -> dict[str, str]:
    return {alg: headers[f"x-amz-checksum-{alg}"] for alg in ALGORITHMS if f"x-amz-checksum-{alg}" in headers}


def request_body(call: S3Call, claimed: dict[str, str]) -> Body:
    """The request body as a stream; EntityTooLarge up front when the declared length is over the limit.

    For aws-chunked bodies, trailing checksums are added to `claimed` once the body has been read.
    """
    declared = call.request.content_length
    if declared is not None and declared > MAX_OBJECT:
        raise errors.entity_too_large(declared, MAX_OBJECT)
    if "aws-chunked" in call.headers.get("content-encoding", ""):
        from gateway.sinks.s3.chunked import decode_aws_chunked

        return decode_aws_chunked(call.request.content, claimed)
    return call.request.content.iter_chunked(READ_CHUNK)


def trailer_algorithm(headers: dict[str, str]) -> str:
    """The checksum algorithm announced by ``x-amz-trailer`` (computed while the body streams in)."""
    trailer = headers.get("x-amz-trailer", "").lower()
    return trailer.removeprefix("x-amz-checksum-") if trailer.startswith("x-amz-checksum-") else ""


def payload_sha256(headers: dict[str, str]) -> str | None:
    """The signed payload hash to verify: only a plain hex digest of an unchunked body."""
    if "aws-chunked" in headers.get("content-encoding", ""):
        return None
    return headers.get("x-amz-content-sha256")


def version_headers(v: ObjectVersion) -> dict[str, str]:
    return {"x-amz-version-id": v.version_id} if v.version_id != NULL_VERSION else {}


async def put_object(call: S3Call) -> web.StreamResponse:
    if "x-amz-copy-source" in call.headers:
        return await copy_object(call)
    h = call.headers
    claimed = claimed_checksums(h)
    result = await call.engine.put_object(
        call.bucket, call.key, request_body(call, claimed), user_metadata(h), h.get("content-type"),
        headers=stored_headers(h), checksums=claimed,
        checksum_algorithm=trailer_algorithm(h) or h.get("x-amz-sdk-checksum-algorithm", ""),
        content_md5=h.get("content-md5"),
        content_sha256=payload_sha256(h),
        if_none_match=h.get("if-none-match"), if_match=h.get("if-match"), request_id=call.request_id)
    headers = {"ETag": result["ETag"]}
    if "VersionId" in result:
        headers["x-amz-version-id"] = result["VersionId"]
    for name, value in result.items():
        if name.startswith("Checksum"):
            headers[f"x-amz-checksum-{name[len('Checksum'):].lower()}"] = value
    return web.Response(status=200, headers=headers)


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """``/bucket/key?versionId=v`` (URL-encoded) -> (bucket, key, version)."""
    path, _, query = value.partition("?")
    version = None
    if query.startswith("versionId="):
        version = unquote(query[len("versionId="):])
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise errors.invalid_argument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                                      "x-amz-copy-source", value)
    return bucket, key, version


async def copy_object(call: S3Call) -> web.StreamResponse:
    h = call.headers
    src_bucket, src_key, src_version = parse_copy_source(h["x-amz-copy-source"])
    source = await call.engine.head_object(src_bucket, src_key, src_version)
    check_conditions(source, h, prefix="x-amz-copy-source-if-", copy=True)
    src, v = await call.engine.copy_object(
        src_bucket, src_key, call.bucket, call.key, src_version_id=src_version,
        metadata_directive=h.get("x-amz-metadata-directive", "COPY"), metadata=user_metadata(h),
        content_type=h.get("content-type"), headers=stored_headers(h), request_id=call.request_id)
    headers = version_headers(v)
    if src.version_id != NULL_VERSION:
        headers["x-amz-copy-source-version-id"] = src.version_id
    body = [("LastModified", iso(v.last_modified)), ("ETag", f'"{v.etag}"')]
    return xml(document("CopyObjectResult", body), headers=headers)


def _etag_matches(condition: str, etag: str) -> bool:
    return any(t.strip().strip('"') in ("*", etag) for t in condition.split(","))


def _since(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def check_conditions(v: ObjectVersion, h: dict[str, str], prefix: str = "if-", copy: bool = False) -> bool:
    """Evaluate conditional headers (``if-match``…, or ``x-amz-copy-source-if-match``… with `prefix`) as S3 does.

    Returns True when a GET/HEAD should answer 304 Not Modified; raises PreconditionFailed otherwise.
    """
    if_match, if_none = h.get(f"{prefix}match"), h.get(f"{prefix}none-match")
    unmodified_since = _since(h.get(f"{prefix}unmodified-since", ""))
    modified_since = _since(h.get(f"{prefix}modified-since", ""))
    modified = int(v.last_modified)
    if if_match is not None:
        if not _etag_matches(if_match, v.etag):
            raise errors.precondition_failed(f"{prefix}match")
    elif unmodified_since is not None and modified > unmodified_since:
        raise errors.precondition_failed(f"{prefix}unmodified-since")
    not_modified = False
    if if_none is not None:
        not_modified = _etag_matches(if_none, v.etag)
        condition = f"{prefix}none-match"
    else:
        not_modified = modified_since is not None and modified <= modified_since
        condition = f"{prefix}modified-since"
    if not_modified and copy:
        raise errors.precondition_failed(condition)
    return not_modified


def parse_range(value: str, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for ``bytes=a-b | a- | -n``; None when the header is not a single byte range."""
    unit, _, spec = value.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                raise errors.invalid_range(value, size)
            return max(size - suffix, 0), size - 1
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if end < start:
        return None
    if start >= size:
        raise errors.invalid_range(value, size)
    return start, min(end, size - 1)


def object_headers(v: ObjectVersion, call: S3Call, full: bool) -> dict[str, str]:
    headers = {"ETag": f'"{v.etag}"', "Last-Modified": http_date(v.last_modified), "Accept-Ranges": "bytes",
               "Content-Type": v.content_type, **version_headers(v)}
    headers.update({k.title(): val for k, val in v.headers.items()})
    headers.update({f"x-amz-meta-{k}": val for k, val in v.metadata.items()})
    if v.parts:
        headers["x-amz-mp-parts-count"] = str(v.parts)
    if full and call.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
        headers.update({f"x-amz-checksum-{alg}": val for alg, val in v.checksums.items()})
        if v.checksums:
            headers["x-amz-checksum-type"] = "FULL_OBJECT"
    q = call.query
    headers.update({name: q[param] for param, name in RESPONSE_OVERRIDES.items() if param in q})
    return headers


async def get_object(call: S3Call) -> web.StreamResponse:
    head = call.request.method == "HEAD"
    version_id = call.query.get("versionId")
    if head:
        v = await call.engine.head_object(call.bucket, call.key, version_id)
    else:
        v = await call.engine.get_object(call.bucket, call.key, version_id)
    try:
        return await _respond(call, v, head)
    finally:
        call.engine.release(v)  # a no-op once the body was streamed


async def _respond(call: S3Call, v: ObjectVersion, head: bool) -> web.StreamResponse:
    if check_conditions(v, call.headers):
        return web.Response(status=304, headers={"ETag": f'"{v.etag}"', "Last-Modified": http_date(v.last_modified)})
    span = parse_range(call.headers["range"], v.size) if "range" in call.headers else None
    if "range" in call.headers and span is None and v.size == 0:
        raise errors.invalid_range(call.headers["range"], 0)
    start, end = span if span is not None else (0, v.size - 1)
    headers = object_headers(v, call, full=span is None)
    status = 206 if span is not None else 200
    if span is not None:
        headers["Content-Range"] = f"bytes {start}-{end}/{v.size}"
    length = max(end - start + 1, 0)
    if head:
        headers["Content-Length"] = str(length)
        return web.Response(status=status, headers=headers)
    if v.path is None:
        return web.Response(status=status, body=(v.body or b"")[start:end + 1], headers=headers)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = length
    await response.prepare(call.request)
    async for chunk in call.engine.read_body(v, start, end):
        await response.write(chunk)
    await response.write_eof()
    return response


async def delete_object(call: S3Call) -> web.Response:
    result = await call.engine.delete_object(call.bucket, call.key, call.query.get("versionId"), call.request_id)
    headers = {}
    if "VersionId" in result:
        headers["x-amz-version-id"] = result["VersionId"]
    if result.get("DeleteMarker"):
        headers["x-amz-delete-marker"] = "true"
    return web.Response(status=204, headers=headers)


ROUTES: dict[tuple[str, str | None], Handler] = {
    ("GET", None): get_object,
    ("HEAD", None): get_object,
    ("PUT", None): put_object,
    ("DELETE", None): delete_object,
}
