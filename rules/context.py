"""What a rule sees of one message, and the per-evaluation environment."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rules.values import Value, parse_json

_MISSING = object()


@dataclass(slots=True)
class MessageContext:
    """One message as the rules engine sees it. Build one per message and share it across rules:
    the JSON payload is parsed at most once per SQL-version family and cached here.
    """

    topic: str
    payload: bytes
    client_id: str | None = None  # clientid(); "n/a" when None
    principal: str | None = None  # principal(): certificate thumbprint (hex)
    trace_id: str | None = None  # traceid()
    timestamp_ms: int | None = None  # timestamp(); when None, fixed at first use
    account_id: str = "000000000000"  # accountid()
    source_ip: str | None = None  # sourceip()
    # MQTT 5 properties (get_mqtt_property(), get_user_properties())
    user_properties: tuple[tuple[str, str], ...] = ()
    content_type: str | None = None
    payload_format_indicator: int | None = None  # 0 = bytes, 1 = UTF-8
    response_topic: str | None = None
    correlation_data: bytes | None = None
    message_expiry_s: int | None = None
    _documents: dict[bool, Value] = field(default_factory=dict, repr=False, compare=False)
    _levels: list[str] | None = field(default=None, repr=False, compare=False)

    def document(self, whole_decimals_as_int: bool) -> Value:
        """The parsed JSON payload (``UNDEFINED`` when it is not JSON), cached."""
        docs = self._documents
        doc = docs.get(whole_decimals_as_int, _MISSING)
        if doc is _MISSING:
            doc = docs[whole_decimals_as_int] = parse_json(self.payload, whole_decimals_as_int)
        return doc

    def now_ms(self) -> int:
        if self.timestamp_ms is None:
            self.timestamp_ms = time.time_ns() // 1_000_000
        return self.timestamp_ms

    def topic_levels(self) -> list[str]:
        if self._levels is None:
            self._levels = self.topic.split("/")
        return self._levels


class Env:
    """One evaluation: the current document (payload, or an element inside a nested query), the
    message, the SET variables and the rule's SQL version."""

    __slots__ = ("doc", "msg", "variables", "version")

    def __init__(self, doc: Value, msg: MessageContext, variables: dict[str, Value], version: str) -> None:
        self.doc = doc
        self.msg = msg
        self.variables = variables
        self.version = version
