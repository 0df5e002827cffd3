"""Bucket-level S3 operations on the wire: buckets, listings, versioning, tagging, notifications, DeleteObjects."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any
from urllib.parse import quote_plus

from aiohttp import web

from gateway.sinks.s3 import errors
from gateway.sinks.s3.model import ObjectVersion
from gateway.sinks.s3.xmlshapes import Children, document, iso, owner, parse, text

if TYPE_CHECKING:
    from gateway.sinks.s3.wire import Handler, S3Call

XML = "application/xml"
MAX_DELETE = 1000


def xml(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=body, status=status, content_type=XML, headers=headers)


def _encoder(call: S3Call) -> Any:
    encoding = call.query.get("encoding-type")
    if encoding is None:
        return lambda s: s
    if encoding != "url":
        raise errors.invalid_argument("Invalid Encoding Method specified in Request", "encoding-type", encoding)
    return lambda s: quote_plus(s, safe="/") if s else s


def _max_keys(call: S3Call, name: str = "max-keys") -> int:
    raw = call.query.get(name, "1000")
    try:
        value = int(raw)
    except ValueError:
        raise errors.invalid_argument("Provided max-keys not an integer or within integer range", name, raw) from None
    if value < 0:
        raise errors.invalid_argument("Argument max-keys must be an integer between 0 and 2147483647", name, raw)
    return min(value, 1000)


def _content(v: ObjectVersion, encode: Any, account: str, fetch_owner: bool = True) -> Children:
    fields: Children = [("Key", encode(v.key)), ("LastModified", iso(v.last_modified)), ("ETag", f'"{v.etag}"'),
                        ("Size", v.size), ("StorageClass", "STANDARD")]
    if fetch_owner:
        fields.append(("Owner", owner(account)))
    return fields


async def read_body(call: S3Call, limit: int = 4 * 1024 * 1024) -> bytes:
    """A small request document (configurations), bounded."""
    body = await call.request.content.read(limit + 1)
    if len(body) > limit:
        raise errors.invalid_request(f"The request document is larger than {limit} bytes")
    return body


# ---- buckets ---------------------------------------------------------------------------------------------------

async def list_buckets(call: S3Call) -> web.Response:
    buckets = await call.engine.list_buckets()
    entries = [("Bucket", [("Name", b.name), ("CreationDate", iso(b.created)), ("BucketRegion", b.region)])
               for b in buckets]
    return xml(document("ListAllMyBucketsResult", [("Owner", owner(call.engine.account)), ("Buckets", entries)]))


async def create_bucket(call: S3Call) -> web.Response:
    body = await read_body(call)
    region = call.ctx.region or call.engine.region
    if body.strip():
        constraint = text(parse(body), "LocationConstraint")
        if constraint:
            region = constraint
    await call.engine.create_bucket(call.bucket, region)
    return web.Response(status=200, headers={"Location": f"/{call.bucket}"})


async def delete_bucket(call: S3Call) -> web.Response:
    await call.engine.delete_bucket(call.bucket)
    return web.Response(status=204)


async def head_bucket(call: S3Call) -> web.Response:
    bucket = await call.engine.head_bucket(call.bucket)
    return web.Response(status=200, headers={"x-amz-bucket-region": bucket.region})


async def get_location(call: S3Call) -> web.Response:
    bucket = await call.engine.head_bucket(call.bucket)
    return xml(document("LocationConstraint", "" if bucket.region == "us-east-1" else bucket.region))


# ---- listings --------------------------------------------------------------------------------------------------

def _token(marker: str) -> str:
    return base64.urlsafe_b64encode(marker.encode()).decode()


def _untoken(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise errors.invalid_argument("The continuation token provided is incorrect", "continuation-token",
                                      token) from None


async def list_objects(call: S3Call) -> web.Response:
    q = call.query
    v2 = q.get("list-type") == "2"
    encode = _encoder(call)
    prefix, delimiter, max_keys = q.get("prefix", ""), q.get("delimiter", ""), _max_keys(call)
    if v2:
        token = q.get("continuation-token")
        marker = _untoken(token) if token is not None else q.get("start-after", "")
    else:
        marker = q.get("marker", "")
    page = await call.engine.list_objects(call.bucket, prefix, delimiter, marker, max_keys)
    fetch_owner = not v2 or q.get("fetch-owner") == "true"
    head: Children = [("Name", call.bucket), ("Prefix", encode(prefix))]
    if v2:
        head += [("ContinuationToken", q.get("continuation-token")),
                 ("StartAfter", encode(q["start-after"]) if "start-after" in q else None),
                 ("KeyCount", len(page.entries) + len(page.common_prefixes))]
        if page.truncated and page.next_marker is not None:
            head.append(("NextContinuationToken", _token(page.next_marker)))
    else:
        head.append(("Marker", encode(marker)))
        if page.truncated and page.next_marker is not None:
            head.append(("NextMarker", encode(page.next_marker)))
    head += [("MaxKeys", max_keys), ("Delimiter", encode(delimiter) if delimiter else None),
             ("EncodingType", q.get("encoding-type")), ("IsTruncated", page.truncated)]
    body = head + [("Contents", _content(v, encode, call.engine.account, fetch_owner)) for v in page.entries]
    body += [("CommonPrefixes", [("Prefix", encode(p))]) for p in page.common_prefixes]
    return xml(document("ListBucketResult", body))


async def list_object_versions(call: S3Call) -> web.Response:
    q = call.query
    encode = _encoder(call)
    prefix, delimiter, max_keys = q.get("prefix", ""), q.get("delimiter", ""), _max_keys(call)
    key_marker, version_marker = q.get("key-marker", ""), q.get("version-id-marker", "")
    page = await call.engine.list_object_versions(call.bucket, prefix, delimiter, key_marker, version_marker,
                                                  max_keys)
    body: Children = [("Name", call.bucket), ("Prefix", encode(prefix)), ("KeyMarker", encode(key_marker)),
                      ("VersionIdMarker", version_marker)]
    if page.truncated:
        body += [("NextKeyMarker", encode(page.next_marker or "")), ("NextVersionIdMarker", page.next_version_marker)]
    body += [("MaxKeys", max_keys), ("Delimiter", encode(delimiter) if delimiter else None),
             ("EncodingType", q.get("encoding-type")), ("IsTruncated", page.truncated)]
    for v in page.entries:
        common: Children = [("Key", encode(v.key)), ("VersionId", v.version_id), ("IsLatest", v.is_latest),
                            ("LastModified", iso(v.last_modified))]
        if v.delete_marker:
            body.append(("DeleteMarker", [*common, ("Owner", owner(call.engine.account))]))
        else:
            body.append(("Version", [*common, ("ETag", f'"{v.etag}"'), ("Size", v.size), ("StorageClass", "STANDARD"),
                                     ("Owner", owner(call.engine.account))]))
    body += [("CommonPrefixes", [("Prefix", encode(p))]) for p in page.common_prefixes]
    return xml(document("ListVersionsResult", body))


# ---- configuration ---------------------------------------------------------------------------------------------

async def get_versioning(call: S3Call) -> web.Response:
    status = (await call.engine.head_bucket(call.bucket)).versioning
    return xml(document("VersioningConfiguration", [("Status", status)] if status else []))


async def put_versioning(call: S3Call) -> web.Response:
    await call.engine.put_bucket_versioning(call.bucket, text(parse(await read_body(call)), "Status"))
    return web.Response(status=200)


async def get_tagging(call: S3Call) -> web.Response:
    tags = await call.engine.get_bucket_tagging(call.bucket)
    tag_set = [("Tag", [("Key", k), ("Value", v)]) for k, v in tags.items()]
    return xml(document("Tagging", [("TagSet", tag_set)]))


async def put_tagging(call: S3Call) -> web.Response:
    root = parse(await read_body(call))
    tags: dict[str, str] = {}
    for tag in root.iter("Tag"):
        key = text(tag, "Key")
        if key in tags:
            raise errors.invalid_request("Cannot provide multiple Tags with the same key")
        tags[key] = text(tag, "Value")
    await call.engine.put_bucket_tagging(call.bucket, tags)
    return web.Response(status=204)


async def delete_tagging(call: S3Call) -> web.Response:
    await call.engine.put_bucket_tagging(call.bucket, {})
    return web.Response(status=204)


async def get_notification(call: S3Call) -> web.Response:
    config = (await call.engine.head_bucket(call.bucket)).notification
    body: Children = []
    for q in config.get("QueueConfigurations", []):
        entry: Children = [("Id", q.get("Id")), ("Queue", q["QueueArn"])]
        entry += [("Event", e) for e in q.get("Events", [])]
        rules = q.get("Filter", {}).get("Key", {}).get("FilterRules", [])
        if rules:
            entry.append(("Filter", [("S3Key", [("FilterRule", [("Name", r["Name"]), ("Value", r["Value"])])
                                                for r in rules])]))
        body.append(("QueueConfiguration", entry))
    return xml(document("NotificationConfiguration", body))


async def put_notification(call: S3Call) -> web.Response:
    root = parse(await read_body(call))
    queues = []
    for i, q in enumerate(root.findall("QueueConfiguration")):
        rules = [{"Name": text(r, "Name"), "Value": text(r, "Value")} for r in q.findall("Filter/S3Key/FilterRule")]
        for rule in rules:
            if rule["Name"].lower() not in ("prefix", "suffix"):
                raise errors.invalid_argument("filter rule name must be either prefix or suffix", "FilterRule",
                                              rule["Name"])
        entry: dict[str, Any] = {"Id": text(q, "Id") or f"notification-{i + 1}", "QueueArn": text(q, "Queue"),
                                 "Events": [e.text or "" for e in q.findall("Event")]}
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        queues.append(entry)
    if root.find("TopicConfiguration") is not None or root.find("CloudFunctionConfiguration") is not None:
        raise errors.invalid_argument("Only SQS queue destinations are supported here", "Destination", "")
    await call.engine.put_bucket_notification(call.bucket, {"QueueConfigurations": queues} if queues else {},
                                              call.request_id)
    return web.Response(status=200)


# ---- DeleteObjects ---------------------------------------------------------------------------------------------

async def delete_objects(call: S3Call) -> web.Response:
    root = parse(await read_body(call))
    objects = [(text(o, "Key"), text(o, "VersionId") or None) for o in root.findall("Object")]
    if not objects or len(objects) > MAX_DELETE:
        raise errors.malformed_xml()
    quiet = text(root, "Quiet").lower() == "true"
    deleted, failed = await call.engine.delete_objects(call.bucket, objects, call.request_id)
    body: Children = []
    if not quiet:
        for d in deleted:
            body.append(("Deleted", [("Key", d["Key"]), ("VersionId", d.get("VersionId")),
                                     ("DeleteMarker", d.get("DeleteMarker")),
                                     ("DeleteMarkerVersionId", d.get("DeleteMarkerVersionId"))]))
    body += [("Error", [("Key", e["Key"]), ("Code", e["Code"]), ("Message", e["Message"])]) for e in failed]
    return xml(document("DeleteResult", body))


async def list_uploads(call: S3Call) -> web.Response:
    prefix = call.query.get("prefix", "")
    uploads = await call.engine.list_multipart_uploads(call.bucket, prefix)
    body: Children = [("Bucket", call.bucket), ("KeyMarker", ""), ("UploadIdMarker", ""), ("Prefix", prefix),
                      ("MaxUploads", 1000), ("IsTruncated", False)]
    body += [("Upload", [("Key", u.key), ("UploadId", u.upload_id), ("Initiator", owner(call.engine.account)),
                         ("Owner", owner(call.engine.account)), ("StorageClass", "STANDARD"),
                         ("Initiated", iso(u.initiated))]) for u in uploads]
    return xml(document("ListMultipartUploadsResult", body))


ROUTES: dict[tuple[str, str | None], Handler] = {
    ("GET", "location"): get_location,
    ("GET", "versioning"): get_versioning,
    ("GET", "tagging"): get_tagging,
    ("GET", "notification"): get_notification,
    ("GET", "versions"): list_object_versions,
    ("GET", "uploads"): list_uploads,
    ("GET", None): list_objects,
    ("PUT", "versioning"): put_versioning,
    ("PUT", "tagging"): put_tagging,
    ("PUT", "notification"): put_notification,
    ("PUT", None): create_bucket,
    ("DELETE", "tagging"): delete_tagging,
    ("DELETE", None): delete_bucket,
    ("HEAD", None): head_bucket,
    ("POST", "delete"): delete_objects,
}
