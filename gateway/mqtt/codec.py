"""MQTT 3.1.1 / 5.0 wire codec: an incremental stream decoder and packet encoders.

`StreamDecoder.feed()` takes whatever bytes arrived on a connection and returns every complete packet in
them, keeping an incomplete tail for the next call; partial and coalesced packets are both handled. Input
that violates the specification raises `MqttDecodeError` carrying the MQTT 5 reason code to report; the
connection must then be closed and the decoder discarded.

Decoding validates everything that can be judged from the bytes alone. Rules that need connection state or
broker policy (topic-alias ranges, Receive Maximum, client-id rules, topic-filter syntax, payload UTF-8
when the payload format indicator is 1, direction-specific properties) belong to the broker.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.mqtt.errors import MqttDecodeError, MqttEncodeError
from gateway.mqtt.packets import (
    V3_SUBACK_RETURN_CODES,
    VALID_REASON_CODES,
    Auth,
    Connack,
    Connect,
    Disconnect,
    Packet,
    PacketType,
    Pingreq,
    Pingresp,
    Properties,
    Puback,
    Pubcomp,
    Publish,
    Pubrec,
    Pubrel,
    Suback,
    Subscribe,
    Subscription,
    Unsuback,
    Unsubscribe,
    Will,
)
from gateway.mqtt.properties import (
    MAX_VARINT,
    WILL_PROPERTIES,
    decode_binary,
    decode_properties,
    decode_string,
    encode_binary,
    encode_properties,
    encode_string,
    encode_varint,
)

__all__ = ["StreamDecoder", "encode", "encode_properties", "encode_publish"]

MAX_PACKET_SIZE = MAX_VARINT + 5  # largest remaining length plus the largest fixed header
_PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
_REQUIRED_FLAGS = {
    PacketType.PUBREL: 0b0010,
    PacketType.SUBSCRIBE: 0b0010,
    PacketType.UNSUBSCRIBE: 0b0010,
}
_EMPTY_V5_PROPS = b"\x00"

Decoder = Callable[[bytes, int, int, int, int], Packet]


# ============================================================================================ decoding helpers


def _u16(buf: bytes, pos: int, end: int, what: str) -> int:
    if pos + 2 > end:
        raise MqttDecodeError(f"{what} runs past the end of the packet")
    return (buf[pos] << 8) | buf[pos + 1]


def _packet_id(buf: bytes, pos: int, end: int, name: str) -> int:
    packet_id = _u16(buf, pos, end, f"{name} packet identifier")
    if packet_id == 0:
        raise MqttDecodeError(f"{name} packet identifier must be non-zero", 0x82)
    return packet_id


def _check_reason(packet_type: PacketType, code: int) -> int:
    if code not in VALID_REASON_CODES[packet_type]:
        raise MqttDecodeError(f"reason code 0x{code:02X} is not valid in {packet_type.name}", 0x82)
    return code


def _check_end(pos: int, end: int, name: str) -> None:
    if pos != end:
        raise MqttDecodeError(f"{end - pos} unexpected trailing bytes inside {name}")


def _check_topic_name(topic: str, version: int, has_alias: bool) -> None:
    if "+" in topic or "#" in topic:
        raise MqttDecodeError(f"topic name {topic!r} contains a wildcard (+ or #), not allowed when publishing", 0x90)
    if not topic and not has_alias:
        if version == 5:
            raise MqttDecodeError("PUBLISH has an empty topic name and no topic alias", 0x82)
        raise MqttDecodeError("topic name must be at least one character long", 0x90)


# ============================================================================================ packet decoders


def _decode_connect(buf: bytes, pos: int, end: int, flags: int, version: int) -> Connect:
    name, pos = decode_string(buf, pos, end)
    if pos >= end:
        raise MqttDecodeError("CONNECT ends before the protocol level")
    level = buf[pos]
    if _PROTOCOL_NAMES.get(level) != name:
        raise MqttDecodeError(
            f"unsupported protocol {name!r} level {level}; supported: 'MQIsdp' 3, 'MQTT' 4 and 'MQTT' 5", 0x84
        )
    if pos + 4 > end:
        raise MqttDecodeError("CONNECT ends before its connect flags and keep alive")
    cflags = buf[pos + 1]
    keepalive = (buf[pos + 2] << 8) | buf[pos + 3]
    pos += 4
    if cflags & 0x01:
        raise MqttDecodeError("CONNECT reserved flag (bit 0) must be 0")
    has_will = bool(cflags & 0x04)
    will_qos = (cflags >> 3) & 0x03
    will_retain = bool(cflags & 0x20)
    has_password = bool(cflags & 0x40)
    has_username = bool(cflags & 0x80)
    if will_qos == 3:
        raise MqttDecodeError("CONNECT will QoS 3 is not allowed (0, 1 or 2)")
    if not has_will and (will_qos or will_retain):
        raise MqttDecodeError("CONNECT will QoS and will retain must be 0 when the will flag is 0")
    if level < 5 and has_password and not has_username:
        raise MqttDecodeError("MQTT 3.1.1 CONNECT has a password flag without a user name flag")
    props = Properties()
    if level == 5:
        props, pos = decode_properties(buf, pos, end, PacketType.CONNECT)
    client_id, pos = decode_string(buf, pos, end)
    will = None
    if has_will:
        will_props = Properties()
        if level == 5:
            will_props, pos = decode_properties(buf, pos, end, WILL_PROPERTIES)
        will_topic, pos = decode_string(buf, pos, end)
        _check_topic_name(will_topic, 4, False)
        will_payload, pos = decode_binary(buf, pos, end)
        will = Will(will_topic, will_payload, will_qos, will_retain, will_props)
    username = password = None
    if has_username:
        username, pos = decode_string(buf, pos, end)
    if has_password:
        password, pos = decode_binary(buf, pos, end)
    _check_end(pos, end, "CONNECT")
    return Connect(client_id, level, bool(cflags & 0x02), keepalive, username, password, will, props, name)


def _decode_connack(buf: bytes, pos: int, end: int, flags: int, version: int) -> Connack:
    if pos + 2 > end:
        raise MqttDecodeError("CONNACK is shorter than 2 bytes")
    ack_flags, code = buf[pos], buf[pos + 1]
    if ack_flags & 0xFE:
        raise MqttDecodeError("CONNACK acknowledge flags bits 7-1 are reserved and must be 0")
    pos += 2
    props = Properties()
    if version == 5:
        _check_reason(PacketType.CONNACK, code)
        props, pos = decode_properties(buf, pos, end, PacketType.CONNACK)
    elif code > 5:
        raise MqttDecodeError(f"CONNACK return code {code} is not valid in MQTT 3.1.1 (0..5)")
    if code and ack_flags:
        raise MqttDecodeError("CONNACK with a non-zero code must have session present 0", 0x82)
    _check_end(pos, end, "CONNACK")
    return Connack(bool(ack_flags), code, props)


def _ack_decoder(cls: type, packet_type: PacketType) -> Decoder:
    name = packet_type.name

    def decode(buf: bytes, pos: int, end: int, flags: int, version: int) -> Packet:
        packet_id = _packet_id(buf, pos, end, name)
        pos += 2
        code = 0
        props = Properties()
        if version == 5 and pos < end:
            code = _check_reason(packet_type, buf[pos])
            pos += 1
            if pos < end:
                props, pos = decode_properties(buf, pos, end, packet_type)
        _check_end(pos, end, name)
        return cls(packet_id, code, props)

    return decode


def _decode_subscribe(buf: bytes, pos: int, end: int, flags: int, version: int) -> Subscribe:
    packet_id = _packet_id(buf, pos, end, "SUBSCRIBE")
    pos += 2
    props = Properties()
    if version == 5:
        props, pos = decode_properties(buf, pos, end, PacketType.SUBSCRIBE)
    reserved_mask = 0xC0 if version == 5 else 0xFC
    subscriptions: list[Subscription] = []
    while pos < end:
        topic_filter, pos = decode_string(buf, pos, end)
        if pos >= end:
            raise MqttDecodeError("SUBSCRIBE topic filter without subscription options")
        options = buf[pos]
        pos += 1
        if options & reserved_mask:
            raise MqttDecodeError(f"SUBSCRIBE options 0x{options:02X} set reserved bits")
        qos = options & 0x03
        if qos == 3:
            raise MqttDecodeError("SUBSCRIBE requested QoS 3 is not allowed (0, 1 or 2)")
        retain_handling = (options >> 4) & 0x03
        if retain_handling == 3:
            raise MqttDecodeError("SUBSCRIBE retain handling 3 is not allowed (0, 1 or 2)", 0x82)
        subscriptions.append(Subscription(topic_filter, qos, bool(options & 0x04), bool(options & 0x08),
                                          retain_handling))
    if not subscriptions:
        raise MqttDecodeError("SUBSCRIBE must contain at least one topic filter", 0x82)
    return Subscribe(packet_id, subscriptions, props)


def _decode_suback(buf: bytes, pos: int, end: int, flags: int, version: int) -> Suback:
    packet_id = _packet_id(buf, pos, end, "SUBACK")
    pos += 2
    props = Properties()
    if version == 5:
        props, pos = decode_properties(buf, pos, end, PacketType.SUBACK)
    codes = list(buf[pos:end])
    if not codes:
        raise MqttDecodeError("SUBACK must contain at least one reason code", 0x82)
    valid = VALID_REASON_CODES[PacketType.SUBACK] if version == 5 else V3_SUBACK_RETURN_CODES
    for code in codes:
        if code not in valid:
            raise MqttDecodeError(f"SUBACK code 0x{code:02X} is not valid", 0x82)
    return Suback(packet_id, codes, props)


def _decode_unsubscribe(buf: bytes, pos: int, end: int, flags: int, version: int) -> Unsubscribe:
    packet_id = _packet_id(buf, pos, end, "UNSUBSCRIBE")
    pos += 2
    props = Properties()
    if version == 5:
        props, pos = decode_properties(buf, pos, end, PacketType.UNSUBSCRIBE)
    topic_filters: list[str] = []
    while pos < end:
        topic_filter, pos = decode_string(buf, pos, end)
        topic_filters.append(topic_filter)
    if not topic_filters:
        raise MqttDecodeError("UNSUBSCRIBE must contain at least one topic filter", 0x82)
    return Unsubscribe(packet_id, topic_filters, props)


def _decode_unsuback(buf: bytes, pos: int, end: int, flags: int, version: int) -> Unsuback:
    packet_id = _packet_id(buf, pos, end, "UNSUBACK")
    pos += 2
    if version != 5:
        _check_end(pos, end, "UNSUBACK")
        return Unsuback(packet_id, [])
    props, pos = decode_properties(buf, pos, end, PacketType.UNSUBACK)
    codes = [_check_reason(PacketType.UNSUBACK, code) for code in buf[pos:end]]
    if not codes:
        raise MqttDecodeError("UNSUBACK must contain at least one reason code", 0x82)
    return Unsuback(packet_id, codes, props)


def _empty_decoder(cls: type, name: str) -> Decoder:
    def decode(buf: bytes, pos: int, end: int, flags: int, version: int) -> Packet:
        _check_end(pos, end, name)
        return cls()

    return decode


def _reason_decoder(cls: type, packet_type: PacketType) -> Decoder:
    """DISCONNECT and AUTH: optional reason code, then optional properties (v5)."""
    name = packet_type.name

    def decode(buf: bytes, pos: int, end: int, flags: int, version: int) -> Packet:
        if version != 5:
            if packet_type == PacketType.AUTH:
                raise MqttDecodeError("AUTH (packet type 15) does not exist in MQTT 3.1.1")
            _check_end(pos, end, name)
            return cls()
        code = 0
        props = Properties()
        if pos < end:
            code = _check_reason(packet_type, buf[pos])
            pos += 1
            if pos < end:
                props, pos = decode_properties(buf, pos, end, packet_type)
        _check_end(pos, end, name)
        return cls(code, props)

    return decode


def _decode_publish(buf: bytes, pos: int, end: int, flags: int, version: int) -> Publish:
    """The general PUBLISH decoder (the stream decoder inlines the common case)."""
    qos = (flags >> 1) & 0x03
    if qos == 3:
        raise MqttDecodeError("PUBLISH QoS 3 is not allowed (0, 1 or 2)")
    if qos == 0 and flags & 0x08:
        raise MqttDecodeError("PUBLISH DUP flag must be 0 for QoS 0", 0x82)
    topic, pos = decode_string(buf, pos, end)
    packet_id = None
    if qos:
        packet_id = _packet_id(buf, pos, end, "PUBLISH")
        pos += 2
    props = Properties()
    if version == 5:
        props, pos = decode_properties(buf, pos, end, PacketType.PUBLISH)
    _check_topic_name(topic, version, props.topic_alias is not None)
    return Publish(topic, buf[pos:end], qos, bool(flags & 0x01), bool(flags & 0x08), packet_id, props)


def _decode_reserved(buf: bytes, pos: int, end: int, flags: int, version: int) -> Packet:
    raise MqttDecodeError("packet type 0 is reserved")


_DECODERS: tuple[Decoder, ...] = (
    _decode_reserved,
    _decode_connect,
    _decode_connack,
    _decode_publish,
    _ack_decoder(Puback, PacketType.PUBACK),
    _ack_decoder(Pubrec, PacketType.PUBREC),
    _ack_decoder(Pubrel, PacketType.PUBREL),
    _ack_decoder(Pubcomp, PacketType.PUBCOMP),
    _decode_subscribe,
    _decode_suback,
    _decode_unsubscribe,
    _decode_unsuback,
    _empty_decoder(Pingreq, "PINGREQ"),
    _empty_decoder(Pingresp, "PINGRESP"),
    _reason_decoder(Disconnect, PacketType.DISCONNECT),
    _reason_decoder(Auth, PacketType.AUTH),
)


def _check_fixed_flags(packet_type: int, flags: int) -> None:
    if packet_type == 0:
        raise MqttDecodeError("packet type 0 is reserved")
    required = _REQUIRED_FLAGS.get(packet_type, 0)  # type: ignore[call-overload]
    if flags != required:
        raise MqttDecodeError(
            f"{PacketType(packet_type).name} fixed-header flags 0b{flags:04b} invalid, must be 0b{required:04b}"
        )


# ============================================================================================ stream decoder


class StreamDecoder:
    """Incremental decoder for one connection: feed it bytes, get complete packets back."""

    __slots__ = ("_chunks", "_have", "_need", "max_packet_size", "version")

    def __init__(self, max_packet_size: int = 268435455, version: int = 4) -> None:
        self.max_packet_size = max_packet_size
        self.version = version
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0

    @property
    def buffered(self) -> int:
        """Bytes held back because they do not yet form a complete packet."""
        return self._have

    def feed(self, data: bytes | bytearray | memoryview) -> list[Packet]:
        """Decode every complete packet in the buffered tail plus `data`; keep the incomplete rest.

        Decoding a CONNECT switches `version` to the CONNECT's protocol level (3 counts as 4), so packets
        coalesced behind it are decoded in the right version. Raises MqttDecodeError on invalid input.
        """
        if self._chunks:
            self._chunks.append(bytes(data))
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(self._chunks)
            self._chunks = []
            self._have = 0
        elif type(data) is bytes:
            buf = data
        else:
            buf = bytes(data)
        out: list[Packet] = []
        append = out.append
        n = len(buf)
        pos = 0
        version = self.version
        max_size = self.max_packet_size
        while pos < n:
            # ---- fixed header: type/flags byte and remaining length (1..4 bytes)
            if pos + 1 >= n:
                self._keep(buf, pos, 2)
                return out
            first = buf[pos]
            length = buf[pos + 1]
            if length < 0x80:
                body = pos + 2
            else:
                length, body = self._long_length(buf, pos, n)
                if body < 0:
                    self._keep(buf, pos, n - pos + 1)
                    return out
            end = body + length
            if end - pos > max_size:
                raise MqttDecodeError(
                    f"packet of {end - pos} bytes exceeds the maximum packet size of {max_size} bytes", 0x95
                )
            if end > n:
                self._keep(buf, pos, end - pos)
                return out
            packet_type = first >> 4
            flags = first & 0x0F
            if packet_type == 3:
                # ---- PUBLISH fast path
                qos = (flags >> 1) & 0x03
                if qos == 3 or (qos == 0 and flags & 0x08) or body + 2 > end:
                    append(_decode_publish(buf, body, end, flags, version))  # raises the precise error
                else:
                    topic_end = body + 2 + ((buf[body] << 8) | buf[body + 1])
                    if topic_end > end:
                        raise MqttDecodeError("PUBLISH topic name runs past the end of the packet")
                    try:
                        topic = buf[body + 2 : topic_end].decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise MqttDecodeError(f"ill-formed UTF-8 topic name ({exc.reason})") from None
                    if "\x00" in topic:
                        raise MqttDecodeError("topic name contains U+0000, which MQTT does not allow")
                    p = topic_end
                    packet_id = None
                    if qos:
                        if p + 2 > end:
                            raise MqttDecodeError("PUBLISH packet identifier runs past the end of the packet")
                        packet_id = (buf[p] << 8) | buf[p + 1]
                        if not packet_id:
                            raise MqttDecodeError("PUBLISH packet identifier must be non-zero", 0x82)
                        p += 2
                    if version == 5:
                        props, p = decode_properties(buf, p, end, PacketType.PUBLISH)
                        _check_topic_name(topic, 5, props.topic_alias is not None)
                    else:
                        props = Properties()
                        if not topic or "+" in topic or "#" in topic:
                            _check_topic_name(topic, 4, False)
                    append(Publish(topic, buf[p:end], qos, bool(flags & 0x01), bool(flags & 0x08), packet_id,
                                   props))
            else:
                if flags != (2 if packet_type in (6, 8, 10) else 0):
                    _check_fixed_flags(packet_type, flags)
                packet = _DECODERS[packet_type](buf, body, end, flags, version)
                if packet_type == 1:
                    version = self.version = 5 if packet.protocol_level == 5 else 4  # type: ignore[union-attr]
                append(packet)
            pos = end
        return out

    def _keep(self, buf: bytes, pos: int, need: int) -> None:
        tail = buf[pos:]
        self._chunks = [tail]
        self._have = len(tail)
        self._need = need

    @staticmethod
    def _long_length(buf: bytes, pos: int, n: int) -> tuple[int, int]:
        """Remaining length of 2..4 bytes starting at pos+1: (length, body start), or (0, -1) if incomplete."""
        value = 0
        shift = 0
        for i in range(pos + 1, pos + 5):
            if i >= n:
                return 0, -1
            byte = buf[i]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value, i + 1
            shift += 7
        raise MqttDecodeError("remaining length longer than 4 bytes")


# ============================================================================================ encoding


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
    if _PROTOCOL_NAMES.get(level) != packet.protocol_name:
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
