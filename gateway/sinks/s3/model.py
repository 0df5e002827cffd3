"""What the S3 engine stores and returns: buckets, object versions, multipart uploads and parts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NULL_VERSION = "null"


@dataclass
class Bucket:
    name: str
    created: float
    region: str
    versioning: str = ""  # "" (never set), "Enabled" or "Suspended"
    tags: dict[str, str] = field(default_factory=dict)
    notification: dict[str, Any] = field(default_factory=dict)  # {"QueueConfigurations": [...]}


@dataclass
class ObjectVersion:
    """One version of a key (or a delete marker). `etag` is unquoted; `body` is set only for inline bodies."""

    bucket: str
    key: str
    version_id: str = NULL_VERSION
    is_latest: bool = True
    delete_marker: bool = False
    size: int = 0
    etag: str = ""
    last_modified: float = 0.0
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata, x-amz-meta-* without the prefix
    headers: dict[str, str] = field(default_factory=dict)  # Cache-Control, Content-Disposition, ...
    checksums: dict[str, str] = field(default_factory=dict)  # algorithm -> base64
    parts: int = 0  # part count for multipart objects
    path: str | None = None  # file under data/ when not inline
    body: bytes | None = None
    handle: Any = field(default=None, repr=False, compare=False)  # the body file, opened by get_object


@dataclass
class Upload:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    content_type: str = "binary/octet-stream"
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    checksum_algorithm: str = ""


@dataclass
class Part:
    part_number: int
    size: int
    etag: str
    last_modified: float
    checksums: dict[str, str] = field(default_factory=dict)
    path: str = ""


@dataclass
class Listing:
    """One page of a listing: entries, common prefixes, and where the next page starts."""

    entries: list[Any]
    common_prefixes: list[str]
    truncated: bool
    next_marker: str | None = None
    next_version_marker: str | None = None
