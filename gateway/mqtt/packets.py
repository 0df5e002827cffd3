"""MQTT 3.1.1 / 5.0 packet objects: one slotted dataclass per control packet type.

The objects are version-neutral. Fields that only exist in MQTT 5 (properties, most reason codes) are
ignored when a packet is encoded for 3.1.1 and take their defaults when a 3.1.1 packet is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Union


class PacketType(IntEnum):
    """The control packet type: the high nibble of the first byte of every packet."""

    CONNECT = 1
    CONNACK = 2
    PUBLISH = 3
    PUBACK = 4
    PUBREC = 5
    PUBREL = 6
    PUBCOMP = 7
    SUBSCRIBE = 8
    SUBACK = 9
    UNSUBSCRIBE = 10
    UNSUBACK = 11
    PINGREQ = 12
    PINGRESP = 13
    DISCONNECT = 14
    AUTH = 15


class ReasonCode(IntEnum):
    """Every MQTT 5 reason code (OASIS MQTT 5.0, section 2.4). Several names share a value."""

    SUCCESS = 0x00
    NORMAL_DISCONNECTION = 0x00
    GRANTED_QOS_0 = 0x00
    GRANTED_QOS_1 = 0x01
    GRANTED_QOS_2 = 0x02
    DISCONNECT_WITH_WILL_MESSAGE = 0x04
    NO_MATCHING_SUBSCRIBERS = 0x10
    NO_SUBSCRIPTION_EXISTED = 0x11
    CONTINUE_AUTHENTICATION = 0x18
    RE_AUTHENTICATE = 0x19
    UNSPECIFIED_ERROR = 0x80
    MALFORMED_PACKET = 0x81
    PROTOCOL_ERROR = 0x82
    IMPLEMENTATION_SPECIFIC_ERROR = 0x83
    UNSUPPORTED_PROTOCOL_VERSION = 0x84
    CLIENT_IDENTIFIER_NOT_VALID = 0x85
    BAD_USER_NAME_OR_PASSWORD = 0x86
    NOT_AUTHORIZED = 0x87
    SERVER_UNAVAILABLE = 0x88
    SERVER_BUSY = 0x89
    BANNED = 0x8A
    SERVER_SHUTTING_DOWN = 0x8B
    BAD_AUTHENTICATION_METHOD = 0x8C
    KEEP_ALIVE_TIMEOUT = 0x8D
    SESSION_TAKEN_OVER = 0x8E
    TOPIC_FILTER_INVALID = 0x8F
    TOPIC_NAME_INVALID = 0x90
    PACKET_IDENTIFIER_IN_USE = 0x91
    PACKET_IDENTIFIER_NOT_FOUND = 0x92
    RECEIVE_MAXIMUM_EXCEEDED = 0x93
    TOPIC_ALIAS_INVALID = 0x94
    PACKET_TOO_LARGE = 0x95
    MESSAGE_RATE_TOO_HIGH = 0x96
    QUOTA_EXCEEDED = 0x97
    ADMINISTRATIVE_ACTION = 0x98
    PAYLOAD_FORMAT_INVALID = 0x99
    RETAIN_NOT_SUPPORTED = 0x9A
    QOS_NOT_SUPPORTED = 0x9B
    USE_ANOTHER_SERVER = 0x9C
    SERVER_MOVED = 0x9D
    SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
    CONNECTION_RATE_EXCEEDED = 0x9F
    MAXIMUM_CONNECT_TIME = 0xA0
    SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
    WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2


class ConnackReturnCode(IntEnum):
    """MQTT 3.1 / 3.1.1 CONNACK return codes (the v3 counterpart of the CONNACK reason code)."""

    ACCEPTED = 0
    UNACCEPTABLE_PROTOCOL_VERSION = 1
    IDENTIFIER_REJECTED = 2
    SERVER_UNAVAILABLE = 3
    BAD_USER_NAME_OR_PASSWORD = 4
    NOT_AUTHORIZED = 5


@dataclass(slots=True)
class Properties:
    """Every MQTT 5 property. None (or an empty list) means the property is absent."""

    payload_format_indicator: int | None = None
    message_expiry_interval: int | None = None
    content_type: str | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    subscription_identifiers: list[int] = field(default_factory=list)
    session_expiry_interval: int | None = None
    assigned_client_identifier: str | None = None
    server_keep_alive: int | None = None
    authentication_method: str | None = None
    authentication_data: bytes | None = None
    request_problem_information: int | None = None
    will_delay_interval: int | None = None
    request_response_information: int | None = None
    response_information: str | None = None
    server_reference: str | None = None
    reason_string: str | None = None
    receive_maximum: int | None = None
    topic_alias_maximum: int | None = None
    topic_alias: int | None = None
    maximum_qos: int | None = None
    retain_available: int | None = None
    user_properties: list[tuple[str, str]] = field(default_factory=list)
    maximum_packet_size: int | None = None
    wildcard_subscription_available: int | None = None
    subscription_identifier_available: int | None = None
    shared_subscription_available: int | None = None


@dataclass(slots=True)
class Will:
    """The will message carried by CONNECT."""

    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Connect:
    """CONNECT. `protocol_level` 3 = MQTT 3.1 ("MQIsdp"), 4 = 3.1.1, 5 = 5.0."""

    client_id: str
    protocol_level: int = 4
    clean_start: bool = True
    keepalive: int = 60
    username: str | None = None
    password: bytes | None = None
    will: Will | None = None
    properties: Properties = field(default_factory=Properties)
    protocol_name: str = "MQTT"


@dataclass(slots=True)
class Connack:
    """CONNACK. `reason_code` is the v5 reason code, or the v3 return code (0..5) on a 3.1.1 connection."""

    session_present: bool = False
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Publish:
    """PUBLISH. In v5 `topic` may be "" when a topic alias is used (the broker resolves aliases)."""

    topic: str
    payload: bytes = b""
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Puback:
    """PUBACK (QoS 1 acknowledgement)."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Pubrec:
    """PUBREC (QoS 2, step 1)."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Pubrel:
    """PUBREL (QoS 2, step 2)."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Pubcomp:
    """PUBCOMP (QoS 2, step 3)."""

    packet_id: int
    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Subscription:
    """One topic filter of a SUBSCRIBE with its subscription options."""

    topic_filter: str
    qos: int = 0
    no_local: bool = False
    retain_as_published: bool = False
    retain_handling: int = 0


