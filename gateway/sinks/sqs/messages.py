"""Messages: the stored record, validation of bodies and attributes (AWS's rules), receipt handles."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from gateway.sinks.sqs.checksums import md5_of_attributes, md5_of_body
from gateway.sinks.sqs.errors import SqsError, invalid_parameter

MAX_MESSAGE_ATTRIBUTES = 10
_INVALID_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_ATTRIBUTE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,256}$")
_DATA_TYPE = re.compile(r"^(String|Number|Binary)(\.[^\s]{1,249})?$")
_RESERVED_PREFIXES = ("aws.", "amazon.")
SYSTEM_ATTRIBUTES_FOR_SENDS = frozenset({"AWSTraceHeader"})
ALLOWED_CHARS = "#x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF"

AttributeMap = dict[str, dict[str, str]]


@dataclass(slots=True)
class Message:
    """One message as the queue keeps it (attribute values in wire form: binary as base64 text)."""

    id: str
    body: str
    attributes: AttributeMap
    system: AttributeMap
    sent_ms: int
    sender_id: str
    visible_at: float
    group_id: str | None = None
    dedup_id: str | None = None
    sequence: str | None = None
    receive_count: int = 0
    first_receive_ms: int = 0
    receipt: str = ""
    dlq_source_arn: str | None = None
    version: int = 0  # bumped on every visibility change; stale timer entries carry an older one
    md5_body: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.md5_body:
            self.md5_body = md5_of_body(self.body)

    def to_record(self) -> dict[str, Any]:
        """The durable form (see storage)."""
        record: dict[str, Any] = {"id": self.id, "b": self.body, "t": self.sent_ms, "s": self.sender_id,
                                  "v": self.visible_at}
        optional = {"a": self.attributes, "y": self.system, "g": self.group_id, "d": self.dedup_id,
                    "n": self.sequence, "c": self.receive_count, "f": self.first_receive_ms, "r": self.receipt,
                    "q": self.dlq_source_arn}
        record.update({k: v for k, v in optional.items() if v})
        return record

    @classmethod
    def from_record(cls, r: Mapping[str, Any]) -> Message:
        return cls(id=r["id"], body=r["b"], attributes=r.get("a") or {}, system=r.get("y") or {}, sent_ms=r["t"],
                   sender_id=r["s"], visible_at=r["v"], group_id=r.get("g"), dedup_id=r.get("d"),
                   sequence=r.get("n"), receive_count=r.get("c", 0), first_receive_ms=r.get("f", 0),
                   receipt=r.get("r", ""), dlq_source_arn=r.get("q"))

    def size(self) -> int:
        return len(self.body.encode("utf-8")) + attributes_size(self.attributes)


def check_body(body: object) -> str:
    if not isinstance(body, str) or body == "":
        raise SqsError("MissingParameter", "The request must contain the parameter MessageBody.")
    _check_characters(body, "message body")
    return body


def _check_characters(text: str, where: str) -> None:
    bad = _INVALID_CHAR.search(text)
    if bad:
        raise SqsError("InvalidMessageContents", f"Invalid binary character '#x{ord(bad.group()):X}' was found in "
                       f"the {where}, the set of allowed characters is {ALLOWED_CHARS}")


def _binary_text(value: object, name: str) -> str:
    """Binary values travel as base64 text; the in-process API may also pass bytes."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, str):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid_parameter(f"The message attribute '{name}' has an invalid BinaryValue: "
                                    "it must be base64-encoded.") from None
        return value
    raise invalid_parameter(f"The message attribute '{name}' has an invalid BinaryValue.")


def check_attribute_value(name: str, value: object, *, system: bool = False) -> dict[str, str]:
    """Validate one attribute value; return its wire form."""
    kind = "system" if system else "user"
    if not isinstance(value, Mapping):
        raise invalid_parameter(f"The message attribute '{name}' must be a structure with DataType and a value.")
    data_type = value.get("DataType")
    if not data_type:
        raise invalid_parameter(f"The message attribute '{name}' must contain non-empty message attribute type.")
    if not isinstance(data_type, str) or not _DATA_TYPE.match(data_type):
        raise invalid_parameter(f"The type of message ({kind}) attribute '{name}' is invalid. You must use only the "
                                "following supported type prefixes: Binary, Number, String.")
    if value.get("StringListValues") or value.get("BinaryListValues"):
        raise invalid_parameter("Message attribute list values in SendMessage operation are not supported.")
    if system and data_type != "String":
        raise invalid_parameter(f"The message system attribute '{name}' must be of type String.")
    if data_type.startswith("Binary"):
        raw = value.get("BinaryValue")
        if raw in (None, b"", ""):
            raise invalid_parameter(f"The message attribute '{name}' must contain non-empty message attribute "
                                    f"value for message attribute type '{data_type}'.")
        return {"DataType": data_type, "BinaryValue": _binary_text(raw, name)}
    text = value.get("StringValue")
    if not isinstance(text, str) or text == "":
        raise invalid_parameter(f"The message attribute '{name}' must contain non-empty message attribute value "
                                f"for message attribute type '{data_type}'.")
    _check_characters(text, f"message attribute '{name}'")
    if data_type.startswith("Number"):
        _check_number(name, text, kind)
    return {"DataType": data_type, "StringValue": text}


