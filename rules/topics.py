"""Topic filters for FROM clauses: validation, matching, and an index over many rules.

Matching follows AWS IoT, which differs from the MQTT spec in one point: ``a/#`` matches ``a/`` and
``a/b/c`` but **not** ``a``. Wildcards in the first level never match a topic starting with ``$``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

from rules.errors import TopicFilterError

MAX_TOPIC_BYTES = 256
BASIC_INGEST_PREFIX = "$aws/rules/"

T = TypeVar("T")


def validate_filter(topic_filter: str) -> str:
    """Return the filter if it is a valid MQTT topic filter, else raise :class:`TopicFilterError`."""
    if not topic_filter:
        raise TopicFilterError("the FROM topic filter is empty; write e.g. FROM 'sensors/+/telemetry'")
    if len(topic_filter.encode("utf-8")) > MAX_TOPIC_BYTES:
        raise TopicFilterError(f"topic filter is longer than {MAX_TOPIC_BYTES} bytes")
    if "\x00" in topic_filter:
        raise TopicFilterError("topic filter contains a NUL character")
    levels = topic_filter.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise TopicFilterError(
                f"invalid topic filter {topic_filter!r}: '#' must be a whole level and the last one (e.g. 'a/#')"
            )
        if "+" in level and level != "+":
            raise TopicFilterError(f"invalid topic filter {topic_filter!r}: '+' must be a whole level (e.g. 'a/+/c')")
    return topic_filter


def filter_matches(topic_filter: str, topic: str, hash_matches_parent: bool = False) -> bool:
    """Reference matcher; the index must agree with it. AWS semantics by default; with
    ``hash_matches_parent`` the MQTT-spec rule (``a/#`` also matches ``a``)."""
    f_levels, t_levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and f_levels[0] in ("+", "#"):
        return False
    for i, f in enumerate(f_levels):
        if f == "#":
            return len(t_levels) > i or hash_matches_parent
        if i >= len(t_levels):
            return False
        if f != "+" and f != t_levels[i]:
            return False
    return len(f_levels) == len(t_levels)


def basic_ingest(topic: str) -> tuple[str, str] | None:
    """For ``$aws/rules/<rule>/<rest>``: (rule name, ``<rest>`` as topic() reports it); else None."""
    if not topic.startswith(BASIC_INGEST_PREFIX):
        return None
    rest = topic[len(BASIC_INGEST_PREFIX) :]
    name, _, inner = rest.partition("/")
    return (name, inner) if name else None


class _Node(Generic[T]):
    __slots__ = ("children", "ends", "hashes", "plus")

    def __init__(self) -> None:
        self.children: dict[str, _Node[T]] = {}
        self.plus: _Node[T] | None = None
        self.ends: dict[str, T] = {}  # filters ending exactly here
        self.hashes: dict[str, T] = {}  # filters ending with '#' below here

    def empty(self) -> bool:
        return not (self.children or self.plus or self.ends or self.hashes)


class TopicIndex(Generic[T]):
    """Maps topics to the items whose filter matches. A per-level trie plus a bounded per-topic cache.

    ``put(key, filter, item)`` replaces any previous entry of ``key``. ``hash_matches_parent=True``
    switches to the MQTT-spec rule for ``#`` (``a/#`` also matches ``a``), e.g. to agree with a broker.
    """

    def __init__(self, cache_size: int = 65536, hash_matches_parent: bool = False) -> None:
        self._hash_matches_parent = hash_matches_parent
        self._root: _Node[T] = _Node()
        self._filters: dict[str, str] = {}
        self._cache: dict[str, list[T]] = {}
        self._cache_size = cache_size

    def __len__(self) -> int:
        return len(self._filters)

    def put(self, key: str, topic_filter: str, item: T) -> None:
        validate_filter(topic_filter)
        self.discard(key)
        node = self._root
        levels = topic_filter.split("/")
        for level in levels[:-1]:
            node = self._child(node, level)
        last = levels[-1]
        if last == "#":
            node.hashes[key] = item
        else:
            self._child(node, last).ends[key] = item
        self._filters[key] = topic_filter
        self._cache.clear()

    @staticmethod
    def _child(node: _Node[T], level: str) -> _Node[T]:
        if level == "+":
            if node.plus is None:
                node.plus = _Node()
            return node.plus
        child = node.children.get(level)
        if child is None:
            child = node.children[level] = _Node()
        return child

    def discard(self, key: str) -> None:
        topic_filter = self._filters.pop(key, None)
        if topic_filter is None:
            return
        path: list[tuple[_Node[T], str]] = []
        node = self._root
        levels = topic_filter.split("/")
        for level in levels[:-1]:
            path.append((node, level))
            node = node.plus if level == "+" else node.children[level]  # type: ignore[assignment]
        if levels[-1] == "#":
            del node.hashes[key]
        else:
            path.append((node, levels[-1]))
            node = node.plus if levels[-1] == "+" else node.children[levels[-1]]  # type: ignore[assignment]
            del node.ends[key]
        for parent, level in reversed(path):  # prune empty branches
            child = parent.plus if level == "+" else parent.children[level]
            if child is None or not child.empty():
                break
            if level == "+":
                parent.plus = None
            else:
                del parent.children[level]
        self._cache.clear()

    def keys(self) -> Iterable[str]:
        return self._filters.keys()

    def match(self, topic: str) -> list[T]:
        """Items whose filter matches ``topic`` (the returned list is shared: do not modify it)."""
        cached = self._cache.get(topic)
        if cached is not None:
            return cached
        levels = topic.split("/")
        out: list[T] = []
        n = len(levels)
        root = self._root
        if topic.startswith("$"):
            child = root.children.get(levels[0])
            if child is not None:
                self._walk(child, levels, 1, n, out)
        else:
            self._walk(root, levels, 0, n, out)
        if len(self._cache) >= self._cache_size:
            self._cache.clear()
        self._cache[topic] = out
        return out

    def _walk(self, node: _Node[T], levels: list[str], i: int, n: int, out: list[T]) -> None:
        if i == n:
            if node.ends:
                out.extend(node.ends.values())
            if node.hashes and self._hash_matches_parent:
                out.extend(node.hashes.values())
            return
        if node.hashes:
            out.extend(node.hashes.values())
        child = node.children.get(levels[i])
        if child is not None:
            self._walk(child, levels, i + 1, n, out)
        if node.plus is not None:
            self._walk(node.plus, levels, i + 1, n, out)