@dataclass(slots=True)
class Subscribe:
    """SUBSCRIBE."""

    packet_id: int
    subscriptions: list[Subscription]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Suback:
    """SUBACK: one reason code (v3: return code 0, 1, 2 or 0x80) per requested filter."""

    packet_id: int
    reason_codes: list[int]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Unsubscribe:
    """UNSUBSCRIBE."""

    packet_id: int
    topic_filters: list[str]
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Unsuback:
    """UNSUBACK. Reason codes exist on the wire in v5 only (empty list when decoded from 3.1.1)."""

    packet_id: int
    reason_codes: list[int] = field(default_factory=list)
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Pingreq:
    """PINGREQ."""


@dataclass(slots=True)
class Pingresp:
    """PINGRESP."""


@dataclass(slots=True)
class Disconnect:
    """DISCONNECT (v5 may carry a reason code and properties; sent by either side)."""

    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


@dataclass(slots=True)
class Auth:
    """AUTH (MQTT 5 only): enhanced authentication exchange."""

    reason_code: int = 0
    properties: Properties = field(default_factory=Properties)


Packet = Union[  # noqa: UP007 - a runtime alias usable in isinstance() checks and annotations alike
    Connect,
    Connack,
    Publish,
    Puback,
    Pubrec,
    Pubrel,
    Pubcomp,
    Subscribe,
    Suback,
    Unsubscribe,
    Unsuback,
    Pingreq,
    Pingresp,
    Disconnect,
    Auth,
]

PACKET_TYPE_OF: dict[type, PacketType] = {
    Connect: PacketType.CONNECT,
    Connack: PacketType.CONNACK,
    Publish: PacketType.PUBLISH,
    Puback: PacketType.PUBACK,
    Pubrec: PacketType.PUBREC,
    Pubrel: PacketType.PUBREL,
    Pubcomp: PacketType.PUBCOMP,
    Subscribe: PacketType.SUBSCRIBE,
    Suback: PacketType.SUBACK,
    Unsubscribe: PacketType.UNSUBSCRIBE,
    Unsuback: PacketType.UNSUBACK,
    Pingreq: PacketType.PINGREQ,
    Pingresp: PacketType.PINGRESP,
    Disconnect: PacketType.DISCONNECT,
    Auth: PacketType.AUTH,
}

