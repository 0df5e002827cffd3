"""IAM-style globs for policy resources and `StringLike` conditions.

A glob is a tuple of tokens: literal strings and the wildcards `STAR` (any run of characters, `/` included)
and `ONE` (exactly one character). MQTT `+` and `#` are ordinary literal characters here, as in AWS IoT.
Globs compile to the cheapest check that decides them: set membership for literals, `str.startswith`
for `prefix*`, a constant for a lone `*`, and one combined regular expression for everything else.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Final


class Wild(enum.Enum):
    """A wildcard token of a glob."""

    STAR = "*"
    ONE = "?"


STAR: Final = Wild.STAR
ONE: Final = Wild.ONE

Token = str | Wild
Glob = tuple[Token, ...]
StrPredicate = Callable[[str], bool]


def normalize(tokens: Iterable[Token]) -> Glob:
    """Merge adjacent literals, drop empty ones and collapse runs of `*` (which match the same strings)."""
    out: list[Token] = []
    for token in tokens:
        if isinstance(token, str):
            if not token:
                continue
            if out and isinstance(out[-1], str):
                out[-1] = out[-1] + token
                continue
        elif token is STAR and out and out[-1] is STAR:
            continue
        out.append(token)
    return tuple(out)


@functools.lru_cache(maxsize=4096)
def parse_glob(text: str) -> Glob:
    """Read `text` with `*` and `?` as wildcards and every other character as a literal."""
    if "*" not in text and "?" not in text:
        return (text,) if text else ()
    return normalize(STAR if ch == "*" else ONE if ch == "?" else ch for ch in text)


def literal(text: str) -> Glob:
    """A glob matching exactly `text`, whatever characters it contains."""
    return normalize((text,))


def glob_text(glob: Glob) -> str:
    """The IAM spelling of `glob`; literal `*`, `?` and `$` are written as `${*}`, `${?}`, `${$}`."""
    parts: list[str] = []
    for token in glob:
        if isinstance(token, Wild):
            parts.append(token.value)
        else:
            parts.append(token.replace("$", "${$}").replace("*", "${*}").replace("?", "${?}"))
    return "".join(parts)


def regex_source(glob: Glob) -> str:
    """A regular expression (for `fullmatch` with DOTALL) equivalent to `glob`."""
    return "".join(".*" if t is STAR else "." if t is ONE else re.escape(t) for t in glob)


def match(glob: Glob, text: str) -> bool:
    """Whether `glob` matches the whole of `text` (uncompiled; use `compile_globs` on hot paths)."""
    return re.fullmatch(regex_source(glob), text, re.DOTALL) is not None


def strip_prefix(glob: Glob, prefix: str) -> set[Glob]:
    """The globs that match `rest` exactly when `glob` matches `prefix + rest` (the derivative by `prefix`).

    Used to turn a pattern over `type/name` into patterns over the bare name for one resource type.
    """
    head = glob[0] if glob else ""
    if isinstance(head, str):  # fast paths: the prefix lies inside (or conflicts with) the leading literal
        if head.startswith(prefix):
            return {normalize((head[len(prefix) :], *glob[1:]))}
        if not prefix.startswith(head) or len(glob) == 1:
            return set()
    units: list[Token] = [ch for t in glob for ch in ((t,) if isinstance(t, Wild) else tuple(t))]

    def closure(states: set[int]) -> set[int]:
        todo, seen = list(states), set(states)
        while todo:
            i = todo.pop()
            if i < len(units) and units[i] is STAR and i + 1 not in seen:
                seen.add(i + 1)
                todo.append(i + 1)
        return seen

    states = closure({0})
    for ch in prefix:
        nxt: set[int] = set()
        for i in states:
            if i >= len(units):
                continue
            unit = units[i]
            if unit is STAR:
                nxt.add(i)
            elif unit is ONE or unit == ch:
                nxt.add(i + 1)
        states = closure(nxt)
        if not states:
            return set()
    return {normalize(units[i:]) for i in states}


def _always(_: str) -> bool:
    return True


def _never(_: str) -> bool:
    return False


def compile_globs(globs: Sequence[Glob]) -> StrPredicate:
    """One predicate that is true when any of `globs` matches the whole string."""
    exact: set[str] = set()
    prefixes: set[str] = set()
    patterns: set[str] = set()
    for glob in globs:
        if glob == (STAR,):
            return _always
        if all(isinstance(t, str) for t in glob):
            exact.add("".join(t for t in glob if isinstance(t, str)))
        elif len(glob) == 2 and isinstance(glob[0], str) and glob[1] is STAR:
            prefixes.add(glob[0])
        else:
            patterns.add(regex_source(glob))
    return _combine(frozenset(exact), tuple(sorted(prefixes)), patterns)


def _combine(exact: frozenset[str], prefixes: tuple[str, ...], patterns: set[str]) -> StrPredicate:
    """Build the fastest closure for the given literal, prefix and regex parts."""
    regex = re.compile("|".join(f"(?:{p})" for p in sorted(patterns)), re.DOTALL).fullmatch if patterns else None
    if regex is None:
        if not prefixes:
            return exact.__contains__ if exact else _never
        if not exact:
            return lambda s: s.startswith(prefixes)
        return lambda s: s in exact or s.startswith(prefixes)
    if not exact and not prefixes:
        return lambda s: regex(s) is not None
    return lambda s: s in exact or s.startswith(prefixes) or regex(s) is not None
