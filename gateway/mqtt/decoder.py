"""Incremental MQTT 3.1 / 3.1.1 / 5.0 decoding with strict validation (see `gateway.mqtt.codec`)."""

from __future__ import annotations

from collections.abc import Callable

from gateway.mqtt.errors import MqttDecodeError
from gateway.mqtt.packets import (
    PROTOCOL_NAMES,
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
    WILL_PROPERTIES,
    decode_binary,
    decode_properties,
    decode_string,
)

__all__ = ["StreamDecoder"]

_REQUIRED_FLAGS = {
    PacketType.PUBREL: 0b0010,
    PacketType.SUBSCRIBE: 0b0010,
    PacketType.UNSUBSCRIBE: 0b0010,
}

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
    if PROTOCOL_NAMES.get(level) != name:
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
        self._chunks: list[bytes] | None = None  # the incomplete tail, only while there is one
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
        chunks = self._chunks
        if chunks:
            chunks.append(bytes(data))
            self._have += len(data)
            if self._have < self._need:
                return []
            buf = b"".join(chunks)
            self._chunks = None
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
