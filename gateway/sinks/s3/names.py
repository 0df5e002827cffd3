"""Bucket-name and key rules (AWS's general-purpose bucket naming rules)."""

from __future__ import annotations

import ipaddress
import re

from gateway.sinks.s3 import errors

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_KEY_BYTES = 1024


def check_bucket_name(name: str) -> None:
    """Raise InvalidBucketName unless `name` follows the rules for new buckets."""
    if not 3 <= len(name) <= 63:
        raise errors.invalid_bucket_name(name, "a bucket name must be 3 to 63 characters long")
    if not _BUCKET.match(name):
        raise errors.invalid_bucket_name(
            name, "use lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit")
    if ".." in name or ".-" in name or "-." in name:
        raise errors.invalid_bucket_name(name, "dots may not be adjacent to each other or to hyphens")
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3", "--x-s3")):
        raise errors.invalid_bucket_name(name, "the name uses a reserved prefix or suffix")
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return
    raise errors.invalid_bucket_name(name, "a bucket name may not be formatted as an IP address")


def check_key(key: str) -> None:
    """Raise unless `key` is a usable object key (1 to 1024 UTF-8 bytes)."""
    size = len(key.encode("utf-8", "surrogatepass"))
    if size == 0:
        raise errors.invalid_argument("An object key must not be empty", "key", "")
    if size > MAX_KEY_BYTES:
        raise errors.key_too_long(size)
