"""Rendering and parsing S3's XML documents."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from email.utils import formatdate
from typing import Any
from xml.sax.saxutils import escape

from gateway.sinks.s3 import errors

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
Children = list[tuple[str, Any]]


def _render(tag: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        inner = "".join(_render(t, v) for t, v in value)
    elif isinstance(value, bool):
        inner = "true" if value else "false"
    else:
        inner = escape(str(value))
    return f"<{tag}>{inner}</{tag}>"


def document(root: str, children: Children | str) -> bytes:
    """``<?xml …?><root xmlns="…">children</root>``; `children` are (tag, value) pairs, nested lists allowed."""
    inner = escape(children) if isinstance(children, str) else "".join(_render(t, v) for t, v in children)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} xmlns="{S3_NS}">{inner}</{root}>'.encode()


def iso(ts: float) -> str:
    """S3's timestamp in XML: ``2026-11-22T13:32:03.000Z``."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def http_date(ts: float) -> str:
    """S3's timestamp in headers (RFC 1123, GMT)."""
    return formatdate(ts, usegmt=True)


def parse(body: bytes) -> ET.Element:
    """Parse a request document with namespaces stripped; MalformedXML when it is not XML."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise errors.malformed_xml()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise errors.malformed_xml() from None
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


def text(el: ET.Element, path: str, default: str = "") -> str:
    found = el.find(path)
    return found.text or "" if found is not None else default


def owner(account: str) -> Children:
    return [("ID", account), ("DisplayName", "edgeloop")]
