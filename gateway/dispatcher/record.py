"""One journaled message: what the rules engine needs to evaluate it again after a restart.

Binary layout (little-endian): ``seq u64 · timestamp_ms u64 · qos u8`` then seven length-prefixed fields
(``u32`` length, ``0xFFFFFFFF`` = absent): topic, payload, client id, principal, trace id, the matched rule
names (comma-separated; rule names never contain a comma) and the MQTT 5 properties as compact JSON.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from typing import Any

from rules import MessageContext

_HEAD = struct.Struct("<QQB")
_LEN = struct.Struct("<I")
_ABSENT = 0xFFFFFFFF
_ABSENT_FIELD = _LEN.pack(_ABSENT)
_HEAD_AND_TOPIC_LENGTH = struct.Struct("<QQBI")  # _HEAD followed by the topic's length


class RecordDecodeError(ValueError):
    """A journal record body that does not decode (treated like a torn record)."""


@dataclass(slots=True, frozen=True)
class MqttProperties:
    """The MQTT 5 properties the rules engine can read (get_mqtt_property, get_user_properties)."""

    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    payload_format_indicator: int | None = None
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry_s: int | None = None

    def is_empty(self) -> bool:
        return not self.user_properties and self.content_type is None and self.payload_format_indicator is None \
            and self.response_topic is None and self.correlation_data is None and self.message_expiry_s is None

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {}
        if self.user_properties:
            doc["up"] = [list(kv) for kv in self.user_properties]
        if self.content_type is not None:
            doc["ct"] = self.content_type
        if self.payload_format_indicator is not None:
            doc["pf"] = self.payload_format_indicator
        if self.response_topic is not None:
            doc["rt"] = self.response_topic
        if self.correlation_data is not None:
            doc["cd"] = base64.b64encode(self.correlation_data).decode("ascii")
        if self.message_expiry_s is not None:
            doc["me"] = self.message_expiry_s
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> MqttProperties:
        doc = json.loads(data)
        cd = doc.get("cd")
        return cls(
            tuple((str(k), str(v)) for k, v in doc.get("up", ())),
            doc.get("ct"), doc.get("pf"), doc.get("rt"),
            base64.b64decode(cd) if cd is not None else None, doc.get("me"),
        )


NO_PROPERTIES = MqttProperties()  # shared by every message without MQTT 5 properties


@dataclass(slots=True)
class JournalRecord:
    """A routed message. `seq` orders the journal; `rules` are the rule names it matched when accepted."""

    seq: int
    timestamp_ms: int
    qos: int
    topic: str
    payload: bytes
    rules: tuple[str, ...]
    client_id: str | None = None
    principal: str | None = None
    trace_id: str | None = None
    properties: MqttProperties = NO_PROPERTIES

    def encode(self) -> bytes:
        topic = self.topic.encode("utf-8")
        out = bytearray(_HEAD_AND_TOPIC_LENGTH.pack(self.seq, self.timestamp_ms, self.qos, len(topic)))
        out += topic
        _put_field(out, self.payload)
        for text in (self.client_id, self.principal, self.trace_id):
            if text is None:
                out += _ABSENT_FIELD
            else:
                _put_field(out, text.encode("utf-8"))
        rules = self.rules
        _put_field(out, rules[0].encode("ascii") if len(rules) == 1 else ",".join(rules).encode("ascii"))
        props = self.properties
        if props is NO_PROPERTIES or props.is_empty():
            out += _ABSENT_FIELD
        else:
            _put_field(out, props.to_json())
        return bytes(out)

    @classmethod
    def decode(cls, body: bytes) -> JournalRecord:
        try:
            seq, ts, qos = _HEAD.unpack_from(body, 0)
            pos = _HEAD.size
            fields: list[bytes | None] = []
            for _ in range(7):
                (n,) = _LEN.unpack_from(body, pos)
                pos += _LEN.size
                if n == _ABSENT:
                    fields.append(None)
                    continue
                if pos + n > len(body):
                    raise RecordDecodeError("a field runs past the end of the record")
                fields.append(body[pos:pos + n])
                pos += n
            if pos != len(body):
                raise RecordDecodeError("trailing bytes after the last field")
            topic, payload, client_id, principal, trace_id, rules, props = fields
            if topic is None or payload is None or rules is None:
                raise RecordDecodeError("topic, payload and rules are required")
            return cls(
                seq, ts, qos, topic.decode("utf-8"), payload,
                tuple(rules.decode("ascii").split(",")) if rules else (),
                _untext(client_id), _untext(principal), _untext(trace_id),
                MqttProperties.from_json(props) if props is not None else NO_PROPERTIES,
            )
        except (struct.error, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, RecordDecodeError):
                raise
            raise RecordDecodeError(f"undecodable journal record: {exc}") from exc

    def context(self, account_id: str) -> MessageContext:
        """The message as the rules engine sees it (timestamp and trace id as when it was accepted)."""
        p = self.properties
        # Positional (field order of MessageContext): a third of the cost of keywords, once per message.
        return MessageContext(
            self.topic, self.payload, self.client_id, self.principal, self.trace_id, self.timestamp_ms, account_id,
            None, p.user_properties, p.content_type, p.payload_format_indicator, p.response_topic,
            p.correlation_data, p.message_expiry_s,
        )


def _put_field(out: bytearray, data: bytes) -> None:
    """Append one length-prefixed field."""
    out += len(data).to_bytes(4, "little")
    out += data


def _untext(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8")
