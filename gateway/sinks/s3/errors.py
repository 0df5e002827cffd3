"""S3's error codes, with the status and extra fields AWS puts in the XML error document."""

from __future__ import annotations

from gateway.awsapi.errors import AwsError


class S3Error(AwsError):
    """An S3 error; the wire layer renders it as ``<Error><Code>…</Code>…</Error>``."""


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error("NoSuchBucket", "The specified bucket does not exist", 404, extra={"BucketName": bucket})


def no_such_key(key: str, *, delete_marker: str | None = None) -> S3Error:
    headers = {"x-amz-delete-marker": "true", "x-amz-version-id": delete_marker} if delete_marker else None
    return S3Error("NoSuchKey", "The specified key does not exist.", 404, headers=headers, extra={"Key": key})


def no_such_version(key: str, version_id: str) -> S3Error:
    return S3Error("NoSuchVersion", "The specified version does not exist.", 404,
                   extra={"Key": key, "VersionId": version_id})


def no_such_upload(upload_id: str) -> S3Error:
    return S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload "
                   "may have been aborted or completed.", 404, extra={"UploadId": upload_id})


def invalid_bucket_name(bucket: str, why: str) -> S3Error:
    return S3Error("InvalidBucketName", f"The specified bucket is not valid: {why}", 400,
                   extra={"BucketName": bucket})


def bucket_owned(bucket: str) -> S3Error:
    return S3Error("BucketAlreadyOwnedByYou", "Your previous request to create the named bucket succeeded and you "
                   "already own it.", 409, extra={"BucketName": bucket})


def bucket_not_empty(bucket: str) -> S3Error:
    return S3Error("BucketNotEmpty", "The bucket you tried to delete is not empty", 409, extra={"BucketName": bucket})


def invalid_range(requested: str, size: int) -> S3Error:
    return S3Error("InvalidRange", "The requested range is not satisfiable", 416,
                   headers={"Content-Range": f"bytes */{size}"},
                   extra={"RangeRequested": requested, "ActualObjectSize": size})


def precondition_failed(condition: str) -> S3Error:
    return S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412,
                   extra={"Condition": condition})


def bad_digest(what: str) -> S3Error:
    if what == "Content-MD5":
        return S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.", 400)
    return S3Error("BadDigest", f"The {what} you specified did not match the calculated checksum.", 400)


def content_sha256_mismatch(claimed: str) -> S3Error:
    return S3Error("XAmzContentSHA256Mismatch", "The provided 'x-amz-content-sha256' header does not match what "
                   "was computed.", 400, extra={"ClientComputedContentSHA256": claimed})


def invalid_digest() -> S3Error:
    return S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.", 400)


def invalid_argument(message: str, name: str | None = None, value: str | None = None) -> S3Error:
    extra = {"ArgumentName": name, "ArgumentValue": value} if name is not None else None
    return S3Error("InvalidArgument", message, 400, extra=extra)


def invalid_request(message: str) -> S3Error:
    return S3Error("InvalidRequest", message, 400)


def malformed_xml() -> S3Error:
    return S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                   "published schema", 400)


def entity_too_large(size: int, limit: int) -> S3Error:
    return S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", 400,
                   extra={"ProposedSize": size, "MaxSizeAllowed": limit})


def entity_too_small(size: int, limit: int) -> S3Error:
    return S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object size.", 400,
                   extra={"ProposedSize": size, "MinSizeAllowed": limit})


def invalid_part(part_number: int, etag: str) -> S3Error:
    return S3Error("InvalidPart", "One or more of the specified parts could not be found. The part may not have "
                   "been uploaded, or the specified entity tag may not match the part's entity tag.", 400,
                   extra={"PartNumber": part_number, "ETag": etag})


def invalid_part_order() -> S3Error:
    return S3Error("InvalidPartOrder", "The list of parts was not in ascending order. The parts list must be "
                   "specified in order by part number.", 400)


def method_not_allowed(method: str, resource: str) -> S3Error:
    return S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
                   extra={"Method": method, "ResourceType": resource})


def no_such_tag_set(bucket: str) -> S3Error:
    return S3Error("NoSuchTagSet", "The TagSet does not exist", 404, extra={"BucketName": bucket})


def key_too_long(size: int) -> S3Error:
    return S3Error("KeyTooLongError", "Your key is too long", 400, extra={"Size": size, "MaxSizeAllowed": 1024})


def not_implemented(what: str) -> S3Error:
    return S3Error("NotImplemented", f"A header or query you provided implies functionality that is not "
                   f"implemented: {what}", 501, sender=False)
