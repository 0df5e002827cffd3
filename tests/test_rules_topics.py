"""FROM topic filters: validation, AWS matching semantics, and the topic index vs a brute-force matcher."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules import TopicFilterError, TopicIndex, basic_ingest, filter_matches, validate_filter


@pytest.mark.parametrize(
    "good", ["a", "a/b", "a/+/c", "a/#", "#", "+", "+/+", "$aws/things/+/shadow/update", "a//b", "/"]
)
def test_valid_filters(good: str) -> None:
    assert validate_filter(good) == good


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("", "empty"),
        ("a/#/b", "'#' must be a whole level and the last one"),
        ("a/b#", "'#' must be a whole level"),
        ("a+/b", "'+' must be a whole level"),
        ("a/+b", "'+' must be a whole level"),
        ("x" * 257, "longer than 256 bytes"),
        ("a\x00b", "NUL"),
    ],
)
def test_invalid_filters(bad: str, message: str) -> None:
    with pytest.raises(TopicFilterError, match=re.escape(message)):
        validate_filter(bad)


@pytest.mark.parametrize(
    ("topic_filter", "topic", "expected"),
    [
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/+", "a/b", True),
        ("a/+", "a/", True),
        ("a/+", "a", False),
        ("a/#", "a/b/c", True),
        ("a/#", "a/", True),
        ("a/#", "a", False),  # AWS: 'sensor/#' does not match 'sensor'
        ("#", "x/y", True),
        ("#", "$aws/things/t/shadow/update", False),
        ("+/things/#", "$aws/things/t", False),
        ("$aws/things/+/shadow/#", "$aws/things/t1/shadow/update", True),
        ("+/+", "/x", True),
    ],
)
def test_filter_matches(topic_filter: str, topic: str, expected: bool) -> None:
    assert filter_matches(topic_filter, topic) is expected
    index: TopicIndex[str] = TopicIndex()
    index.put("r", topic_filter, "r")
    assert (index.match(topic) == ["r"]) is expected


def test_basic_ingest_topics() -> None:
    assert basic_ingest("$aws/rules/MyRule/sensors/1") == ("MyRule", "sensors/1")
    assert basic_ingest("$aws/rules/MyRule") == ("MyRule", "")
    assert basic_ingest("sensors/1") is None


def test_index_put_replace_discard() -> None:
    index: TopicIndex[str] = TopicIndex()
    index.put("r1", "a/+", "one")
    index.put("r2", "a/#", "two")
    assert sorted(index.match("a/b")) == ["one", "two"]
    index.put("r1", "b/+", "one")  # replace: r1 moves to another filter
    assert index.match("a/b") == ["two"]
    assert index.match("b/x") == ["one"]
    index.discard("r2")
    index.discard("missing")
    assert index.match("a/b") == []
    assert len(index) == 1
    index.discard("r1")
    assert index._root.empty()  # branches are pruned


_level = st.sampled_from(["a", "b", "c", "", "$x", "$aws"])
_topic = st.lists(_level, min_size=1, max_size=5).map("/".join)
_filter_level = st.sampled_from(["a", "b", "c", "", "+", "$x", "$aws"])


@st.composite
def _filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(_filter_level, min_size=1, max_size=5))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels) or "a"


def test_mqtt_spec_hash_semantics_on_request() -> None:
    assert filter_matches("a/#", "a", hash_matches_parent=True)
    index: TopicIndex[str] = TopicIndex(hash_matches_parent=True)
    index.put("r", "a/#", "r")
    assert index.match("a") == ["r"]
    assert index.match("$a") == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(_filters(), min_size=1, max_size=30),
    st.lists(_topic, min_size=1, max_size=20),
    st.booleans(),
    st.data(),
)
def test_index_agrees_with_brute_force(
    filters: list[str], topics: list[str], parent: bool, data: st.DataObject
) -> None:
    index: TopicIndex[int] = TopicIndex(hash_matches_parent=parent)
    live: dict[str, str] = {}
    for i, f in enumerate(filters):
        index.put(f"r{i}", f, i)
        live[f"r{i}"] = f
    for key in data.draw(st.lists(st.sampled_from(sorted(live)), max_size=5)):
        index.discard(key)
        live.pop(key, None)
    for topic in topics:
        expected = sorted(int(k[1:]) for k, f in live.items() if filter_matches(f, topic, parent))
        assert sorted(index.match(topic)) == expected
        assert sorted(index.match(topic)) == expected  # cached answer is the same
