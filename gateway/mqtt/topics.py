"""Topic names, topic filters and the subscription trie.

Semantics follow MQTT 3.1.1 / 5.0 §4.7: levels split on ``/``; ``+`` matches exactly one level; ``#``
matches the parent level and any number of child levels (so ``sensor/#`` also matches ``sensor`` --
AWS IoT Core differs here, see docs/mqtt.md); a filter starting with a wildcard does not match a topic
starting with ``$``. Shared subscriptions ``$share/<group>/<filter>`` are parsed by `split_shared`.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from gateway.mqtt.errors import MqttError

T = TypeVar("T")
SHARE_PREFIX = "$share/"
UNCACHED_TOPIC_PREFIXES = ("$aws/events/",)  # lifecycle events: one topic per client and event, seldom repeated


class TopicError(MqttError):
    """A topic name or topic filter is invalid (MQTT 5 reason code in `reason_code`)."""

    def __init__(self, message: str, reason_code: int = 0x90) -> None:
        super().__init__(message)
        self.message = message
        self.reason_code = reason_code


def validate_topic_name(topic: str) -> None:
    """Raise `TopicError` unless `topic` may be used in a PUBLISH (non-empty, no wildcards, no NUL)."""
    if not topic:
        raise TopicError("topic name is empty; a PUBLISH needs at least one character")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic name {topic!r} contains a wildcard; '+' and '#' are only allowed in filters")
    if "\x00" in topic:
        raise TopicError("topic name contains U+0000, which MQTT forbids")


def validate_topic_filter(topic_filter: str) -> None:
    """Raise `TopicError` unless `topic_filter` is a valid (possibly shared) subscription filter.

    ``#`` must be the last character and alone in its level; ``+`` must be alone in its level.
    """
    if not topic_filter:
        raise TopicError("topic filter is empty", 0x8F)
    if "\x00" in topic_filter:
        raise TopicError("topic filter contains U+0000, which MQTT forbids", 0x8F)
    group, inner = split_shared(topic_filter)
    if group is not None:
        if not group or "+" in group or "#" in group:
            raise TopicError(
                f"shared subscription {topic_filter!r}: the share name must be non-empty without wildcards", 0x8F
            )
        if not inner:
            raise TopicError(f"shared subscription {topic_filter!r} has no filter after the share name", 0x8F)
    levels = inner.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise TopicError(f"topic filter {topic_filter!r}: '#' must be alone in the last level", 0x8F)
        if "+" in level and level != "+":
            raise TopicError(f"topic filter {topic_filter!r}: '+' must occupy a whole level", 0x8F)


def split_shared(topic_filter: str) -> tuple[str | None, str]:
    """``$share/g/a/b`` -> ``("g", "a/b")``; a non-shared filter -> ``(None, filter)``."""
    if not topic_filter.startswith(SHARE_PREFIX):
        return None, topic_filter
    rest = topic_filter[len(SHARE_PREFIX) :]
    group, sep, inner = rest.partition("/")
    if not sep:
        return group, ""
    return group, inner


def has_wildcard(topic_filter: str) -> bool:
    return "+" in topic_filter or "#" in topic_filter


def filter_matches(topic_filter: str, topic: str) -> bool:
    """Whether the (non-shared, valid) filter matches the topic name."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for i, f in enumerate(f_levels):
        if f == "#":
            return True
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


@dataclass(slots=True)
class _Node(Generic[T]):
    children: dict[str, _Node[T]] = field(default_factory=dict)
    values: dict[Hashable, T] = field(default_factory=dict)


class TopicTrie(Generic[T]):
    """Subscriptions keyed by (filter, owner key), matched against topic names with a per-topic cache.

    The cache holds the match result for each topic seen since the last subscription change; any
    subscribe or unsubscribe clears it (subscription changes are rare next to publishes). Lifecycle event topics
    (`UNCACHED_TOPIC_PREFIXES`) are not cached: each names one client, and a cache entry per connection would
    outlive its use.
    """

    def __init__(self, cache_size: int = 65536) -> None:
        self._root: _Node[T] = _Node()
        self._cache: dict[str, list[T]] = {}
        self._cache_size = cache_size
        self.count = 0

    def add(self, topic_filter: str, key: Hashable, value: T) -> bool:
        """Insert or replace; returns True when the (filter, key) pair is new."""
        node = self._root
        for level in topic_filter.split("/"):
            node = node.children.setdefault(level, _Node())
        new = key not in node.values
        node.values[key] = value
        self.count += new
        self._cache.clear()
        return new

    def remove(self, topic_filter: str, key: Hashable) -> T | None:
        """Remove and return the value stored for (filter, key), pruning empty branches."""
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        for level in topic_filter.split("/"):
            child = node.children.get(level)
            if child is None:
                return None
            path.append((node, level))
            node = child
        value = node.values.pop(key, None)
        if value is None:
            return None
        self.count -= 1
        self._cache.clear()
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.values or child.children:
                break
            del parent.children[level]
        return value

    def get(self, topic_filter: str, key: Hashable) -> T | None:
        node: _Node[T] | None = self._root
        for level in topic_filter.split("/"):
            node = node.children.get(level) if node else None
        return node.values.get(key) if node else None

    def match(self, topic: str) -> list[T]:
        """Every value whose filter matches `topic` (cached until the next subscription change)."""
        hit = self._cache.get(topic)
        if hit is not None:
            return hit
        out: list[T] = []
        levels = topic.split("/")
        self._walk(self._root, levels, 0, out, topic.startswith("$"))
        if topic.startswith(UNCACHED_TOPIC_PREFIXES):
            return out
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[topic] = out
        return out

    @property
    def cached_topics(self) -> int:
        """How many topics' match results the cache holds."""
        return len(self._cache)

    def _walk(self, node: _Node[T], levels: list[str], i: int, out: list[T], dollar: bool) -> None:
        children = node.children
        wildcards_ok = not (dollar and i == 0)
        if wildcards_ok:
            hash_node = children.get("#")
            if hash_node is not None:
                out.extend(hash_node.values.values())
        if i == len(levels):
            return
        exact = children.get(levels[i])
        last = i + 1 == len(levels)
        if exact is not None:
            if last:
                out.extend(exact.values.values())
                hn = exact.children.get("#")
                if hn is not None:
                    out.extend(hn.values.values())
            else:
                self._walk(exact, levels, i + 1, out, dollar)
        if wildcards_ok:
            plus = children.get("+")
            if plus is not None:
                if last:
                    out.extend(plus.values.values())
                    hn = plus.children.get("#")
                    if hn is not None:
                        out.extend(hn.values.values())
                else:
                    self._walk(plus, levels, i + 1, out, dollar)

    def items(self) -> Iterator[tuple[str, Hashable, T]]:
        """Every (filter, key, value) in the trie."""
        stack: list[tuple[str | None, _Node[T]]] = [(None, self._root)]
        while stack:
            prefix, node = stack.pop()
            if prefix is not None:
                for key, value in node.values.items():
                    yield prefix, key, value
            for level, child in node.children.items():
                stack.append((level if prefix is None else f"{prefix}/{level}", child))


__all__ = [
    "UNCACHED_TOPIC_PREFIXES",
    "TopicError",
    "TopicTrie",
    "filter_matches",
    "has_wildcard",
    "split_shared",
    "validate_topic_filter",
    "validate_topic_name",
]
