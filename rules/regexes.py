"""The regular expressions of regexp_matches / regexp_replace / regexp_substr, each call bounded in time.

AWS evaluates them with Java's ``java.util.regex``. They run here on the ``regex`` engine: in its default
(VERSION0) mode it reads every pattern Python's ``re`` reads the same way, adds Java constructs ``re``
lacks (``\\p{Lu}``, ``\\h``, ``\\R``, ``\\z``, ``\\G``, ``(?-i)``, flags in mid-pattern, look-behind of
variable length, Java's ``(?<name>...)`` groups) and, above all, can stop a match after a time budget.
The rules run on the gateway's event loop: one backtracking pattern such as ``(a|aa)+$`` on a hostile
payload would otherwise stall the broker, the shadows, everything.

- Every call gets a budget (:data:`DEFAULT_BUDGET_MS`, or the ``regex_budget_ms=`` given to
  ``compile_sql`` / ``parse_topic_rule``, which compile inside :func:`regex_budget`). A call that runs
  out of it raises :class:`RuleEvaluationError` naming the function, the pattern and the budget.
- ``regex`` unrolls counted repetitions when it compiles, so ``((a{1000}){1000}){1000}`` would take
  forever to *compile*, and no timeout covers compilation. The engine's own parser (pure Python, linear)
  tells how many items a pattern unrolls to; a pattern of more than :data:`MAX_EXPANDED_SIZE` items or
  :data:`MAX_PATTERN_CHARS` characters is refused (a creation error for a literal pattern, a
  :class:`RuleEvaluationError` for one computed per message).
- A pattern written as a literal in the SQL is compiled once, when the rule is created; patterns
  computed per message share a bounded LRU cache (:data:`PATTERN_CACHE_SIZE`).
- A pattern that does not compile makes the function return Undefined, as before.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Final, Protocol

import regex
from regex import _regex_core as _core

from rules.errors import RuleEvaluationError, RuleValidationError, SqlSemanticError
from rules.values import UNDEFINED, Value, to_string

DEFAULT_BUDGET_MS: Final = 100.0
PATTERN_CACHE_SIZE: Final = 512  # compiled patterns computed at run time (literal ones are kept by their rule)
MAX_PATTERN_CHARS: Final = 4096
MAX_EXPANDED_SIZE: Final = 10_000  # items once counted repetitions are unrolled (compiles in about 0.1 s at most)
_SHOWN_PATTERN_CHARS = 200



class Match(Protocol):
    """What this module uses of a `regex` match object (the `regex` package ships no type stubs)."""

    def group(self, group: int | str = 0, /) -> str | None: ...


class Pattern(Protocol):
    """What this module uses of a compiled `regex` pattern: its source and timed search / substitution."""

    @property
    def pattern(self) -> str: ...

    def search(self, string: str, *, timeout: float | None = None) -> Match | None: ...

    def sub(self, repl: Callable[[Match], str], string: str, *, timeout: float | None = None) -> str: ...


PatternOf = Callable[[Value], "Pattern | None"]
RegexFunction = Callable[..., Value]

_budget_ms: ContextVar[float] = ContextVar("regex_budget_ms", default=DEFAULT_BUDGET_MS)


class PatternTooLarge(ValueError):
    """A pattern longer than :data:`MAX_PATTERN_CHARS` or unrolling to more than :data:`MAX_EXPANDED_SIZE` items."""


# -- the budget ---------------------------------------------------------------------------------------


def check_budget_ms(ms: object) -> float:
    """``ms`` as a budget in milliseconds, or RuleValidationError saying what is allowed."""
    if isinstance(ms, bool) or not isinstance(ms, int | float) or not math.isfinite(ms) or ms <= 0:
        raise RuleValidationError(f"the regex budget must be a positive number of milliseconds, got {ms!r}")
    return float(ms)


def current_budget_ms() -> float:
    """The budget that regexp functions compiled now get."""
    return _budget_ms.get()


@contextmanager
def regex_budget(ms: float | None) -> Iterator[float]:
    """Compile inside this block to give the regexp calls of the compiled code ``ms`` milliseconds each
    (None: keep the current budget). Yields the budget in force."""
    if ms is None:
        yield _budget_ms.get()
        return
    token = _budget_ms.set(check_budget_ms(ms))
    try:
        yield _budget_ms.get()
    finally:
        _budget_ms.reset(token)


# -- compiling ----------------------------------------------------------------------------------------


def _parse(pattern: str) -> _core.RegexBase:
    """The engine's own parse tree of ``pattern`` (the pure-Python step before the C compiler), with the
    engine's handling of flags set in mid-pattern. Raises regex.error for an invalid pattern."""
    flags = 0
    while True:
        source = _core.Source(pattern)
        info = _core.Info(flags, source.char_type, {})
        source.ignore_space = bool(info.flags & _core.VERBOSE)
        try:
            return _core._parse_pattern(source, info)
        except _core._UnscopedFlagSet:  # e.g. "a(?x)b": the engine parses again with the flag global
            flags = info.global_flags


