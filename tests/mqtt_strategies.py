"""Hypothesis strategies for MQTT: valid packets, encoded streams, and random / mutated byte streams.

Used by the codec property tests and by the live-broker fuzz test:

* `packets(version)` — any valid packet object for MQTT 3.1.1 (4) or 5.0 (5), equal to its own decoding;
* `client_packets(version)` — only packets a client may send after CONNECT;
* `packet_streams(version)` — (bytes, packets): a CONNECT of that version followed by other packets;
* `mutated_streams(version)` — an encoded valid stream with random byte flips / inserts / deletes / cuts;
* `fuzz_sessions(version)` — bytes for a live broker: a valid CONNECT, then valid and mutated client packets.
"""

from __future__ import annotations

from hypothesis import strategies as st

from gateway.mqtt.codec import encode
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
    BINARY,
    BYTE,
    FOUR_BYTE,
    MAX_VARINT,
    PROPERTY_SPECS,
    STRING,
    STRING_PAIR,
    TWO_BYTE,
    VARINT,
    WILL_PROPERTIES,
)

__all__ = [
    "client_packets",
    "fuzz_sessions",
    "mutated_streams",
    "packet_streams",
    "packets",
    "properties_for",
    "topic_names",
]

#: Well-formed MQTT text: any code point except U+0000 and surrogates.
mqtt_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
packet_ids = st.integers(1, 0xFFFF)
payloads = st.binary(max_size=80)
_LEVEL_SEGMENT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/+#"), max_size=6)


def topic_names() -> st.SearchStrategy[str]:
    """Non-empty topic names without wildcards."""
    return st.lists(_LEVEL_SEGMENT, min_size=1, max_size=4).map("/".join).filter(bool)


topic_filters = st.lists(st.one_of(_LEVEL_SEGMENT, st.just("+")), min_size=1, max_size=4).map("/".join).flatmap(
    lambda base: st.sampled_from([base, base + "/#", "#"])
)

_BOOLEAN_PROPERTIES = {"payload_format_indicator", "request_problem_information", "request_response_information",
                       "maximum_qos", "retain_available", "wildcard_subscription_available",
                       "subscription_identifier_available", "shared_subscription_available"}
_NONZERO_PROPERTIES = {"receive_maximum", "topic_alias", "maximum_packet_size"}
_INT_MAX = {BYTE: 0xFF, TWO_BYTE: 0xFFFF, FOUR_BYTE: 0xFFFF_FFFF}


def _value_strategy(name: str, kind: int) -> st.SearchStrategy[object]:
    if name in _BOOLEAN_PROPERTIES:
        return st.integers(0, 1)
    if kind in _INT_MAX:
        return st.integers(1 if name in _NONZERO_PROPERTIES else 0, _INT_MAX[kind])
    if kind == STRING:
        return mqtt_text
    if kind == BINARY:
        return st.binary(max_size=16)
    raise AssertionError(f"no strategy for {name}")


@st.composite
def properties_for(draw: st.DrawFn, packet_type: int) -> Properties:
    """A random valid Properties for `packet_type` (a PacketType, or WILL_PROPERTIES)."""
    props = Properties()
    for spec in PROPERTY_SPECS:
        if packet_type not in spec.allowed_in or not draw(st.booleans()):
            continue
        if spec.kind == STRING_PAIR:
            props.user_properties = draw(st.lists(st.tuples(mqtt_text, mqtt_text), min_size=1, max_size=3))
        elif spec.kind == VARINT:
            most = 3 if packet_type == PacketType.PUBLISH else 1
            props.subscription_identifiers = draw(st.lists(st.integers(1, MAX_VARINT), min_size=1, max_size=most))
        else:
            setattr(props, spec.name, draw(_value_strategy(spec.name, spec.kind)))
    return props


def _props(version: int, packet_type: int) -> st.SearchStrategy[Properties]:
    return properties_for(packet_type) if version == 5 else st.builds(Properties)


def _reason(version: int, packet_type: PacketType) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(VALID_REASON_CODES[packet_type])) if version == 5 else st.just(0)


@st.composite
def connects(draw: st.DrawFn, version: int) -> Connect:
    """A valid CONNECT; for version 4 either MQTT 3.1.1 or MQTT 3.1 ("MQIsdp", level 3)."""
    level = 5 if version == 5 else draw(st.sampled_from([3, 4]))
    will = None
    if draw(st.booleans()):
        will = Will(draw(topic_names()), draw(payloads), draw(st.integers(0, 2)), draw(st.booleans()),
                    draw(_props(version, WILL_PROPERTIES)))
    username = draw(st.none() | mqtt_text)
    password = draw(st.none() | st.binary(max_size=16))
    if level < 5 and username is None:
        password = None
    return Connect(draw(mqtt_text), level, draw(st.booleans()), draw(st.integers(0, 0xFFFF)), username, password,
                   will, draw(_props(version, PacketType.CONNECT)), "MQIsdp" if level == 3 else "MQTT")


@st.composite
def connacks(draw: st.DrawFn, version: int) -> Connack:
    code = draw(_reason(version, PacketType.CONNACK) if version == 5 else st.integers(0, 5))
    return Connack(draw(st.booleans()) and code == 0, code, draw(_props(version, PacketType.CONNACK)))