_C = ReasonCode
#: The MQTT 5 reason codes each packet type may carry (OASIS MQTT 5.0, sections 3.2.2.2 to 3.15.2.1).
VALID_REASON_CODES: dict[PacketType, frozenset[int]] = {
    PacketType.CONNACK: frozenset({
        _C.SUCCESS, _C.UNSPECIFIED_ERROR, _C.MALFORMED_PACKET, _C.PROTOCOL_ERROR, _C.IMPLEMENTATION_SPECIFIC_ERROR,
        _C.UNSUPPORTED_PROTOCOL_VERSION, _C.CLIENT_IDENTIFIER_NOT_VALID, _C.BAD_USER_NAME_OR_PASSWORD,
        _C.NOT_AUTHORIZED, _C.SERVER_UNAVAILABLE, _C.SERVER_BUSY, _C.BANNED, _C.BAD_AUTHENTICATION_METHOD,
        _C.TOPIC_NAME_INVALID, _C.PACKET_TOO_LARGE, _C.QUOTA_EXCEEDED, _C.PAYLOAD_FORMAT_INVALID,
        _C.RETAIN_NOT_SUPPORTED, _C.QOS_NOT_SUPPORTED, _C.USE_ANOTHER_SERVER, _C.SERVER_MOVED,
        _C.CONNECTION_RATE_EXCEEDED,
    }),
    PacketType.PUBACK: frozenset({
        _C.SUCCESS, _C.NO_MATCHING_SUBSCRIBERS, _C.UNSPECIFIED_ERROR, _C.IMPLEMENTATION_SPECIFIC_ERROR,
        _C.NOT_AUTHORIZED, _C.TOPIC_NAME_INVALID, _C.PACKET_IDENTIFIER_IN_USE, _C.QUOTA_EXCEEDED,
        _C.PAYLOAD_FORMAT_INVALID,
    }),
    PacketType.PUBREL: frozenset({_C.SUCCESS, _C.PACKET_IDENTIFIER_NOT_FOUND}),
    PacketType.SUBACK: frozenset({
        _C.GRANTED_QOS_0, _C.GRANTED_QOS_1, _C.GRANTED_QOS_2, _C.UNSPECIFIED_ERROR,
        _C.IMPLEMENTATION_SPECIFIC_ERROR, _C.NOT_AUTHORIZED, _C.TOPIC_FILTER_INVALID, _C.PACKET_IDENTIFIER_IN_USE,
        _C.QUOTA_EXCEEDED, _C.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, _C.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED,
        _C.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }),
    PacketType.UNSUBACK: frozenset({
        _C.SUCCESS, _C.NO_SUBSCRIPTION_EXISTED, _C.UNSPECIFIED_ERROR, _C.IMPLEMENTATION_SPECIFIC_ERROR,
        _C.NOT_AUTHORIZED, _C.TOPIC_FILTER_INVALID, _C.PACKET_IDENTIFIER_IN_USE,
    }),
    PacketType.DISCONNECT: frozenset({
        _C.NORMAL_DISCONNECTION, _C.DISCONNECT_WITH_WILL_MESSAGE, _C.UNSPECIFIED_ERROR, _C.MALFORMED_PACKET,
        _C.PROTOCOL_ERROR, _C.IMPLEMENTATION_SPECIFIC_ERROR, _C.NOT_AUTHORIZED, _C.SERVER_BUSY,
        _C.SERVER_SHUTTING_DOWN, _C.KEEP_ALIVE_TIMEOUT, _C.SESSION_TAKEN_OVER, _C.TOPIC_FILTER_INVALID,
        _C.TOPIC_NAME_INVALID, _C.RECEIVE_MAXIMUM_EXCEEDED, _C.TOPIC_ALIAS_INVALID, _C.PACKET_TOO_LARGE,
        _C.MESSAGE_RATE_TOO_HIGH, _C.QUOTA_EXCEEDED, _C.ADMINISTRATIVE_ACTION, _C.PAYLOAD_FORMAT_INVALID,
        _C.RETAIN_NOT_SUPPORTED, _C.QOS_NOT_SUPPORTED, _C.USE_ANOTHER_SERVER, _C.SERVER_MOVED,
        _C.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED, _C.CONNECTION_RATE_EXCEEDED, _C.MAXIMUM_CONNECT_TIME,
        _C.SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED, _C.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED,
    }),
    PacketType.AUTH: frozenset({_C.SUCCESS, _C.CONTINUE_AUTHENTICATION, _C.RE_AUTHENTICATE}),
}
VALID_REASON_CODES[PacketType.PUBREC] = VALID_REASON_CODES[PacketType.PUBACK]
VALID_REASON_CODES[PacketType.PUBCOMP] = VALID_REASON_CODES[PacketType.PUBREL]

#: The protocol name each supported protocol level must come with in CONNECT.
PROTOCOL_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}

#: MQTT 3.1.1 SUBACK return codes.
V3_SUBACK_RETURN_CODES = frozenset({0x00, 0x01, 0x02, 0x80})