def _check_number(name: str, text: str, kind: str) -> None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise invalid_parameter(f"Can't cast the value of message ({kind}) attribute '{name}' to a number.")
    digits = len(number.as_tuple().digits)
    if digits > 38 or (number != 0 and not Decimal("1e-128") <= abs(number) <= Decimal("1e126")):
        raise invalid_parameter(f"Value of message ({kind}) attribute '{name}' is outside the range: up to 38 "
                                "digits between 10^-128 and 10^+126.")


def check_message_attributes(attributes: Mapping[str, object] | None) -> AttributeMap:
    if not attributes:
        return {}
    if len(attributes) > MAX_MESSAGE_ATTRIBUTES:
        raise invalid_parameter(f"Number of message attributes [{len(attributes)}] exceeds the allowed maximum "
                                f"[{MAX_MESSAGE_ATTRIBUTES}].")
    out: AttributeMap = {}
    for name, value in attributes.items():
        lowered = name.lower()
        if (not _ATTRIBUTE_NAME.match(name) or ".." in name or name.startswith(".") or name.endswith(".")
                or lowered.startswith(_RESERVED_PREFIXES)):
            raise invalid_parameter(f"Message (user) attribute name '{name}' is invalid. Names are 1 to 256 of "
                                    "alphanumeric characters, hyphens, underscores and dots; they cannot start or "
                                    "end with a dot, contain '..', or start with 'AWS.' or 'Amazon.'.")
        out[name] = check_attribute_value(name, value)
    return out


def check_system_attributes(attributes: Mapping[str, object] | None) -> AttributeMap:
    if not attributes:
        return {}
    out: AttributeMap = {}
    for name, value in attributes.items():
        if name not in SYSTEM_ATTRIBUTES_FOR_SENDS:
            raise invalid_parameter(f"Message system attribute name '{name}' is invalid. Allowed: AWSTraceHeader.")
        out[name] = check_attribute_value(name, value, system=True)
    return out


def attributes_size(attributes: AttributeMap) -> int:
    """What counts towards MaximumMessageSize: name, type and value of every attribute."""
    total = 0
    for name, value in attributes.items():
        total += len(name.encode()) + len(value["DataType"].encode())
        if "BinaryValue" in value:
            total += len(base64.b64decode(value["BinaryValue"]))
        else:
            total += len(value["StringValue"].encode())
    return total


def select_attributes(attributes: AttributeMap, requested: Iterable[str]) -> AttributeMap:
    """ReceiveMessage's MessageAttributeNames filter: All, .*, exact names and prefix.* patterns."""
    wanted = list(requested)
    if not wanted or not attributes:
        return {}
    if "All" in wanted or ".*" in wanted:
        return dict(attributes)
    prefixes = tuple(w[:-1] for w in wanted if w.endswith(".*"))
    exact = set(wanted)
    return {k: v for k, v in attributes.items() if k in exact or (prefixes and k.startswith(prefixes))}


def md5_of_message_attributes(attributes: AttributeMap) -> str | None:
    return md5_of_attributes(attributes) if attributes else None


class Entropy:
    """Random bytes from the OS drawn a block at a time: one system call per hundreds of ids, not one per id."""

    def __init__(self, block: int = 4096) -> None:
        self._block = block
        self._buffer = b""
        self._at = 0
        os.register_at_fork(after_in_child=self.forget)  # a forked child must not reuse the parent's bytes

    def forget(self) -> None:
        """Drop the unused bytes: the next `take` draws fresh ones."""
        self._buffer, self._at = b"", 0

    def take(self, count: int) -> bytes:
        if self._at + count > len(self._buffer):
            self._buffer, self._at = os.urandom(max(self._block, count)), 0
        out = self._buffer[self._at:self._at + count]
        self._at += count
        return out


_ENTROPY = Entropy()
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def new_message_id() -> str:
    """A random (version 4) UUID in its text form, as ``str(uuid.uuid4())`` gives, for a fraction of the cost."""
    h = _ENTROPY.take(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def new_receipt_handle(message_id: str) -> tuple[str, str]:
    """(nonce, receipt handle): a fresh handle for every receive of a message."""
    nonce = _ENTROPY.take(12).hex()
    handle = binascii.b2a_base64(f"{message_id}:{nonce}".encode(), newline=False).translate(_TO_URLSAFE)
    return nonce, handle.decode("ascii")


def parse_receipt_handle(handle: object) -> tuple[str, str]:
    """(message id, nonce) of a receipt handle; ReceiptHandleIsInvalid for anything we did not issue."""
    if isinstance(handle, str) and handle:
        try:
            raw = binascii.a2b_base64(handle.encode("ascii").translate(_FROM_URLSAFE))
            message_id, _, nonce = raw.decode("ascii").partition(":")
        except (binascii.Error, ValueError, UnicodeError):
            message_id, nonce = "", ""
        if len(message_id) == 36 and len(nonce) == 24:
            return message_id, nonce
    if handle in (None, ""):
        raise SqsError("MissingParameter", "The request must contain the parameter ReceiptHandle.")
    raise SqsError("ReceiptHandleIsInvalid", f'The input receipt handle "{handle}" is not a valid receipt handle.')