@st.composite
def publishes(draw: st.DrawFn, version: int) -> Publish:
    qos = draw(st.integers(0, 2))
    props = draw(_props(version, PacketType.PUBLISH))
    topic = draw(topic_names())
    if props.topic_alias is not None and draw(st.booleans()):
        topic = ""
    return Publish(topic, draw(payloads), qos, draw(st.booleans()), qos > 0 and draw(st.booleans()),
                   draw(packet_ids) if qos else None, props)


def _acks(version: int, cls: type, packet_type: PacketType) -> st.SearchStrategy[Packet]:
    return st.builds(cls, packet_ids, _reason(version, packet_type), _props(version, packet_type))


@st.composite
def subscribes(draw: st.DrawFn, version: int) -> Subscribe:
    def subscription() -> st.SearchStrategy[Subscription]:
        if version == 5:
            return st.builds(Subscription, topic_filters, st.integers(0, 2), st.booleans(), st.booleans(),
                             st.integers(0, 2))
        return st.builds(Subscription, topic_filters, st.integers(0, 2))

    subs = draw(st.lists(subscription(), min_size=1, max_size=4))
    return Subscribe(draw(packet_ids), subs, draw(_props(version, PacketType.SUBSCRIBE)))


def _code_lists(version: int, packet_type: PacketType, v3_codes: frozenset[int]) -> st.SearchStrategy[list[int]]:
    codes = VALID_REASON_CODES[packet_type] if version == 5 else v3_codes
    return st.lists(st.sampled_from(sorted(codes)), min_size=1, max_size=4)


def packets(version: int) -> st.SearchStrategy[Packet]:
    """Any valid packet of protocol `version` (4 or 5) whose decoding equals itself."""
    choices = [
        connects(version),
        connacks(version),
        publishes(version),
        _acks(version, Puback, PacketType.PUBACK),
        _acks(version, Pubrec, PacketType.PUBREC),
        _acks(version, Pubrel, PacketType.PUBREL),
        _acks(version, Pubcomp, PacketType.PUBCOMP),
        subscribes(version),
        st.builds(Suback, packet_ids, _code_lists(version, PacketType.SUBACK, V3_SUBACK_RETURN_CODES),
                  _props(version, PacketType.SUBACK)),
        st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4),
                  _props(version, PacketType.UNSUBSCRIBE)),
        st.builds(Unsuback, packet_ids,
                  _code_lists(version, PacketType.UNSUBACK, frozenset()) if version == 5 else st.just([]),
                  _props(version, PacketType.UNSUBACK)),
        st.builds(Pingreq),
        st.builds(Pingresp),
        st.builds(Disconnect, _reason(version, PacketType.DISCONNECT), _props(version, PacketType.DISCONNECT)),
    ]
    if version == 5:
        choices.append(st.builds(Auth, _reason(5, PacketType.AUTH), _props(5, PacketType.AUTH)))
    return st.one_of(choices)


def client_packets(version: int) -> st.SearchStrategy[Packet]:
    """Packets a client may send once connected (no CONNECT, no server-only packets)."""
    choices = [
        publishes(version),
        _acks(version, Puback, PacketType.PUBACK),
        _acks(version, Pubrec, PacketType.PUBREC),
        _acks(version, Pubrel, PacketType.PUBREL),
        _acks(version, Pubcomp, PacketType.PUBCOMP),
        subscribes(version),
        st.builds(Unsubscribe, packet_ids, st.lists(topic_filters, min_size=1, max_size=4),
                  _props(version, PacketType.UNSUBSCRIBE)),
        st.builds(Pingreq),
    ]
    return st.one_of(choices)


@st.composite
def packet_streams(draw: st.DrawFn, version: int, max_packets: int = 12) -> tuple[bytes, list[Packet]]:
    """A CONNECT of `version` then other packets (never another CONNECT), encoded back to back."""
    first = draw(connects(version))
    rest = draw(st.lists(packets(version).filter(lambda p: not isinstance(p, Connect)), max_size=max_packets))
    items = [first, *rest]
    return b"".join(encode(p, version) for p in items), items


@st.composite
def mutated_streams(draw: st.DrawFn, version: int) -> bytes:
    """An encoded valid stream with 1..6 random mutations: byte flips, inserts, deletions, truncation."""
    data = bytearray(draw(packet_streams(version, max_packets=6))[0])
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def fuzz_sessions(draw: st.DrawFn, version: int) -> bytes:
    """Bytes to send to a live broker: a valid CONNECT, then client packets of which some are mutated."""
    connect = draw(connects(version))
    connect.will = None  # keep brokers from publishing wills into other tests' topics
    parts = [encode(connect, version)]
    for packet in draw(st.lists(client_packets(version), max_size=8)):
        raw = bytearray(encode(packet, version))
        if draw(st.integers(0, 3)) == 0:
            raw[draw(st.integers(0, len(raw) - 1))] ^= 1 << draw(st.integers(0, 7))
        parts.append(bytes(raw))
    if draw(st.booleans()):
        parts.append(draw(st.binary(max_size=32)))
    return b"".join(parts)
