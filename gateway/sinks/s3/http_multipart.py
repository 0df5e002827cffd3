"""Multipart uploads on the wire: create, upload part, complete, abort, list parts."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from gateway.sinks.s3 import errors
from gateway.sinks.s3.http_bucket import read_body, xml
from gateway.sinks.s3.http_object import (
    check_conditions,
    claimed_checksums,
    parse_copy_source,
    parse_range,
    payload_sha256,
    request_body,
    stored_headers,
    trailer_algorithm,
    user_metadata,
    version_headers,
)
from gateway.sinks.s3.xmlshapes import Children, document, iso, owner, parse, text

if TYPE_CHECKING:
    from gateway.sinks.s3.wire import Handler, S3Call


def _int_param(call: S3Call, name: str, default: int | None = None) -> int:
    raw = call.query.get(name)
    if raw is None and default is not None:
        return default
    try:
        return int(raw or "")
    except ValueError:
        raise errors.invalid_argument(f"{name} must be an integer", name, raw or "") from None


async def create_upload(call: S3Call) -> web.Response:
    h = call.headers
    upload_id = await call.engine.create_multipart_upload(
        call.bucket, call.key, user_metadata(h), h.get("content-type"), headers=stored_headers(h),
        checksum_algorithm=h.get("x-amz-checksum-algorithm", ""))
    headers = {}
    if h.get("x-amz-checksum-algorithm"):
        headers["x-amz-checksum-algorithm"] = h["x-amz-checksum-algorithm"].upper()
    body = [("Bucket", call.bucket), ("Key", call.key), ("UploadId", upload_id)]
    return xml(document("InitiateMultipartUploadResult", body), headers=headers)


async def upload_part_copy(call: S3Call) -> web.Response:
    """UploadPartCopy: a part made of (a range of) an existing object."""
    h = call.headers
    src_bucket, src_key, src_version = parse_copy_source(h["x-amz-copy-source"])
    source = await call.engine.get_object(src_bucket, src_key, src_version)
    try:
        check_conditions(source, h, prefix="x-amz-copy-source-if-", copy=True)
        start, end = 0, source.size - 1
        if "x-amz-copy-source-range" in h:
            span = parse_range(h["x-amz-copy-source-range"], source.size)
            if span is None:
                raise errors.invalid_argument("The x-amz-copy-source-range value must be of the form "
                                              "bytes=first-last", "x-amz-copy-source-range",
                                              h["x-amz-copy-source-range"])
            start, end = span
        part = await call.engine.upload_part(call.bucket, call.key, call.query["uploadId"],
                                             _int_param(call, "partNumber"), call.engine.read_body(source, start, end))
    finally:
        call.engine.release(source)
    headers = {"x-amz-copy-source-version-id": source.version_id} if source.version_id != "null" else {}
    body = [("ETag", f'"{part.etag}"'), ("LastModified", iso(part.last_modified))]
    return xml(document("CopyPartResult", body), headers=headers)


async def upload_part(call: S3Call) -> web.Response:
    if "x-amz-copy-source" in call.headers:
        return await upload_part_copy(call)
    h = call.headers
    claimed = claimed_checksums(h)
    part = await call.engine.upload_part(call.bucket, call.key, call.query["uploadId"], _int_param(call, "partNumber"),
                                         request_body(call, claimed), checksums=claimed,
                                         checksum_algorithm=trailer_algorithm(h),
                                         content_md5=h.get("content-md5"), content_sha256=payload_sha256(h))
    headers = {"ETag": f'"{part.etag}"'}
    headers.update({f"x-amz-checksum-{alg}": value for alg, value in part.checksums.items()})
    return web.Response(status=200, headers=headers)


async def complete_upload(call: S3Call) -> web.Response:
    root = parse(await read_body(call))
    parts = []
    for p in root.findall("Part"):
        try:
            parts.append((int(text(p, "PartNumber")), text(p, "ETag")))
        except ValueError:
            raise errors.malformed_xml() from None
    v = await call.engine.complete_multipart_upload(call.bucket, call.key, call.query["uploadId"], parts,
                                                    call.request_id)
    body = [("Location", f"{call.base_url}/{call.bucket}/{quote(call.key)}"), ("Bucket", call.bucket),
            ("Key", call.key), ("ETag", f'"{v.etag}"')]
    return xml(document("CompleteMultipartUploadResult", body), headers=version_headers(v))


async def abort_upload(call: S3Call) -> web.Response:
    await call.engine.abort_multipart_upload(call.bucket, call.key, call.query["uploadId"])
    return web.Response(status=204)


async def list_parts(call: S3Call) -> web.Response:
    upload, parts = await call.engine.list_parts(call.bucket, call.key, call.query["uploadId"])
    marker = _int_param(call, "part-number-marker", 0)
    max_parts = min(_int_param(call, "max-parts", 1000), 1000)
    after = [p for p in parts if p.part_number > marker]
    page, truncated = after[:max_parts], len(after) > max_parts
    body: Children = [("Bucket", call.bucket), ("Key", call.key), ("UploadId", upload.upload_id),
                      ("PartNumberMarker", marker), ("NextPartNumberMarker", page[-1].part_number if page else 0),
                      ("MaxParts", max_parts), ("IsTruncated", truncated),
                      ("Initiator", owner(call.engine.account)), ("Owner", owner(call.engine.account)),
                      ("StorageClass", "STANDARD")]
    for p in page:
        fields: Children = [("PartNumber", p.part_number), ("LastModified", iso(p.last_modified)),
                            ("ETag", f'"{p.etag}"'), ("Size", p.size)]
        fields += [(f"Checksum{alg.upper()}", value) for alg, value in p.checksums.items()]
        body.append(("Part", fields))
    return xml(document("ListPartsResult", body))


ROUTES: dict[tuple[str, str | None], Handler] = {
    ("POST", "uploads"): create_upload,
    ("POST", "uploadId"): complete_upload,
    ("PUT", "uploadId"): upload_part,
    ("GET", "uploadId"): list_parts,
    ("DELETE", "uploadId"): abort_upload,
}