def _expanded_size(node: _core.RegexBase) -> int:
    """The items the C compiler lays out for ``node``: a repetition is unrolled ``min`` times."""
    if isinstance(node, _core.String):
        return len(node.characters)
    if isinstance(node, _core.SetBase):
        return 1
    total = 0
    for value in vars(node).values():
        if isinstance(value, _core.RegexBase):
            total += _expanded_size(value)
        elif isinstance(value, list | tuple):
            total += sum(_expanded_size(v) for v in value if isinstance(v, _core.RegexBase))
    if isinstance(node, _core.GreedyRepeat):  # also the lazy and possessive ones
        return total * max(node.min_count, 1)
    return max(total, 1)


def expanded_size(pattern: str) -> int:
    """How many items compiling ``pattern`` lays out (``(?:a{100}){100}`` is 10000). Raises regex.error
    for an invalid pattern."""
    return _expanded_size(_parse(pattern))


def compile_pattern(pattern: str) -> Pattern | None:
    """A Java-style pattern compiled, or None when it does not compile; PatternTooLarge when it is longer
    than MAX_PATTERN_CHARS or compiling it would lay out more than MAX_EXPANDED_SIZE items."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise PatternTooLarge(
            f"the regular expression {_shown(pattern)} has {len(pattern)} characters; at most {MAX_PATTERN_CHARS}"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "possible nested set": Java reads [[a]] that way too
        try:
            size = expanded_size(pattern)
            if size <= MAX_EXPANDED_SIZE:
                return regex.compile(pattern)
        except (regex.error, OverflowError, ValueError, RecursionError):
            return None
    raise PatternTooLarge(
        f"the regular expression {_shown(pattern)} expands to {size} items when compiled (counted repetitions "
        f"such as {{n}} multiply when nested); at most {MAX_EXPANDED_SIZE} are allowed"
    )


def _check_engine() -> None:
    """The size check reads the engine's parse tree: refuse to run on a ``regex`` whose parser changed
    rather than compile patterns unchecked."""
    try:
        understood = expanded_size("(?:a{2}[bc]){3}") == 9
    except (AttributeError, TypeError, regex.error):
        understood = False
    if not understood:
        raise ImportError(
            f"regex {regex.__version__} is not supported: its parser changed; install the version pyproject.toml names"
        )


_check_engine()

@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def compile_cached(pattern: str) -> Pattern | PatternTooLarge | None:
    """compile_pattern behind the bounded cache used for patterns computed per message; a refusal is
    cached too (returned, not raised), so a message repeating a huge pattern costs one dictionary lookup."""
    try:
        return compile_pattern(pattern)
    except PatternTooLarge as exc:
        return exc


_JAVA_GROUP_REF = re.compile(r"\$(\d+)|\$\{(\w+)\}|\\(.)|\\$")


@lru_cache(maxsize=PATTERN_CACHE_SIZE)
def java_replacement(repl: str) -> Callable[[Match], str]:
    """Java replacement syntax (``$1``, ``${name}``, ``\\$``) as a replacement callable; a reference to a
    group that the pattern does not have raises IndexError when it is used."""
    parts: list[str | int | tuple[str, str]] = []
    pos = 0
    for m in _JAVA_GROUP_REF.finditer(repl):
        parts.append(repl[pos : m.start()])
        if m.group(1) is not None:
            parts.append(int(m.group(1)))
        elif m.group(2) is not None:
            parts.append(("name", m.group(2)))
        elif m.group(3) is not None:
            parts.append(m.group(3))
        pos = m.end()
    parts.append(repl[pos:])

    def expand(match: Match) -> str:
        out = []
        for p in parts:
            if isinstance(p, int):
                out.append(match.group(p) or "")
            elif isinstance(p, tuple):
                out.append(match.group(p[1]) or "")
            else:
                out.append(p)
        return "".join(out)

    return expand


# -- the functions ------------------------------------------------------------------------------------


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= _SHOWN_PATTERN_CHARS else pattern[:_SHOWN_PATTERN_CHARS] + "...")


def _runtime_pattern(function: str) -> PatternOf:
    def pattern_of(pattern: Value) -> Pattern | None:
        compiled = compile_cached(pattern) if type(pattern) is str else None
        if isinstance(compiled, PatternTooLarge):
            raise RuleEvaluationError(f"{function}(): {compiled}")
        return compiled

    return pattern_of


def _pattern_source(function: str, literals: Mapping[int, Value]) -> PatternOf:
    """Where a call gets its compiled pattern (argument 2): compiled now when the SQL gives it as a literal
    (a pattern too large is then a creation error), else per message through the cache."""
    if 1 not in literals:
        return _runtime_pattern(function)
    literal = literals[1]
    try:
        compiled = compile_pattern(literal) if type(literal) is str else None
    except PatternTooLarge as exc:
        raise SqlSemanticError(f"{function}(): {exc}") from None
    return lambda _pattern: compiled


def _bounded(function: str, run: Callable[..., Value]) -> Callable[..., RegexFunction]:
    """A binder for one regexp function: given the call's literal arguments (by position), it returns the
    implementation with its pattern source and the budget in force (``budget_ms`` overrides it)."""

    def bind(literals: Mapping[int, Value] | None = None, budget_ms: float | None = None) -> RegexFunction:
        pattern_of = _pattern_source(function, literals or {})
        budget = current_budget_ms() if budget_ms is None else check_budget_ms(budget_ms)
        timeout = budget / 1000.0

        def call(s: Value, pattern: Value, *rest: Value) -> Value:
            text, rx = to_string(s), pattern_of(pattern)
            if text is UNDEFINED or rx is None:
                return UNDEFINED
            try:
                return run(rx, text, timeout, *rest)
            except TimeoutError:
                raise RuleEvaluationError(
                    f"{function}(): the regular expression {_shown(rx.pattern)} did not finish within its "
                    f"{budget:g} ms budget on a {len(text)}-character input; rewrite it without nested "
                    f"repetition (such as (a|aa)+) or raise the rules engine's regex budget"
                ) from None

        call.__name__ = call.__qualname__ = function
        return call

    return bind


def _matches(rx: Pattern, text: str, timeout: float) -> Value:
    return rx.search(text, timeout=timeout) is not None


def _substr(rx: Pattern, text: str, timeout: float) -> Value:
    m = rx.search(text, timeout=timeout)
    return m.group(0) if m else ""


def _replace(rx: Pattern, text: str, timeout: float, repl: Value) -> Value:
    r = to_string(repl)
    if r is UNDEFINED:
        return UNDEFINED
    try:
        return rx.sub(java_replacement(r), text, timeout=timeout)
    except (IndexError, regex.error):
        return UNDEFINED


bind_regexp_matches = _bounded("regexp_matches", _matches)
bind_regexp_replace = _bounded("regexp_replace", _replace)
bind_regexp_substr = _bounded("regexp_substr", _substr)
