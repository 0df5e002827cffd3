"""MQTT 5 properties: the identifier table, and encoding / decoding of a property block.

Table and rules from OASIS MQTT 5.0, section 2.2.2.2: each identifier has one data type and a set of
packets (or the Will Properties of CONNECT) it may appear in. An identifier in the wrong packet, or a value
of the wrong type, is a malformed packet (0x81); a repeated identifier other than User Property (and
Subscription Identifier in PUBLISH) or an out-of-range value is a protocol error (0x82).
"""

from __future__ import annotations

from typing import NamedTuple

from gateway.mqtt.errors import MqttDecodeError, MqttEncodeError
from gateway.mqtt.packets import PacketType, Properties

#: Key of the Will Properties block of CONNECT in the allowed-packet sets (not a packet type on the wire).
WILL_PROPERTIES = 0

BYTE, TWO_BYTE, FOUR_BYTE, VARINT, STRING, BINARY, STRING_PAIR = range(7)
MAX_VARINT = 268_435_455

_P = PacketType
_ALL_WITH_PROPERTIES = frozenset({
    _P.CONNECT, _P.CONNACK, _P.PUBLISH, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBSCRIBE, _P.SUBACK,
    _P.UNSUBSCRIBE, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH, WILL_PROPERTIES,
})
_MESSAGE = frozenset({_P.PUBLISH, WILL_PROPERTIES})
_ACKS = frozenset({
    _P.CONNACK, _P.PUBACK, _P.PUBREC, _P.PUBREL, _P.PUBCOMP, _P.SUBACK, _P.UNSUBACK, _P.DISCONNECT, _P.AUTH,
})


class PropertySpec(NamedTuple):
    """One MQTT 5 property: wire identifier, `Properties` attribute, data type, where it may appear."""

    identifier: int
    name: str
    kind: int
    allowed_in: frozenset[int]


