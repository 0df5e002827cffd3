"""Topic validation and the subscription trie, checked against a direct matcher (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.mqtt.topics import (
    TopicError,
    TopicTrie,
    filter_matches,
    split_shared,
    validate_topic_filter,
    validate_topic_name,
)

LEVEL = st.sampled_from(["a", "b", "c", "$SYS", "", "x y"])
TOPIC = st.lists(LEVEL, min_size=1, max_size=4).map("/".join).filter(bool)
FILTER_LEVEL = st.sampled_from(["a", "b", "c", "$SYS", "", "+"])


@st.composite
def filters(draw: st.DrawFn) -> str:
    levels = draw(st.lists(FILTER_LEVEL, min_size=1, max_size=4))
    if draw(st.booleans()):
        levels.append("#")
    return "/".join(levels)


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("sensor/#", "sensor", True),
        ("sensor/#", "sensor/a/b", True),
        ("sensor/+", "sensor", False),
        ("+/+", "/x", True),
        ("#", "$SYS/broker", False),
        ("+/broker", "$SYS/broker", False),
        ("$SYS/#", "$SYS/broker", True),
        ("a/+/c", "a/b/c", True),
        ("a/+/c", "a/b/d", False),
    ],
)
def test_filter_matches_spec_examples(flt: str, topic: str, expected: bool) -> None:
    assert filter_matches(flt, topic) is expected
    trie: TopicTrie[str] = TopicTrie()
    trie.add(flt, "k", flt)
    assert (trie.match(topic) == [flt]) is expected


@given(st.lists(filters(), max_size=12, unique=True), TOPIC)
@settings(max_examples=300, deadline=None)
def test_trie_agrees_with_direct_matcher(flts: list[str], topic: str) -> None:
    trie: TopicTrie[str] = TopicTrie()
    for f in flts:
        trie.add(f, "k", f)
    assert sorted(trie.match(topic)) == sorted(f for f in flts if filter_matches(f, topic))
    for f in flts[::2]:
        assert trie.remove(f, "k") == f
    remaining = flts[1::2]
    assert sorted(trie.match(topic)) == sorted(f for f in remaining if filter_matches(f, topic))
    assert trie.count == len(remaining)
    assert sorted(f for f, _, _ in trie.items()) == sorted(remaining)


@pytest.mark.parametrize("bad", ["a/#/b", "a#", "a/b+", "", "$share/g", "$share//a", "$share/g+/a"])
def test_invalid_filters_rejected(bad: str) -> None:
    with pytest.raises(TopicError):
        validate_topic_filter(bad)


@pytest.mark.parametrize("bad", ["", "a/+", "a/#", "a\x00b"])
def test_invalid_topic_names_rejected(bad: str) -> None:
    with pytest.raises(TopicError):
        validate_topic_name(bad)


def test_shared_subscription_split() -> None:
    assert split_shared("$share/g1/a/+/c") == ("g1", "a/+/c")
    assert split_shared("a/b") == (None, "a/b")
    validate_topic_filter("$share/g1/#")
