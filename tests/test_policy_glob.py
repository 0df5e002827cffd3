"""Property tests of the policy glob matcher against a straightforward recursive reference matcher."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.identity.policy_glob import (
    ONE,
    STAR,
    Glob,
    compile_globs,
    glob_text,
    literal,
    match,
    normalize,
    parse_glob,
    strip_prefix,
)
from gateway.identity.policy_variables import parse_template

ALPHABET = "ab/+#$*?"
patterns = st.text(alphabet=ALPHABET, max_size=10)
subjects = st.text(alphabet=ALPHABET, max_size=12)


def reference_match(pattern: str, text: str) -> bool:
    """IAM glob by definition: `*` matches any run (including `/`), `?` one character, the rest literally."""

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(text)
        ch = pattern[i]
        if ch == "*":
            return go(i + 1, j) or (j < len(text) and go(i, j + 1))
        if j == len(text):
            return False
        return (ch == "?" or ch == text[j]) and go(i + 1, j + 1)

    return go(0, 0)


@settings(max_examples=400, deadline=None)
@given(patterns, subjects)
def test_match_agrees_with_reference(pattern: str, text: str) -> None:
    assert match(parse_glob(pattern), text) == reference_match(pattern, text)


@settings(max_examples=200, deadline=None)
@given(st.lists(patterns, min_size=0, max_size=5), subjects)
def test_compiled_set_is_any_of_its_globs(pattern_list: list[str], text: str) -> None:
    predicate = compile_globs([parse_glob(p) for p in pattern_list])
    assert bool(predicate(text)) == any(reference_match(p, text) for p in pattern_list)


@settings(max_examples=300, deadline=None)
@given(patterns, st.text(alphabet=ALPHABET, max_size=4), subjects)
def test_strip_prefix_is_the_derivative(pattern: str, prefix: str, rest: str) -> None:
    stripped = strip_prefix(parse_glob(pattern), prefix)
    assert any(match(g, rest) for g in stripped) == reference_match(pattern, prefix + rest)


@settings(max_examples=200, deadline=None)
@given(subjects, subjects)
def test_literal_glob_matches_only_itself(value: str, other: str) -> None:
    glob = literal(value)
    assert match(glob, value)
    assert match(glob, other) == (value == other)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "/", "+", "#", "$", "*x", STAR, ONE]), max_size=6))
def test_glob_text_round_trips_through_the_policy_spelling(tokens: list) -> None:
    glob: Glob = normalize(tokens)
    assert parse_template(glob_text(glob)).glob() == glob


def test_mqtt_wildcards_are_literal() -> None:
    assert match(parse_glob("a/+/b"), "a/+/b")
    assert not match(parse_glob("a/+/b"), "a/x/b")
    assert not match(parse_glob("a/#"), "a/b")
    assert match(parse_glob("a/*"), "a/+/#")


def test_fast_paths() -> None:
    assert compile_globs([])("x") is False
    assert compile_globs([(STAR,)])("anything")
    prefix = compile_globs([parse_glob("things/t1/*")])
    assert prefix("things/t1/") and prefix("things/t1/x/y") and not prefix("things/t1")
    exact = compile_globs([parse_glob("a"), parse_glob("b")])
    assert exact("a") and exact("b") and not exact("ab")
