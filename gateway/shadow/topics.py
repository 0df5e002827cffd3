"""Shadow names and the reserved MQTT topics of the Device Shadow service."""

from __future__ import annotations

import re
from typing import NamedTuple

from gateway.shadow.errors import ShadowRejection, bad_request

THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
SHADOW_NAME = re.compile(r"[$a-zA-Z0-9:_-]{1,64}")
OPERATIONS = ("get", "update", "delete")

# What the service subscribes to internally: the three request topics, classic and named.
REQUEST_FILTERS = tuple(
    f"$aws/things/+/shadow/{prefix}{op}" for prefix in ("", "name/+/") for op in OPERATIONS
)


class ShadowKey(NamedTuple):
    """One shadow: `name` is "" for the classic (unnamed) shadow. A tuple, so hashing it (the store's maps are
    keyed by it) and ordering it happen in C."""

    thing: str
    name: str = ""

    @property
    def prefix(self) -> str:
        base = f"$aws/things/{self.thing}/shadow"
        return f"{base}/name/{self.name}" if self.name else base

    @property
    def display_name(self) -> str:
        """The name AWS quotes in a 404 message: the shadow name, or the thing name for the classic shadow."""
        return self.name or self.thing

    def topic(self, operation: str, outcome: str) -> str:
        """A response topic, e.g. ``topic("update", "accepted")``."""
        return f"{self.prefix}/{operation}/{outcome}"


def validate_key(thing: str, name: str = "") -> ShadowKey:
    """Check names against the iot-data model's patterns; raises a 400 rejection."""
    if not THING_NAME.fullmatch(thing):
        raise bad_request(f"Invalid thing name '{thing}': use 1-128 characters of a-z A-Z 0-9 : _ -")
    if name and not SHADOW_NAME.fullmatch(name):
        raise bad_request(f"Invalid shadow name '{name}': use 1-64 characters of a-z A-Z 0-9 $ : _ -")
    return ShadowKey(thing, name)


def parse_request_topic(topic: str) -> tuple[ShadowKey, str]:
    """Split a request topic into its shadow and operation; raises ShadowRejection for bad names.

    Valid topics are remembered (a device keeps using the same few), up to `PARSED_TOPICS_MAX` of them."""
    parsed = _parsed.get(topic)
    if parsed is None:
        parsed = _parse_request_topic(topic)
        if len(_parsed) >= PARSED_TOPICS_MAX:
            _parsed.clear()
        _parsed[topic] = parsed
    return parsed


PARSED_TOPICS_MAX = 8192
_parsed: dict[str, tuple[ShadowKey, str]] = {}


def _parse_request_topic(topic: str) -> tuple[ShadowKey, str]:
    parts = topic.split("/")
    if len(parts) == 5 and parts[:2] == ["$aws", "things"] and parts[3] == "shadow" and parts[4] in OPERATIONS:
        return validate_key(parts[2]), parts[4]
    if (len(parts) == 7 and parts[:2] == ["$aws", "things"] and parts[3:5] == ["shadow", "name"]
            and parts[6] in OPERATIONS):
        return validate_key(parts[2], parts[5]), parts[6]
    raise ShadowRejection(400, f"Not a shadow request topic: '{topic}'")


__all__ = ["REQUEST_FILTERS", "ShadowKey", "parse_request_topic", "validate_key"]
