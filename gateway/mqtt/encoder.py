"""MQTT 3.1 / 3.1.1 / 5.0 encoding, with a fast path for PUBLISH (see `gateway.mqtt.codec`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.mqtt.errors import MqttEncodeError
from gateway.mqtt.packets import (
    PROTOCOL_NAMES,
    VALID_REASON_CODES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Unsuback,
    Unsubscribe,
)
from gateway.mqtt.properties import (
    MAX_VARINT,
    WILL_PROPERTIES,
    encode_binary,
    encode_properties,
    encode_string,
    encode_varint,
)

__all__ = ["encode", "encode_properties", "encode_publish"]

_EMPTY_V5_PROPS = b"\x00"


def _frame(first_byte: int, body: bytes) -> bytes:
    length = len(body)
    if length < 0x80:
        return bytes((first_byte, length)) + body
    if length > MAX_VARINT:
        raise MqttEncodeError(f"packet body of {length} bytes exceeds the MQTT maximum of {MAX_VARINT}")
    return bytes((first_byte,)) + encode_varint(length) + body


def _pid(packet_id: int | None, name: str) -> bytes:
    if packet_id is None or not 0 < packet_id <= 0xFFFF:
        raise MqttEncodeError(f"{name} packet identifier must be 1..65535, got {packet_id!r}")
    return packet_id.to_bytes(2, "big")


def _qos(qos: int, what: str) -> int:
    if qos not in (0, 1, 2):
        raise MqttEncodeError(f"{what} QoS must be 0, 1 or 2, got {qos!r}")
    return qos


def _reason(packet_type: PacketType, code: int) -> int:
    if code not in VALID_REASON_CODES[packet_type]:
        raise MqttEncodeError(f"reason code 0x{code:02X} is not valid in {packet_type.name}")
    return code


def encode_publish(
    topic: bytes | str,
    payload: bytes,
    qos: int,
    retain: bool,
    dup: bool,
    packet_id: int | None,
    version: int,
    properties: bytes = b"",
) -> bytes:
    """Encode a PUBLISH quickly (fan-out path). `properties` is a ready v5 property block incl. its length
    (from `encode_properties`); it is ignored for v3 and defaults to the empty block for v5."""
    if type(topic) is str:
        topic = topic.encode("utf-8")
    head = len(topic).to_bytes(2, "big") + topic  # type: ignore[operator]
    if qos:
        if qos not in (1, 2):
            raise MqttEncodeError(f"PUBLISH QoS must be 0, 1 or 2, got {qos!r}")
        head += _pid(packet_id, "PUBLISH")
    if version == 5:
        head += properties or _EMPTY_V5_PROPS
    length = len(head) + len(payload)
    first = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    if length < 0x80:
        return bytes((first, length)) + head + payload
    if length > MAX_VARINT:
        raise MqttEncodeError(f"PUBLISH of {length} bytes exceeds the MQTT maximum of {MAX_VARINT}")
    return bytes((first,)) + encode_varint(length) + head + payload


def _encode_publish_packet(packet: Publish, version: int) -> bytes:
    if not isinstance(packet.payload, bytes | bytearray | memoryview):
        raise MqttEncodeError(f"PUBLISH payload must be bytes, got {type(packet.payload).__name__}")
    qos = _qos(packet.qos, "PUBLISH")
    if qos == 0 and packet.dup:
        raise MqttEncodeError("PUBLISH DUP flag must be 0 for QoS 0")
    topic = encode_string(packet.topic)[2:]
    props = encode_properties(packet.properties, PacketType.PUBLISH) if version == 5 else b""
    return encode_publish(topic, bytes(packet.payload), qos, packet.retain, packet.dup, packet.packet_id, version,
                          props)


def _encode_connect(packet: Connect, version: int) -> bytes:
    level = packet.protocol_level
    if PROTOCOL_NAMES.get(level) != packet.protocol_name:
        raise MqttEncodeError(
            f"protocol {packet.protocol_name!r} level {level} unsupported; use 'MQIsdp' 3, 'MQTT' 4 or 'MQTT' 5"
        )
    if not 0 <= packet.keepalive <= 0xFFFF:
        raise MqttEncodeError(f"keep alive must be 0..65535 seconds, got {packet.keepalive}")
    will = packet.will
    flags = 0x02 if packet.clean_start else 0
    if will is not None:
        flags |= 0x04 | (_qos(will.qos, "will") << 3) | (0x20 if will.retain else 0)
    if packet.password is not None:
        if level < 5 and packet.username is None:
            raise MqttEncodeError("MQTT 3.1.1 does not allow a password without a user name")
        flags |= 0x40
    if packet.username is not None:
        flags |= 0x80
    parts = [encode_string(packet.protocol_name), bytes((level, flags)), packet.keepalive.to_bytes(2, "big")]
    if level == 5:
        parts.append(encode_properties(packet.properties, PacketType.CONNECT))
    parts.append(encode_string(packet.client_id))
    if will is not None:
        if level == 5:
            parts.append(encode_properties(will.properties, WILL_PROPERTIES))
        parts += [encode_string(will.topic), encode_binary(will.payload)]
    if packet.username is not None:
        parts.append(encode_string(packet.username))
    if packet.password is not None:
        parts.append(encode_binary(packet.password))
    return _frame(0x10, b"".join(parts))


_V3_CONNACK_CODES = {0x84: 1, 0x85: 2, 0x86: 4, 0x87: 5, 0x8A: 5, 0x8C: 4}


def _encode_connack(packet: Connack, version: int) -> bytes:
    code = packet.reason_code
    if version == 5:
        body = bytes((1 if packet.session_present else 0, _reason(PacketType.CONNACK, code)))
        return _frame(0x20, body + encode_properties(packet.properties, PacketType.CONNACK))
    if code >= 0x80:
        code = _V3_CONNACK_CODES.get(code, 3)  # map v5 reason codes; anything else is "server unavailable"
    elif code > 5:
        raise MqttEncodeError(f"MQTT 3.1.1 CONNACK return code must be 0..5 (or a v5 reason code), got {code}")
    return bytes((0x20, 2, 1 if packet.session_present and code == 0 else 0, code))


def _ack_encoder(packet_type: PacketType, first_byte: int) -> Callable[[Packet, int], bytes]:
    name = packet_type.name

    def encode_ack(packet: Packet, version: int) -> bytes:
        pid = _pid(packet.packet_id, name)  # type: ignore[union-attr]
        if version != 5:
            return bytes((first_byte, 2)) + pid
        code = _reason(packet_type, packet.reason_code)  # type: ignore[union-attr]
        props = encode_properties(packet.properties, packet_type)  # type: ignore[union-attr]
        if props == _EMPTY_V5_PROPS:
            return bytes((first_byte, 2)) + pid if code == 0 else bytes((first_byte, 3)) + pid + bytes((code,))
        return _frame(first_byte, pid + bytes((code,)) + props)

    return encode_ack


def _encode_subscribe(packet: Subscribe, version: int) -> bytes:
    if not packet.subscriptions:
        raise MqttEncodeError("SUBSCRIBE must contain at least one topic filter")
    parts = [_pid(packet.packet_id, "SUBSCRIBE")]
    if version == 5:
        parts.append(encode_properties(packet.properties, PacketType.SUBSCRIBE))
    for sub in packet.subscriptions:
        options = _qos(sub.qos, "subscription")
        if version == 5:
            if sub.retain_handling not in (0, 1, 2):
                raise MqttEncodeError(f"retain handling must be 0, 1 or 2, got {sub.retain_handling!r}")
            options |= (0x04 if sub.no_local else 0) | (0x08 if sub.retain_as_published else 0)
            options |= sub.retain_handling << 4
        parts += [encode_string(sub.topic_filter), bytes((options,))]
    return _frame(0x82, b"".join(parts))


def _encode_suback(packet: Suback, version: int) -> bytes:
    if not packet.reason_codes:
        raise MqttEncodeError("SUBACK must contain at least one reason code")
    pid = _pid(packet.packet_id, "SUBACK")
    if version == 5:
        codes = bytes(_reason(PacketType.SUBACK, code) for code in packet.reason_codes)
        return _frame(0x90, pid + encode_properties(packet.properties, PacketType.SUBACK) + codes)
    for code in packet.reason_codes:
        if not 0 <= code <= 0xFF:
            raise MqttEncodeError(f"SUBACK return code {code} out of range")
    return _frame(0x90, pid + bytes(code if code < 0x80 else 0x80 for code in packet.reason_codes))


def _encode_unsubscribe(packet: Unsubscribe, version: int) -> bytes:
    if not packet.topic_filters:
        raise MqttEncodeError("UNSUBSCRIBE must contain at least one topic filter")
    parts = [_pid(packet.packet_id, "UNSUBSCRIBE")]
    if version == 5:
        parts.append(encode_properties(packet.properties, PacketType.UNSUBSCRIBE))
    parts += [encode_string(topic_filter) for topic_filter in packet.topic_filters]
    return _frame(0xA2, b"".join(parts))


def _encode_unsuback(packet: Unsuback, version: int) -> bytes:
    pid = _pid(packet.packet_id, "UNSUBACK")
    if version != 5:
        return b"\xb0\x02" + pid
    if not packet.reason_codes:
        raise MqttEncodeError("MQTT 5 UNSUBACK must contain one reason code per topic filter")
    codes = bytes(_reason(PacketType.UNSUBACK, code) for code in packet.reason_codes)
    return _frame(0xB0, pid + encode_properties(packet.properties, PacketType.UNSUBACK) + codes)


def _reason_encoder(packet_type: PacketType, first_byte: int) -> Callable[[Packet, int], bytes]:
    name = packet_type.name

    def encode_reason_packet(packet: Packet, version: int) -> bytes:
        if version != 5:
            if packet_type == PacketType.AUTH:
                raise MqttEncodeError("AUTH does not exist in MQTT 3.1.1")
            return bytes((first_byte, 0))
        code = _reason(packet_type, packet.reason_code)  # type: ignore[union-attr]
        props = encode_properties(packet.properties, packet_type)  # type: ignore[union-attr]
        if props == _EMPTY_V5_PROPS:
            return bytes((first_byte, 0)) if code == 0 else bytes((first_byte, 1, code))
        return _frame(first_byte, bytes((code,)) + props)

    encode_reason_packet.__name__ = f"encode_{name.lower()}"
    return encode_reason_packet


_ENCODERS: dict[type, Callable[[Packet, int], bytes]] = {
    Connect: _encode_connect,  # type: ignore[dict-item]
    Connack: _encode_connack,  # type: ignore[dict-item]
    Publish: _encode_publish_packet,  # type: ignore[dict-item]
    Puback: _ack_encoder(PacketType.PUBACK, 0x40),
    Pubrec: _ack_encoder(PacketType.PUBREC, 0x50),
    Pubrel: _ack_encoder(PacketType.PUBREL, 0x62),
    Pubcomp: _ack_encoder(PacketType.PUBCOMP, 0x70),
    Subscribe: _encode_subscribe,  # type: ignore[dict-item]
    Suback: _encode_suback,  # type: ignore[dict-item]
    Unsubscribe: _encode_unsubscribe,  # type: ignore[dict-item]
    Unsuback: _encode_unsuback,  # type: ignore[dict-item]
    Pingreq: lambda packet, version: b"\xc0\x00",
    Pingresp: lambda packet, version: b"\xd0\x00",
    Disconnect: _reason_encoder(PacketType.DISCONNECT, 0xE0),
    Auth: _reason_encoder(PacketType.AUTH, 0xF0),
}


def encode(packet: Packet, version: int) -> bytes:
    """Encode `packet` for protocol `version` (3 or 4 = MQTT 3.1.x, 5 = MQTT 5.0).

    CONNECT is encoded for its own `protocol_level`. For 3.1.1, properties and v5-only reason codes are
    dropped as the specification says (a v5 CONNACK refusal maps to the nearest v3 return code; a SUBACK
    failure code becomes 0x80). Raises MqttEncodeError for values the packet cannot carry.
    """
    encoder = _ENCODERS.get(type(packet))
    if encoder is None:
        raise MqttEncodeError(f"not an MQTT packet object: {type(packet).__name__}")
    return encoder(packet, 5 if version == 5 else 4)