PROPERTY_SPECS: tuple[PropertySpec, ...] = (
    PropertySpec(0x01, "payload_format_indicator", BYTE, _MESSAGE),
    PropertySpec(0x02, "message_expiry_interval", FOUR_BYTE, _MESSAGE),
    PropertySpec(0x03, "content_type", STRING, _MESSAGE),
    PropertySpec(0x08, "response_topic", STRING, _MESSAGE),
    PropertySpec(0x09, "correlation_data", BINARY, _MESSAGE),
    PropertySpec(0x0B, "subscription_identifiers", VARINT, frozenset({_P.PUBLISH, _P.SUBSCRIBE})),
    PropertySpec(0x11, "session_expiry_interval", FOUR_BYTE, frozenset({_P.CONNECT, _P.CONNACK, _P.DISCONNECT})),
    PropertySpec(0x12, "assigned_client_identifier", STRING, frozenset({_P.CONNACK})),
    PropertySpec(0x13, "server_keep_alive", TWO_BYTE, frozenset({_P.CONNACK})),
    PropertySpec(0x15, "authentication_method", STRING, frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(0x16, "authentication_data", BINARY, frozenset({_P.CONNECT, _P.CONNACK, _P.AUTH})),
    PropertySpec(0x17, "request_problem_information", BYTE, frozenset({_P.CONNECT})),
    PropertySpec(0x18, "will_delay_interval", FOUR_BYTE, frozenset({WILL_PROPERTIES})),
    PropertySpec(0x19, "request_response_information", BYTE, frozenset({_P.CONNECT})),
    PropertySpec(0x1A, "response_information", STRING, frozenset({_P.CONNACK})),
    PropertySpec(0x1C, "server_reference", STRING, frozenset({_P.CONNACK, _P.DISCONNECT})),
    PropertySpec(0x1F, "reason_string", STRING, _ACKS),
    PropertySpec(0x21, "receive_maximum", TWO_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertySpec(0x22, "topic_alias_maximum", TWO_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertySpec(0x23, "topic_alias", TWO_BYTE, frozenset({_P.PUBLISH})),
    PropertySpec(0x24, "maximum_qos", BYTE, frozenset({_P.CONNACK})),
    PropertySpec(0x25, "retain_available", BYTE, frozenset({_P.CONNACK})),
    PropertySpec(0x26, "user_properties", STRING_PAIR, _ALL_WITH_PROPERTIES),
    PropertySpec(0x27, "maximum_packet_size", FOUR_BYTE, frozenset({_P.CONNECT, _P.CONNACK})),
    PropertySpec(0x28, "wildcard_subscription_available", BYTE, frozenset({_P.CONNACK})),
    PropertySpec(0x29, "subscription_identifier_available", BYTE, frozenset({_P.CONNACK})),
    PropertySpec(0x2A, "shared_subscription_available", BYTE, frozenset({_P.CONNACK})),
)
SPEC_BY_ID: dict[int, PropertySpec] = {spec.identifier: spec for spec in PROPERTY_SPECS}

#: Properties whose only legal values are 0 and 1.
_BOOLEAN_IDS = frozenset({0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A})
#: Properties for which 0 is not a legal value.
_NONZERO_IDS = frozenset({0x0B, 0x21, 0x23, 0x27})
_TYPE_NAMES = {BYTE: "byte", TWO_BYTE: "two-byte integer", FOUR_BYTE: "four-byte integer", VARINT: "varint",
               STRING: "UTF-8 string", BINARY: "binary data", STRING_PAIR: "UTF-8 string pair"}
_MAX_INT = {BYTE: 0xFF, TWO_BYTE: 0xFFFF, FOUR_BYTE: 0xFFFF_FFFF, VARINT: MAX_VARINT}


def _where(packet_type: int) -> str:
    return "Will Properties" if packet_type == WILL_PROPERTIES else PacketType(packet_type).name


# ----------------------------------------------------------------------------------------------- primitives


def encode_varint(value: int) -> bytes:
    """The variable byte integer encoding of 0 <= value <= 268435455."""
    if value < 0x80:
        return bytes((value,))
    if value > MAX_VARINT or value < 0:
        raise MqttEncodeError(f"variable byte integer {value} out of range 0..{MAX_VARINT}")
    out = bytearray()
    while True:
        value, digit = divmod(value, 0x80)
        if value:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decode_varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """Decode a variable byte integer at `pos` (at most 4 bytes, not past `end`); return (value, next pos)."""
    value = 0
    shift = 0
    for i in range(pos, min(pos + 4, end)):
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i + 1
        shift += 7
    if end - pos >= 4:
        raise MqttDecodeError("variable byte integer longer than 4 bytes")
    raise MqttDecodeError("variable byte integer runs past the end of the packet")


def encode_string(value: str) -> bytes:
    """A UTF-8 encoded string with its two-byte length; no U+0000 and no surrogates allowed."""
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MqttEncodeError(f"string {value!r} is not encodable as UTF-8 (surrogate code point)") from exc
    if "\x00" in value:
        raise MqttEncodeError(f"string {value!r} contains U+0000, which MQTT does not allow")
    if len(data) > 0xFFFF:
        raise MqttEncodeError(f"string of {len(data)} bytes exceeds the 65535-byte limit")
    return len(data).to_bytes(2, "big") + data


def encode_binary(value: bytes) -> bytes:
    """Binary data with its two-byte length."""
    if len(value) > 0xFFFF:
        raise MqttEncodeError(f"binary data of {len(value)} bytes exceeds the 65535-byte limit")
    return len(value).to_bytes(2, "big") + bytes(value)


def decode_string(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    """Decode a length-prefixed UTF-8 string; reject ill-formed UTF-8, surrogates and U+0000."""
    if pos + 2 > end:
        raise MqttDecodeError("UTF-8 string length runs past the end of the packet")
    stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if stop > end:
        raise MqttDecodeError("UTF-8 string runs past the end of the packet")
    try:
        text = buf[pos + 2 : stop].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MqttDecodeError(f"ill-formed UTF-8 string ({exc.reason})") from None
    if "\x00" in text:
        raise MqttDecodeError("UTF-8 string contains U+0000, which MQTT does not allow")
    return text, stop


def decode_binary(buf: bytes, pos: int, end: int) -> tuple[bytes, int]:
    """Decode length-prefixed binary data."""
    if pos + 2 > end:
        raise MqttDecodeError("binary data length runs past the end of the packet")
    stop = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
    if stop > end:
        raise MqttDecodeError("binary data runs past the end of the packet")
    return bytes(buf[pos + 2 : stop]), stop


# ----------------------------------------------------------------------------------------------- property blocks


def _check_value(spec: PropertySpec, value: int) -> str | None:
    if spec.identifier in _BOOLEAN_IDS and value > 1:
        return f"{spec.name} must be 0 or 1, got {value}"
    if spec.identifier in _NONZERO_IDS and value == 0:
        return f"{spec.name} must not be 0"
    return None


_CHECK_NONE, _CHECK_BOOLEAN, _CHECK_NONZERO = range(3)
#: identifier -> (attribute, kind, packet types allowed in, value check, repeatable in PUBLISH only); None = unknown
_DECODE_TABLE: list[tuple[str, int, frozenset[int], int] | None] = [None] * 256
for _spec in PROPERTY_SPECS:
    _DECODE_TABLE[_spec.identifier] = (
        _spec.name, _spec.kind, _spec.allowed_in,
        _CHECK_BOOLEAN if _spec.identifier in _BOOLEAN_IDS else _CHECK_NONZERO if _spec.identifier in _NONZERO_IDS
        else _CHECK_NONE,
    )
_USER_PROPERTY, _SUBSCRIPTION_IDENTIFIER = 0x26, 0x0B


def decode_properties(buf: bytes, pos: int, end: int, packet_type: int) -> tuple[Properties, int]:
    """Decode the property block (length + properties) at `pos` for `packet_type` (or WILL_PROPERTIES)."""
    if pos < end and buf[pos] < 0x80:
        length = buf[pos]
        if not length:
            return Properties(), pos + 1
        pos += 1
    else:
        length, pos = decode_varint(buf, pos, end)
    stop = pos + length
    if stop > end:
        raise MqttDecodeError("property block runs past the end of the packet")
    props = Properties()
    seen = 0
    while pos < stop:
        identifier = buf[pos]
        entry = _DECODE_TABLE[identifier]
        if entry is None:
            raise MqttDecodeError(f"unknown property identifier 0x{identifier:02X}")
        name, kind, allowed_in, check = entry
        if packet_type not in allowed_in:
            raise MqttDecodeError(f"property {name} (0x{identifier:02X}) is not allowed in {_where(packet_type)}")
        bit = 1 << identifier
        if seen & bit and identifier != _USER_PROPERTY and (
            identifier != _SUBSCRIPTION_IDENTIFIER or packet_type != PacketType.PUBLISH
        ):
            raise MqttDecodeError(f"property {name} appears more than once", 0x82)
        seen |= bit
        pos += 1
        value: object
        if kind == STRING_PAIR:
            key, pos = decode_string(buf, pos, stop)
            val, pos = decode_string(buf, pos, stop)
            props.user_properties.append((key, val))
            continue
        if kind == STRING:
            value, pos = decode_string(buf, pos, stop)
        elif kind == BINARY:
            value, pos = decode_binary(buf, pos, stop)
        else:
            if kind == VARINT:
                value, pos = decode_varint(buf, pos, stop)
            else:
                size = 1 if kind == BYTE else 2 if kind == TWO_BYTE else 4
                if pos + size > stop:
                    raise MqttDecodeError(f"property {name} runs past the property block")
                value = buf[pos] if size == 1 else int.from_bytes(buf[pos : pos + size], "big")
                pos += size
            if check == _CHECK_BOOLEAN and value > 1:
                raise MqttDecodeError(f"{name} must be 0 or 1, got {value}", 0x82)
            if check == _CHECK_NONZERO and not value:
                raise MqttDecodeError(f"{name} must not be 0", 0x82)
            if kind == VARINT:
                props.subscription_identifiers.append(value)
                continue
        setattr(props, name, value)
    return props, stop


def _encode_value(spec: PropertySpec, value: object) -> bytes:
    kind = spec.kind
    if kind == STRING:
        return encode_string(value)  # type: ignore[arg-type]
    if kind == BINARY:
        return encode_binary(value)  # type: ignore[arg-type]
    if not isinstance(value, int):
        raise MqttEncodeError(f"property {spec.name} must be an integer, got {value!r}")
    if not 0 <= value <= _MAX_INT[kind]:
        raise MqttEncodeError(f"property {spec.name}={value} out of range for a {_TYPE_NAMES[kind]}")
    problem = _check_value(spec, value)
    if problem:
        raise MqttEncodeError(problem)
    if kind == VARINT:
        return encode_varint(value)
    return value.to_bytes({BYTE: 1, TWO_BYTE: 2, FOUR_BYTE: 4}[kind], "big")


def encode_properties(props: Properties, packet_type: int) -> bytes:
    """The v5 property block (length varint + properties) of `props` for `packet_type` (or WILL_PROPERTIES).

    Raises MqttEncodeError for a property that `packet_type` may not carry or a value out of range.
    """
    parts: list[bytes] = []
    for spec in PROPERTY_SPECS:
        value = getattr(props, spec.name)
        if value is None or (spec.kind in (STRING_PAIR, VARINT) and not value):
            continue
        if packet_type not in spec.allowed_in:
            raise MqttEncodeError(f"property {spec.name} is not allowed in {_where(packet_type)}")
        if spec.kind == STRING_PAIR:
            parts.extend(b"\x26" + encode_string(k) + encode_string(v) for k, v in value)
        elif spec.kind == VARINT:
            if packet_type == PacketType.SUBSCRIBE and len(value) > 1:
                raise MqttEncodeError("SUBSCRIBE carries at most one subscription identifier")
            parts.extend(b"\x0b" + _encode_value(spec, v) for v in value)
        else:
            parts.append(bytes((spec.identifier,)) + _encode_value(spec, value))
    if not parts:
        return b"\x00"
    body = b"".join(parts)
    return encode_varint(len(body)) + body
